//! # planner Lambda
//!
//! Triggered by the plan queue (SQS). Each message names a job to plan; the domain work is
//! [`batchops_core::planner::plan_job`]. This crate only translates the SQS event into those
//! calls and failures into a partial batch response.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::batch::{Message, for_each_message};
use batchops_core::chunk::PlanMessage;
use batchops_core::{Deps, Error};

/// Handles one SQS event: plans each named job; failed messages are reported for redelivery.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let messages = event.records.into_iter().map(message).collect();
    let failed = for_each_message(messages, 1, |m| async move {
        let msg: PlanMessage = serde_json::from_str(&m.body).map_err(Error::Message)?;
        batchops_core::planner::plan_job(deps, &msg.job_id)
            .await
            .map(drop)
    })
    .await;
    batch_response(failed)
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
    fn sample_event_parses() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../infra/events/plan.json")).unwrap();
        let m = message(event.records[0].clone());
        assert_eq!(m.receive_count, 1);
        let plan: PlanMessage = serde_json::from_str(&m.body).unwrap();
        assert_eq!(plan.job_id, "3b5e6f1e-6b39-4c39-9d57-2f1f6d1f6a01");
    }

    #[test]
    fn failures_become_batch_item_failures() {
        let r = batch_response(vec!["a".into(), "b".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["batchItemFailures"][1]["itemIdentifier"], "b");
    }
}
