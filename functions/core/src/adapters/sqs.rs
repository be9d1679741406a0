//! The queue seam: the three queues the pipeline sends to. Receiving is Lambda's job (its SQS
//! event source mapping) or, locally, the `batchops dev` poller's.

use crate::chunk::{Chunk, FinalizeMessage, PlanMessage, SQS_MAX_BYTES};
use crate::{Config, Error, Result};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct Queues {
    client: Client,
    plan: String,
    work: String,
    work_high: String,
    high_priority: i64,
    finalize: String,
}

/// SendMessageBatch takes at most 10 entries.
pub const SQS_BATCH_ENTRIES: usize = 10;

impl Queues {
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            client,
            plan: config.plan_queue_url.clone(),
            work: config.work_queue_url.clone(),
            work_high: config.work_high_queue_url.clone(),
            high_priority: config.high_priority,
            finalize: config.finalize_queue_url.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes a message that failed visible again after `delay_secs` (at most 900 here: a
    /// minute-scale retry, not the queue's 90-minute visibility timeout). `queue_arn` is the
    /// event's `eventSourceARN`: one of the queues this stack sends to, or any other it reads
    /// (the intake queue), whose URL SQS is asked for.
    pub async fn retry_later(&self, queue_arn: &str, receipt: &str, delay_secs: u32) -> Result<()> {
        // arn:<partition>:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = queue_arn.split(':').collect();
        let (Some(name), Some(account)) = (parts.get(5), parts.get(4)) else {
            return Ok(());
        };
        let known = [&self.plan, &self.work, &self.work_high, &self.finalize]
            .into_iter()
            .find(|url| !name.is_empty() && url.rsplit('/').next() == Some(*name))
            .cloned();
        let url = match known {
            Some(url) => url,
            None => self
                .client
                .get_queue_url()
                .queue_name(*name)
                .set_queue_owner_aws_account_id((!account.is_empty()).then(|| account.to_string()))
                .send()
                .await
                .map_err(|e| Error::sqs("GetQueueUrl", e))?
                .queue_url
                .unwrap_or_default(),
        };
        if url.is_empty() {
            return Ok(());
        }
        self.client
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(receipt)
            .visibility_timeout(delay_secs.min(900) as i32)
            .send()
            .await
            .map_err(|e| Error::sqs("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn send<T: Serialize>(&self, queue: &str, message: &T) -> Result<()> {
        self.send_after(queue, message, std::time::Duration::ZERO)
            .await
    }

    async fn send_after<T: Serialize>(
        &self,
        queue: &str,
        message: &T,
        delay: std::time::Duration,
    ) -> Result<()> {
        let body = serde_json::to_string(message).map_err(Error::Message)?;
        self.client
            .send_message()
            .queue_url(queue)
            .message_body(body)
            .set_delay_seconds((!delay.is_zero()).then(|| delay.as_secs().min(900) as i32))
            .send()
            .await
            .map_err(|e| Error::sqs("SendMessage", e))?;
        Ok(())
    }

    pub async fn send_plan(&self, message: &PlanMessage) -> Result<()> {
        self.send(&self.plan, message).await
    }

    /// [`Self::send_plan`], delivered after `delay` (at most 15 minutes, SQS's longest).
    pub async fn send_plan_after(
        &self,
        message: &PlanMessage,
        delay: std::time::Duration,
    ) -> Result<()> {
        self.send_after(&self.plan, message, delay).await
    }

    /// The chunk messages in the work queues (both bands), waiting or in flight.
    pub async fn work_backlog(&self) -> Result<u64> {
        let mut queues = vec![&self.work];
        if self.work_high != self.work {
            queues.push(&self.work_high);
        }
        let mut total = 0;
        for queue in queues {
            let out = self
                .client
                .get_queue_attributes()
                .queue_url(queue)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .map_err(|e| Error::sqs("GetQueueAttributes", e))?;
            for value in out.attributes().into_iter().flat_map(|a| a.values()) {
                total += value.parse::<u64>().unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Queues the finalization of a job (its report and end, or the clean-up of an ended one).
    pub async fn finalize(&self, job_id: &str) -> Result<()> {
        let message = FinalizeMessage {
            job_id: job_id.into(),
        };
        self.send(&self.finalize, &message).await
    }

    /// The work queue (priority band) for a job of this priority.
    pub fn work_queue_for(&self, priority: i64) -> &str {
        if priority >= self.high_priority {
            &self.work_high
        } else {
            &self.work
        }
    }

    /// Up to 10 messages of a dead-letter queue: (body, receipt handle). They stay invisible
    /// for 5 minutes unless deleted.
    pub async fn receive_dead_letters(&self, queue: &str) -> Result<Vec<(String, String)>> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| Error::sqs("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| Some((m.body()?.to_string(), m.receipt_handle()?.to_string())))
            .collect())
    }

    pub async fn delete(&self, queue: &str, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(queue)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| Error::sqs("DeleteMessage", e))?;
        Ok(())
    }

    /// Sends chunks with as few `SendMessageBatch` calls as the limits allow (10 entries and
    /// 256 KiB per call). Entries SQS reports as failed are retried; the call fails only if
    /// some chunk could not be sent. Sending a chunk twice is harmless: workers count each
    /// chunk number once.
    pub async fn send_chunks(&self, chunks: &[Chunk], priority: i64) -> Result<()> {
        let queue = self.work_queue_for(priority);
        let bodies = chunks
            .iter()
            .map(|c| serde_json::to_string(c).map_err(Error::Message))
            .collect::<Result<Vec<_>>>()?;
        // The chunker and the task bounds keep every chunk under the limit; were one over it,
        // SQS would refuse the batch on every retry.
        if let Some((chunk, body)) = chunks
            .iter()
            .zip(&bodies)
            .find(|(_, b)| b.len() > crate::chunk::SQS_MAX_BYTES)
        {
            return Err(Error::Record(format!(
                "chunk {} of job {} is {} bytes, over SQS's {} bytes",
                chunk.chunk,
                chunk.job_id,
                body.len(),
                crate::chunk::SQS_MAX_BYTES
            )));
        }
        for batch in pack_batches(bodies.iter().map(String::len)) {
            let mut pending: Vec<usize> = batch;
            for attempt in 0..5u32 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
                let entries = pending
                    .iter()
                    .map(|&i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&bodies[i])
                            .build()
                            .expect("id and body are set")
                    })
                    .collect::<Vec<_>>();
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(queue)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| Error::sqs("SendMessageBatch", e))?;
                let failed: Vec<usize> = out
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect();
                if let Some(f) = out.failed().iter().find(|f| f.sender_fault()) {
                    return Err(Error::Sqs {
                        op: "SendMessageBatch",
                        source: format!("{}: {}", f.code(), f.message().unwrap_or_default()).into(),
                    });
                }
                pending = failed;
            }
            if !pending.is_empty() {
                return Err(Error::Sqs {
                    op: "SendMessageBatch",
                    source: format!(
                        "{} chunk messages still failing after retries",
                        pending.len()
                    )
                    .into(),
                });
            }
        }
        Ok(())
    }
}

/// Groups message sizes (by index) into batches of at most [`SQS_BATCH_ENTRIES`] entries and
/// [`SQS_MAX_BYTES`] in total, keeping order.
pub fn pack_batches(sizes: impl IntoIterator<Item = usize>) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        if !current.is_empty()
            && (current.len() == SQS_BATCH_ENTRIES || bytes + size > SQS_MAX_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let batches = pack_batches(std::iter::repeat_n(100, 25));
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let batches = pack_batches(std::iter::repeat_n(100_000, 5));
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let flat: Vec<usize> = batches.into_iter().flatten().collect();
        assert_eq!(flat, [0, 1, 2, 3, 4]);
        assert!(pack_batches([]).is_empty());
    }
}
