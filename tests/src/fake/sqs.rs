//! An in-memory SQS (standard queues, its JSON protocol) for the model's schedules, with the
//! semantics the pipeline relies on: at-least-once delivery with visibility timeouts (a
//! message received and not deleted comes back when its timeout lapses), receipt handles new
//! on every receive, `ApproximateReceiveCount`, delays, and a redrive policy moving a message
//! to its dead-letter queue once it has been received `maxReceiveCount` times. Time is
//! tokio's, so under paused time a visibility timeout lapses when the schedule advances it.
//! The conformance test holds it to the emulator's answers.

use super::dynamo::ApiError;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const ACCOUNT: &str = "000000000000";

#[derive(Clone, Debug)]
struct Message {
    id: String,
    body: String,
    visible_at: Instant,
    receive_count: u64,
    /// The latest receipt handle (none: never received, or back from a redrive).
    receipt: Option<String>,
    /// Every receipt handle it was given: like the emulator, any of them names it.
    receipts: Vec<String>,
    sent_ms: u128,
}

#[derive(Debug, Default)]
struct Queue {
    name: String,
    attributes: BTreeMap<String, String>,
    messages: Vec<Message>,
}

impl Queue {
    fn arn(&self) -> String {
        format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{}", self.name)
    }

    fn visibility(&self) -> u64 {
        self.attributes
            .get("VisibilityTimeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(30)
    }

    /// `(dead-letter queue ARN, maxReceiveCount)`.
    fn redrive(&self) -> Option<(String, u64)> {
        let policy: Value = serde_json::from_str(self.attributes.get("RedrivePolicy")?).ok()?;
        let max = match &policy["maxReceiveCount"] {
            Value::Number(n) => n.as_u64()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        Some((policy["deadLetterTargetArn"].as_str()?.to_string(), max))
    }
}

#[derive(Debug, Default)]
struct State {
    queues: BTreeMap<String, Queue>,
    next: u64,
}

#[derive(Debug, Default)]
pub struct Sqs {
    state: Mutex<State>,
}

fn error(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        kind,
        message: message.into(),
        extra: Map::new(),
    }
}

fn no_queue() -> ApiError {
    error(
        "QueueDoesNotExist",
        "The specified queue does not exist for this wsdl version.",
    )
}

fn url_of(name: &str) -> String {
    format!("http://fakes.invalid/{ACCOUNT}/{name}")
}

fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

fn text<'a>(req: &'a Value, field: &str) -> &'a str {
    req.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn number(req: &Value, field: &str) -> Option<u64> {
    match req.get(field)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl State {
    fn queue(&mut self, url: &str) -> Result<&mut Queue, ApiError> {
        let name = url.rsplit('/').next().unwrap_or_default();
        self.queues.get_mut(name).ok_or_else(no_queue)
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.next, self.next)
    }

    fn send(
        &mut self,
        url: &str,
        body: &str,
        delay: Option<u64>,
    ) -> Result<(String, String), ApiError> {
        if body.is_empty() {
            return Err(error(
                "MissingParameter",
                "The request must contain the parameter MessageBody.",
            ));
        }
        if body.len() > 256 * 1024 {
            return Err(error(
                "InvalidParameterValue",
                "One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes.",
            ));
        }
        let id = self.id();
        let q = self.queue(url)?;
        let delay = delay
            .or_else(|| {
                q.attributes
                    .get("DelaySeconds")
                    .and_then(|d| d.parse().ok())
            })
            .unwrap_or(0);
        if delay > 900 {
            return Err(error(
                "InvalidParameterValue",
                "DelaySeconds must be at most 900",
            ));
        }
        q.messages.push(Message {
            id: id.clone(),
            body: body.to_string(),
            visible_at: Instant::now() + Duration::from_secs(delay),
            receive_count: 0,
            receipt: None,
            receipts: Vec::new(),
            sent_ms: now_ms(),
        });
        Ok((id, md5_hex(body)))
    }

    fn receive(&mut self, req: &Value) -> Result<Value, ApiError> {
        let url = text(req, "QueueUrl").to_string();
        let max = number(req, "MaxNumberOfMessages").unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(error(
                "InvalidParameterValue",
                "MaxNumberOfMessages must be 1 to 10",
            ));
        }
        let now = Instant::now();
        let (redrive, visibility) = {
            let q = self.queue(&url)?;
            (
                q.redrive(),
                number(req, "VisibilityTimeout").unwrap_or_else(|| q.visibility()),
            )
        };
        // Messages received their last time go to the dead-letter queue instead.
        if let Some((dlq_arn, max_receives)) = &redrive {
            let q = self.queue(&url)?;
            let (dead, live): (Vec<Message>, Vec<Message>) = std::mem::take(&mut q.messages)
                .into_iter()
                .partition(|m| m.visible_at <= now && m.receive_count >= *max_receives);
            q.messages = live;
            if let Some(dlq) = self.queues.values_mut().find(|d| d.arn() == *dlq_arn) {
                for mut m in dead {
                    m.receipt = None;
                    m.visible_at = now;
                    dlq.messages.push(m);
                }
            }
        }
        let mut receipts = Vec::new();
        for _ in 0..max {
            receipts.push(self.id());
        }
        let q = self.queue(&url)?;
        let mut out = Vec::new();
        for m in q.messages.iter_mut().filter(|m| m.visible_at <= now) {
            if out.len() as u64 >= max {
                break;
            }
            let receipt = format!("{}#{}", m.id, receipts.pop().unwrap_or_default());
            m.receive_count += 1;
            m.receipt = Some(receipt.clone());
            m.receipts.push(receipt.clone());
            m.visible_at = now + Duration::from_secs(visibility);
            out.push(json!({
                "MessageId": m.id,
                "ReceiptHandle": receipt,
                "MD5OfBody": md5_hex(&m.body),
                "Body": m.body,
                "Attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_ms.to_string(),
                },
            }));
        }
        Ok(if out.is_empty() {
            json!({})
        } else {
            json!({ "Messages": out })
        })
    }

    /// The message a receipt handle names, if it is still the latest one for it.
    fn by_receipt<'q>(
        q: &'q mut Queue,
        receipt: &str,
    ) -> Result<Option<&'q mut Message>, ApiError> {
        if !receipt.contains('#') {
            return Err(error(
                "ReceiptHandleIsInvalid",
                format!("The input receipt handle \"{receipt}\" is not a valid receipt handle."),
            ));
        }
        Ok(q.messages
            .iter_mut()
            .find(|m| m.receipts.iter().any(|r| r == receipt)))
    }
}

impl Sqs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves one request (`X-Amz-Target`'s operation, its JSON body).
    pub fn handle(&self, operation: &str, req: &Value) -> Result<Value, ApiError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match operation {
            "CreateQueue" => {
                let name = text(req, "QueueName").to_string();
                let attributes: BTreeMap<String, String> = req
                    .get("Attributes")
                    .and_then(Value::as_object)
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let q = s.queues.entry(name.clone()).or_insert_with(|| Queue {
                    name: name.clone(),
                    ..Default::default()
                });
                q.attributes.extend(attributes);
                Ok(json!({ "QueueUrl": url_of(&name) }))
            }
            "GetQueueUrl" => {
                let name = text(req, "QueueName");
                if s.queues.contains_key(name) {
                    Ok(json!({ "QueueUrl": url_of(name) }))
                } else {
                    Err(no_queue())
                }
            }
            "SetQueueAttributes" => {
                let q = s.queue(text(req, "QueueUrl"))?;
                for (k, v) in req
                    .get("Attributes")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    q.attributes
                        .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
                Ok(json!({}))
            }
            "GetQueueAttributes" => {
                let q = s.queue(text(req, "QueueUrl"))?;
                let now = Instant::now();
                let visible = q.messages.iter().filter(|m| m.visible_at <= now).count();
                let in_flight = q
                    .messages
                    .iter()
                    .filter(|m| m.visible_at > now && m.receipt.is_some())
                    .count();
                let delayed = q
                    .messages
                    .iter()
                    .filter(|m| m.visible_at > now && m.receipt.is_none())
                    .count();
                let mut all = Map::new();
                all.insert("QueueArn".into(), q.arn().into());
                all.insert(
                    "ApproximateNumberOfMessages".into(),
                    visible.to_string().into(),
                );
                all.insert(
                    "ApproximateNumberOfMessagesNotVisible".into(),
                    in_flight.to_string().into(),
                );
                all.insert(
                    "ApproximateNumberOfMessagesDelayed".into(),
                    delayed.to_string().into(),
                );
                all.insert(
                    "VisibilityTimeout".into(),
                    q.visibility().to_string().into(),
                );
                for (k, v) in &q.attributes {
                    all.entry(k.clone()).or_insert_with(|| v.clone().into());
                }
                let wanted: Vec<&str> = req
                    .get("AttributeNames")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let picked: Map<String, Value> = all
                    .into_iter()
                    .filter(|(k, _)| wanted.contains(&"All") || wanted.contains(&k.as_str()))
                    .collect();
                Ok(if picked.is_empty() {
                    json!({})
                } else {
                    json!({ "Attributes": picked })
                })
            }
            "SendMessage" => {
                let (id, md5) = s.send(
                    text(req, "QueueUrl"),
                    text(req, "MessageBody"),
                    number(req, "DelaySeconds"),
                )?;
                Ok(json!({ "MessageId": id, "MD5OfMessageBody": md5 }))
            }
            "SendMessageBatch" => {
                let url = text(req, "QueueUrl").to_string();
                s.queue(&url)?;
                let entries = req
                    .get("Entries")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if entries.is_empty() || entries.len() > 10 {
                    return Err(error("TooManyEntriesInBatchRequest", "at most 10 entries"));
                }
                let total: usize = entries.iter().map(|e| text(e, "MessageBody").len()).sum();
                if total > 256 * 1024 {
                    return Err(error(
                        "BatchRequestTooLong",
                        "Batch requests cannot be longer than 262144 bytes.",
                    ));
                }
                let mut ok = Vec::new();
                for e in &entries {
                    let (id, md5) =
                        s.send(&url, text(e, "MessageBody"), number(e, "DelaySeconds"))?;
                    ok.push(json!({"Id": text(e, "Id"), "MessageId": id, "MD5OfMessageBody": md5}));
                }
                Ok(json!({ "Successful": ok, "Failed": [] }))
            }
            "ReceiveMessage" => s.receive(req),
            "DeleteMessage" => {
                let q = s.queue(text(req, "QueueUrl"))?;
                let receipt = text(req, "ReceiptHandle").to_string();
                State::by_receipt(q, &receipt)?;
                q.messages.retain(|m| !m.receipts.contains(&receipt));
                Ok(json!({}))
            }
            "DeleteMessageBatch" => {
                let q = s.queue(text(req, "QueueUrl"))?;
                let mut ok = Vec::new();
                for e in req
                    .get("Entries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let receipt = text(e, "ReceiptHandle").to_string();
                    q.messages.retain(|m| !m.receipts.contains(&receipt));
                    ok.push(json!({"Id": text(e, "Id")}));
                }
                Ok(json!({ "Successful": ok, "Failed": [] }))
            }
            "ChangeMessageVisibility" => {
                let q = s.queue(text(req, "QueueUrl"))?;
                let timeout = number(req, "VisibilityTimeout").unwrap_or(0);
                if timeout > 43_200 {
                    return Err(error(
                        "InvalidParameterValue",
                        "VisibilityTimeout must be at most 43200",
                    ));
                }
                let receipt = text(req, "ReceiptHandle").to_string();
                let now = Instant::now();
                match State::by_receipt(q, &receipt)? {
                    Some(m) if m.visible_at > now => {
                        m.visible_at = now + Duration::from_secs(timeout);
                        Ok(json!({}))
                    }
                    _ => Err(error(
                        "MessageNotInflight",
                        "The message referred to isn't in flight.",
                    )),
                }
            }
            other => Err(error(
                "InvalidAction",
                format!("the fake SQS does not serve {other}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_old_receipt_still_names_its_message_in_flight() {
        let s = Sqs::new();
        let url = s
            .handle(
                "CreateQueue",
                &json!({"QueueName": "q", "Attributes": {"VisibilityTimeout": "600"}}),
            )
            .unwrap()["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string();
        s.handle("SendMessage", &json!({"QueueUrl": url, "MessageBody": "b"}))
            .unwrap();
        let r1 = s
            .handle("ReceiveMessage", &json!({"QueueUrl": url}))
            .unwrap()["Messages"][0]["ReceiptHandle"]
            .clone();
        s.handle(
            "ChangeMessageVisibility",
            &json!({"QueueUrl": url, "ReceiptHandle": r1, "VisibilityTimeout": 0}),
        )
        .unwrap();
        let got = s
            .handle("ReceiveMessage", &json!({"QueueUrl": url}))
            .unwrap();
        assert_eq!(
            got["Messages"][0]["Attributes"]["ApproximateReceiveCount"],
            "2"
        );
        s.handle(
            "ChangeMessageVisibility",
            &json!({"QueueUrl": url, "ReceiptHandle": r1, "VisibilityTimeout": 0}),
        )
        .unwrap();
    }
}
