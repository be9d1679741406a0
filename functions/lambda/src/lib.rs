//! The Lambda glue the planner, worker and finalizer share (each of those crates depends on
//! what it runs, and none on another function's crate): an SQS record read into a
//! [`Message`], the deliveries of an event kept for their receipts, and the partial batch
//! response that makes only the failed messages visible again, soon.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::batch::{Failed, Message};
use std::time::{Duration, SystemTime};

/// What is left of an invocation: its deadline less now (zero for a deadline already past, as
/// a local runner that sends none gives).
pub fn time_left(context: &lambda_runtime::Context) -> Duration {
    context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// Reads the fields batchops needs from an SQS record.
pub fn message(record: aws_lambda_events::event::sqs::SqsMessage) -> Message {
    Message {
        id: record.message_id.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    }
}

/// Where a message of an event came from: enough to make it visible again sooner.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub queue_arn: String,
    pub receipt: String,
    pub receive_count: u32,
}

/// The deliveries of an event, before its records are consumed.
pub fn deliveries(event: &SqsEvent) -> Vec<Delivery> {
    event
        .records
        .iter()
        .map(|r| Delivery {
            id: r.message_id.clone().unwrap_or_default(),
            queue_arn: r.event_source_arn.clone().unwrap_or_default(),
            receipt: r.receipt_handle.clone().unwrap_or_default(),
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// How long a message that failed on its `receive_count`th delivery waits before the next:
/// `base` doubled per delivery, at most 15 minutes.
pub fn retry_delay(base: u32, receive_count: u32) -> u32 {
    base.saturating_mul(1 << receive_count.saturating_sub(1).min(16))
        .min(900)
}

/// The partial batch response naming the failed messages, each made visible again after
/// [`retry_delay`] (or, when the error says a retry cannot succeed sooner, after that) rather
/// than the queue's visibility timeout (six times the function's timeout: up to 90 minutes),
/// so that a handler error costs seconds, not an hour and a half. Best effort: a message
/// whose visibility cannot be changed waits the timeout.
pub async fn respond(
    deps: &batchops_core::Deps,
    deliveries: &[Delivery],
    failed: Vec<Failed>,
) -> SqsBatchResponse {
    for f in &failed {
        let Some(d) = deliveries.iter().find(|d| d.id == f.id) else {
            continue;
        };
        let delay = retry_delay(deps.config.retry_visibility_secs, d.receive_count)
            .max(f.retry_after_secs.unwrap_or(0));
        if let Err(e) = deps
            .queues
            .retry_later(&d.queue_arn, &d.receipt, delay)
            .await
        {
            tracing::warn!(error = %e, message_id = %d.id, "could not shorten a failed message's visibility");
        }
    }
    batch_response(failed.into_iter().map(|f| f.id).collect())
}

/// The partial batch response naming the failed message ids.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_message_waits_longer_on_each_delivery_up_to_fifteen_minutes() {
        assert_eq!(retry_delay(10, 1), 10);
        assert_eq!(retry_delay(10, 2), 20);
        assert_eq!(retry_delay(10, 4), 80);
        assert_eq!(retry_delay(10, 9), 900);
        assert_eq!(retry_delay(10, 1000), 900);
    }

    #[test]
    fn failures_become_batch_item_failures() {
        let r = batch_response(vec!["a".into(), "b".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["batchItemFailures"][1]["itemIdentifier"], "b");
    }

    #[test]
    fn a_records_receive_count_and_receipt_are_read() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../infra/events/work.json")).unwrap();
        let d = &deliveries(&event)[0];
        assert_eq!(d.receive_count, 1);
        assert!(
            !d.receipt.is_empty() && d.queue_arn.starts_with("arn:aws:sqs:"),
            "{d:?}"
        );
        let m = message(event.records[0].clone());
        assert_eq!((m.id.as_str(), m.receive_count), (d.id.as_str(), 1));
    }
}
