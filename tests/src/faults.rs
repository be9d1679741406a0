//! A fault-injecting HTTP proxy for tests: it sits between the SDK clients and the emulator
//! and, per service (read from the SigV4 credential scope), answers a share of requests with
//! the errors AWS returns under load (S3 `503 SlowDown`, DynamoDB
//! `ProvisionedThroughputExceededException`, SQS `500`), drops a share of connections without
//! answering, and adds latency. It counts what it did, so a test can print it.
//!
//! It is test tooling only: nothing in the product knows it exists.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults for one service.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Share of requests answered with an injected error, 0.0–1.0.
    pub error_rate: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Added to every request.
    pub latency: Duration,
    /// Share of SQS `SendMessage`/`SendMessageBatch` requests forwarded twice, so the messages
    /// they carry are delivered twice (SQS's at-least-once delivery, made frequent).
    pub duplicate_rate: f64,
    /// Share of DynamoDB writes refused as DynamoDB refuses them under contention:
    /// `UpdateItem` with `TransactionConflictException`, `TransactWriteItems` cancelled with
    /// `TransactionConflict`.
    pub conflict_rate: f64,
}

/// What the proxy did to one service's requests.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub drops: AtomicU64,
    pub duplicated: AtomicU64,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<BTreeMap<String, Faults>>,
    counts: Mutex<BTreeMap<String, Arc<Counts>>>,
    /// Targeted failures, each for a number of requests.
    rules: Mutex<Vec<Rule>>,
    /// S3 requests carrying `x-amz-copy-source` (CopyObject, UploadPartCopy) forwarded.
    copies: AtomicU64,
    /// Every S3 request seen (the first [`MAX_SEEN`]), for tests that check what was asked.
    seen: Mutex<Vec<Seen>>,
}

/// How many S3 requests [`FaultProxy::s3_requests`] keeps.
const MAX_SEEN: usize = 100_000;

/// One S3 request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent (path-style: `/<bucket>/<key>?<query>`).
    pub target: String,
    /// Its `x-amz-*` headers, names lower-case.
    pub amz_headers: BTreeMap<String, String>,
}

impl Seen {
    /// The bucket of a path-style request.
    pub fn bucket(&self) -> &str {
        self.target
            .trim_start_matches('/')
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
    }
}

/// The next `left` requests of `method` whose path (query included) or `X-Amz-Target` contains `pattern` (and
/// whose body contains `body`, when set) get `answer`, whatever the rates say.
struct Rule {
    method: String,
    pattern: String,
    body: Option<String>,
    left: u32,
    answer: Answer,
}

/// Something a test does at an exact point of the code under test (another actor's write, say).
pub type Hook =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Clone)]
enum Answer {
    /// The service's injected error (S3 `503 SlowDown`, DynamoDB throttling, SQS `500`).
    ServiceError,
    /// `TransactionCanceledException` with reasons `[None, TransactionConflict]`, as DynamoDB
    /// cancels a transaction that meets another one on an item.
    TransactionConflict,
    /// Runs the hook to its end, then forwards the request: a race lost at that exact point.
    Before(Hook),
    /// `TransactionConflictException`, as DynamoDB refuses a single-item write to an item a
    /// running transaction holds.
    UpdateConflict,
}

/// A running proxy.
#[derive(Clone)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            faults: Mutex::new(BTreeMap::new()),
            counts: Mutex::new(BTreeMap::new()),
            rules: Mutex::new(Vec::new()),
            copies: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    // An Err from the service closes the connection: that is how drops happen.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the faults of one service (`s3`, `sqs`, `dynamodb`).
    pub fn set(&self, service: &str, faults: Faults) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .insert(service.into(), faults);
    }

    /// Answers the next `n` requests of `method` whose path (query included) or `X-Amz-Target` contains `path`
    /// with the service's injected error (S3 `503 SlowDown`, DynamoDB throttling), whatever
    /// the rates say.
    pub fn fail_next(&self, method: &str, path: &str, n: u32) {
        self.add_rule(method, path, n, Answer::ServiceError);
    }

    /// Fails the next `n` planner checkpoint saves (the `TransactWriteItems` calls that write
    /// a job's `PLAN` item) with DynamoDB's throttling error: a planner that dies before it can
    /// checkpoint. Other transactions (a job's creation, chunk counts) pass.
    pub fn fail_next_checkpoints(&self, n: u32) {
        self.shared.rules.lock().unwrap().push(Rule {
            method: "POST".into(),
            pattern: "TransactWriteItems".into(),
            body: Some("{\"S\":\"PLAN\"}".into()),
            left: n,
            answer: Answer::ServiceError,
        });
    }

    /// Cancels the next `n` DynamoDB `TransactWriteItems` calls as DynamoDB does under
    /// contention: `TransactionCanceledException` with reasons `[None, TransactionConflict]`.
    pub fn conflict_next(&self, n: u32) {
        self.add_rule("POST", "TransactWriteItems", n, Answer::TransactionConflict);
    }

    /// Refuses the next `n` DynamoDB `UpdateItem` calls with `TransactionConflictException`.
    pub fn update_conflict_next(&self, n: u32) {
        self.add_rule("POST", "UpdateItem", n, Answer::UpdateConflict);
    }

    /// Before forwarding the next request of `method` whose path or `X-Amz-Target` contains
    /// `pattern` and whose body contains `body`, runs `hook` to its end: another actor's write
    /// lands just before this one, deterministically.
    pub fn before_next(&self, method: &str, pattern: &str, body: &str, hook: Hook) {
        self.shared.rules.lock().unwrap().push(Rule {
            method: method.into(),
            pattern: pattern.into(),
            body: Some(body.into()),
            left: 1,
            answer: Answer::Before(hook),
        });
    }

    /// Drops the rules (`fail_next`, `conflict_next` …) not yet used up.
    pub fn clear_rules(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    fn add_rule(&self, method: &str, pattern: &str, left: u32, answer: Answer) {
        self.shared.rules.lock().unwrap().push(Rule {
            method: method.into(),
            pattern: pattern.into(),
            body: None,
            left,
            answer,
        });
    }

    /// S3 copy requests (CopyObject, UploadPartCopy) forwarded so far: each is a task run.
    pub fn copies(&self) -> u64 {
        self.shared.copies.load(Ordering::Relaxed)
    }

    /// The S3 requests seen so far (the first 100,000), in arrival order.
    pub fn s3_requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Errors injected into one service's requests so far (rates and rules alike).
    pub fn errors(&self, service: &str) -> u64 {
        self.shared
            .counts
            .lock()
            .unwrap()
            .get(service)
            .map_or(0, |c| c.errors.load(Ordering::Relaxed))
    }

    /// (service, requests, errors, drops, duplicated sends) so far.
    pub fn counts(&self) -> Vec<(String, [u64; 4])> {
        self.shared
            .counts
            .lock()
            .unwrap()
            .iter()
            .map(|(k, c)| {
                let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
                (
                    k.clone(),
                    [n(&c.requests), n(&c.errors), n(&c.drops), n(&c.duplicated)],
                )
            })
            .collect()
    }
}

/// The service a SigV4-signed request is for: `Credential=AKID/date/region/SERVICE/aws4_request`.
pub fn service_of(authorization: &str) -> String {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string()
}

fn injected(service: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match service {
        "s3" => (
            503,
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate. (injected)</Message></Error>".to_string(),
        ),
        "dynamodb" => (
            400,
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected throttling"}"#.to_string(),
        ),
        _ => (
            500,
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.sqs#InternalError","message":"injected"}"#.to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn update_conflict() -> Response<Full<Bytes>> {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item (injected)"}"#;
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn transaction_conflict() -> Response<Full<Bytes>> {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict] (injected)","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn handle(
    s: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let service = service_of(&auth);
    let faults = s
        .faults
        .lock()
        .unwrap()
        .get(&service)
        .copied()
        .unwrap_or_default();
    let counts = s
        .counts
        .lock()
        .unwrap()
        .entry(service.clone())
        .or_default()
        .clone();
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    if service == "s3" {
        let mut seen = s.seen.lock().unwrap();
        if seen.len() < MAX_SEEN {
            seen.push(Seen {
                method: parts.method.to_string(),
                target: parts
                    .uri
                    .path_and_query()
                    .map_or("/".into(), |p| p.as_str().to_string()),
                amz_headers: parts
                    .headers
                    .iter()
                    .filter(|(n, _)| n.as_str().starts_with("x-amz-"))
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            v.to_str().unwrap_or_default().into(),
                        )
                    })
                    .collect(),
            });
        }
    }
    let targeted = {
        let mut rules = s.rules.lock().unwrap();
        let path = parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |p| p.as_str());
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        rules
            .iter_mut()
            .find(|r| {
                r.left > 0
                    && parts.method.as_str() == r.method
                    && (path.contains(&r.pattern) || target.contains(&r.pattern))
                    && r.body.as_ref().is_none_or(|b| text.contains(b.as_str()))
            })
            .map(|r| {
                r.left -= 1;
                r.answer.clone()
            })
    };
    match targeted {
        Some(Answer::ServiceError) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(injected(&service));
        }
        Some(Answer::TransactionConflict) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(transaction_conflict());
        }
        Some(Answer::Before(hook)) => hook().await,
        Some(Answer::UpdateConflict) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(update_conflict());
        }
        None => {}
    }
    if faults.conflict_rate > 0.0 && rand::rng().random::<f64>() < faults.conflict_rate {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if target.ends_with(".UpdateItem") {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(update_conflict());
        }
        if target.ends_with(".TransactWriteItems") {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(transaction_conflict());
        }
    }
    if parts.headers.contains_key("x-amz-copy-source") {
        s.copies.fetch_add(1, Ordering::Relaxed);
    }
    let roll: f64 = rand::rng().random();
    if roll < faults.drop_rate {
        counts.drops.fetch_add(1, Ordering::Relaxed);
        return Err("connection dropped (injected)".into());
    }
    if roll < faults.drop_rate + faults.error_rate {
        counts.errors.fetch_add(1, Ordering::Relaxed);
        return Ok(injected(&service));
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let forward = || {
        let mut upstream = s
            .http
            .request(parts.method.clone(), format!("{}{path}", s.upstream));
        for (name, value) in parts.headers.iter() {
            if name != "host" && name != "content-length" {
                upstream = upstream.header(name, value);
            }
        }
        upstream.body(body.clone()).send()
    };
    let sends = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("SendMessage"));
    if sends && rand::rng().random::<f64>() < faults.duplicate_rate {
        counts.duplicated.fetch_add(1, Ordering::Relaxed);
        forward().await?;
    }
    let resp = forward().await?;
    let mut out = Response::builder().status(resp.status().as_u16());
    // A HEAD's answer has no body: its Content-Length is the object's size, kept as it came.
    let head = parts.method == hyper::Method::HEAD;
    for (name, value) in resp.headers() {
        if (head || name != "content-length") && name != "transfer-encoding" && name != "connection"
        {
            out = out.header(name, value);
        }
    }
    let bytes = resp.bytes().await?;
    Ok(out.body(Full::new(bytes))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_come_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261127/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x";
        assert_eq!(service_of(auth), "dynamodb");
        assert_eq!(service_of(""), "unknown");
    }
}
