//! Handling a batch of queue messages the way Lambda's SQS event source mapping expects:
//! each message on its own span, a failure of one never failing the others, and the ids of
//! the failed ones returned for the partial batch response (`ReportBatchItemFailures`), so
//! only they are redelivered.

use futures::StreamExt;
use std::future::Future;
use tracing::{Instrument, error, info_span};

/// One message of a batch: its id and body.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub body: String,
    /// How many times SQS has delivered it (`ApproximateReceiveCount`), 1 on first delivery.
    pub receive_count: u32,
}

/// Runs `handle` on each message, up to `concurrency` at once; returns the ids that failed.
pub async fn for_each_message<F, Fut>(
    messages: Vec<Message>,
    concurrency: usize,
    handle: F,
) -> Vec<String>
where
    F: Fn(Message) -> Fut,
    Fut: Future<Output = crate::Result<()>>,
{
    // Futures are built up front (not in a stream closure) so the caller's future is `Send`.
    let runs: Vec<_> = messages
        .into_iter()
        .map(|m| {
            let id = m.id.clone();
            let span = info_span!("message", message_id = %id, receive_count = m.receive_count);
            let fut = handle(m);
            async move {
                match fut.await {
                    Ok(()) => None,
                    Err(e) => {
                        error!(error = %e, retryable = e.is_retryable(), "message failed; SQS will redeliver it");
                        Some(id)
                    }
                }
            }
            .instrument(span)
        })
        .collect();
    futures::stream::iter(runs)
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failed| async move { failed })
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_failures_are_returned() {
        let messages = (0..5)
            .map(|i| Message {
                id: format!("m{i}"),
                body: i.to_string(),
                receive_count: 1,
            })
            .collect();
        let mut failed = for_each_message(messages, 3, |m| async move {
            if m.body.parse::<u32>().unwrap() % 2 == 1 {
                Err(crate::Error::Record("odd".into()))
            } else {
                Ok(())
            }
        })
        .await;
        failed.sort();
        assert_eq!(failed, ["m1", "m3"]);
    }
}
