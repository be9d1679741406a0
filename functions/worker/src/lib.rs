//! # worker Lambda
//!
//! Triggered by the work queue (SQS). Each message is one [`Chunk`]; the domain work is
//! [`batchops_core::worker::process_chunk`], which runs the tasks and counts the chunk exactly
//! once. A failed message is reported in the partial batch response and redelivered.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::Deps;
use batchops_core::batch::for_each_message;
use batchops_core::chunk::Chunk;
use batchops_lambda::{deliveries, message, respond};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Chunks of one event handled at once (each runs its own tasks concurrently).
const CHUNKS_AT_ONCE: usize = 2;

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    handle_until(deps, event, None).await
}

/// [`handle`] for an invocation that ends at `deadline` (the Lambda context's): chunks not
/// finished in time keep what ran and are queued again for the rest
/// ([`batchops_core::worker::process_delivery_until`]).
pub async fn handle_until(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> SqsBatchResponse {
    let sources = deliveries(&event);
    let messages: Vec<_> = event.records.into_iter().map(message).collect();
    // Two copies of one chunk in a batch (SQS is at-least-once) run one after the other, so
    // the second finds the chunk counted rather than taken by the first.
    let mut turns: HashMap<(String, u64), Arc<Mutex<()>>> = HashMap::new();
    for m in &messages {
        if let Ok(chunk) = Chunk::from_body(&m.body) {
            turns.entry((chunk.job_id, chunk.chunk)).or_default();
        }
    }
    let turns = &turns;
    let failed = for_each_message(messages, CHUNKS_AT_ONCE, |m| async move {
        let chunk = Chunk::from_body(&m.body)?;
        let _turn = match turns.get(&(chunk.job_id.clone(), chunk.chunk)) {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        let last_delivery = m.receive_count >= deps.config.max_receives;
        match batchops_core::worker::process_delivery_until(deps, &chunk, last_delivery, deadline)
            .await
        {
            Ok(_) => Ok(()),
            // The last delivery before the DLQ: account the tasks as failed with the cause
            // rather than let the chunk vanish into the dead-letter queue.
            // (Not when another delivery is running it: that one counts it.)
            Err(e) if last_delivery && !matches!(e, batchops_core::Error::ChunkBusy { .. }) => {
                let cause = format!(
                    "the chunk failed on all {} deliveries; last error: {e}",
                    m.receive_count
                );
                batchops_core::worker::account_failed_chunk(deps, &chunk, &cause)
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    })
    .await;
    respond(deps, &sources, failed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_event_carries_a_chunk() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../infra/events/work.json")).unwrap();
        let chunk = Chunk::from_body(event.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(chunk.chunk, 0);
        assert_eq!(chunk.tasks.len(), 2);
        assert_eq!(chunk.tasks[1].key, "photos/a b.jpg");
    }
}
