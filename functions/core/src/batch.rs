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

/// A message whose handling failed, to be delivered again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub id: String,
    /// At least this long before a retry can succeed, when the error knows
    /// ([`crate::Error::retry_after_secs`]).
    pub retry_after_secs: Option<u32>,
}

/// Runs `handle` on each message, up to `concurrency` at once; returns those that failed.
pub async fn for_each_message<F, Fut>(
    messages: Vec<Message>,
    concurrency: usize,
    handle: F,
) -> Vec<Failed>
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
                        Some(Failed {
                            id,
                            retry_after_secs: e.retry_after_secs(),
                        })
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
        let failed = for_each_message(messages, 3, |m| async move {
            match m.body.parse::<u32>().unwrap() {
                1 => Err(crate::Error::Record("odd".into())),
                3 => Err(crate::Error::ChunkBusy {
                    job_id: "j".into(),
                    chunk: 3,
                    retry_after_secs: 42,
                }),
                _ => Ok(()),
            }
        })
        .await;
        let mut failed: Vec<_> = failed
            .into_iter()
            .map(|f| (f.id, f.retry_after_secs))
            .collect();
        failed.sort();
        assert_eq!(
            failed,
            [("m1".to_string(), None), ("m3".to_string(), Some(42))]
        );
    }
}
