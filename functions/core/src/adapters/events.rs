//! Job events on EventBridge: one "Job Status Change" event per status change, published
//! from an outbox on the job item.
//!
//! Every status write appends its change to the job's `outbox` (a list on the job item, in
//! the same conditional `UpdateItem`), so a change is never made without its event. After the
//! write, [`super::JobStore`] publishes what the outbox holds, in order, and removes what
//! EventBridge accepted, conditionally on the count published so far (`events_sent`), which
//! also numbers the events: the n-th change of a job is `sequence` n. What fails to publish
//! stays in the outbox for the next status write of the job, or for the sweep; a job with
//! unpublished events stays in the open-jobs index until they are out, so the sweep finds
//! it even when it has ended. A failing bus never fails or blocks the job: it is logged and
//! counted. An event can be published twice (a publisher that dies between `PutEvents` and
//! the removal): consumers drop a `sequence` they have seen.

use serde_json::Value;

/// The event's `Source`.
pub const SOURCE: &str = "batchops";
/// The event's `DetailType`.
pub const DETAIL_TYPE: &str = "Job Status Change";

/// Events PutEvents takes at once.
const PUT_BATCH: usize = 10;

/// The bus events go to.
#[derive(Clone, Debug)]
pub struct Events {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl Events {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Puts `details` (each with the job's ARN, if any, as its resource) in order; returns how
    /// many of the first were accepted: it stops at the first one refused, so that the rest
    /// stay in order for the next try.
    pub async fn put(&self, details: &[(Option<String>, Value)]) -> Result<usize, String> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let mut accepted = 0;
        for batch in details.chunks(PUT_BATCH) {
            let entries = batch
                .iter()
                .map(|(arn, detail)| {
                    PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(DETAIL_TYPE)
                        .detail(detail.to_string())
                        .event_bus_name(&self.bus)
                        .set_resources(arn.clone().map(|a| vec![a]))
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                // What earlier batches put is kept: it is removed from the outbox.
                Err(_) if accepted > 0 => return Ok(accepted),
                Err(e) => {
                    use aws_sdk_eventbridge::error::ProvideErrorMetadata;
                    return Err(format!(
                        "PutEvents to bus {}: {}",
                        self.bus,
                        e.message().map_or_else(|| e.to_string(), String::from)
                    ));
                }
            };
            let ok = out
                .entries()
                .iter()
                .take_while(|e| e.error_code().is_none() && e.event_id().is_some())
                .count()
                .min(batch.len());
            accepted += ok;
            if ok < batch.len() {
                let why = out
                    .entries()
                    .get(ok)
                    .and_then(|e| e.error_message())
                    .unwrap_or("refused");
                if accepted == 0 {
                    return Err(format!("PutEvents to bus {}: {why}", self.bus));
                }
                tracing::warn!(
                    bus = self.bus,
                    accepted,
                    error = why,
                    "PutEvents refused an event"
                );
                break;
            }
        }
        Ok(accepted)
    }
}
