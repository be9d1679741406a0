//! The fakes as the SDK's HTTP client: every request a client built from
//! [`Fakes::sdk_config`] sends is answered in-process by the fake of its service (by its
//! `X-Amz-Target`), on that service's wire form — no socket, no emulator.

use super::dynamo::{ApiError, Dynamo};
use super::s3::S3;
use super::sqs::Sqs;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use std::sync::Arc;

/// The in-memory services, shared by every client made from them.
#[derive(Clone, Debug, Default)]
pub struct Fakes {
    pub dynamo: Arc<Dynamo>,
    pub sqs: Arc<Sqs>,
    pub s3: Arc<S3>,
    /// Requests that take their time (see [`Fakes::slow_down`]).
    latency: Arc<std::sync::Mutex<Option<Latency>>>,
}

/// Seeded latency: with `probability`, a request waits up to `max` (on tokio's clock) before
/// it is served.
#[derive(Debug)]
struct Latency {
    rng: rand::rngs::StdRng,
    probability: f64,
    max: std::time::Duration,
}

fn answer(status: u16, body: &Value) -> Response<SdkBody> {
    let mut r = Response::new(
        StatusCode::try_from(status).expect("a valid status"),
        SdkBody::from(serde_json::to_vec(body).expect("JSON")),
    );
    r.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    r
}

impl HttpConnector for Fakes {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let wait = self.latency.lock().ok().and_then(|mut l| {
            let l = l.as_mut()?;
            use rand::Rng;
            l.rng
                .random_bool(l.probability)
                .then(|| l.max.mul_f64(l.rng.random::<f64>()))
        });
        if let Some(wait) = wait {
            let fakes = self.clone();
            return HttpConnectorFuture::new(async move {
                tokio::time::sleep(wait).await;
                Ok(fakes.serve(request))
            });
        }
        HttpConnectorFuture::ready(Ok(self.serve(request)))
    }
}

impl Fakes {
    /// Answers one request now.
    fn serve(&self, request: HttpRequest) -> Response<SdkBody> {
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_string();
        let (service, operation) = target.split_once('.').unwrap_or(("", &target));
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let served = |namespace: &str, r: Result<Value, ApiError>| match r {
            Ok(v) => answer(200, &v),
            Err(e) => {
                let mut v = json!({
                    "__type": format!("{namespace}#{}", e.kind),
                    "message": e.message,
                });
                let query_code = query_error_code(namespace, e.kind);
                for (k, x) in e.extra {
                    v[k] = x;
                }
                let mut r = answer(400, &v);
                if let Some(code) = query_code {
                    // SQS's JSON protocol keeps its query-protocol codes in a header, which
                    // is what the SDK reads the error's kind from.
                    r.headers_mut()
                        .insert("x-amzn-query-error", format!("{code};Sender"));
                }
                r
            }
        };
        if service.starts_with("DynamoDB_") {
            served(
                "com.amazonaws.dynamodb.v20120810",
                self.dynamo.handle(operation, &body),
            )
        } else if service == "AmazonSQS" {
            served("com.amazonaws.sqs", self.sqs.handle(operation, &body))
        } else if request
            .headers()
            .get("authorization")
            .is_some_and(|a| a.contains("/s3/aws4_request"))
        {
            self.s3_call(&request)
        } else {
            answer(
                400,
                &json!({"__type": "UnknownOperationException", "message": format!("no fake serves {target:?}")}),
            )
        }
    }
}

/// The query-protocol code SQS sends beside a JSON error (the SDK names the error by it).
fn query_error_code(namespace: &str, kind: &str) -> Option<String> {
    if namespace != "com.amazonaws.sqs" {
        return None;
    }
    Some(match kind {
        "QueueDoesNotExist" => "AWS.SimpleQueueService.NonExistentQueue".into(),
        "MessageNotInflight"
        | "TooManyEntriesInBatchRequest"
        | "BatchRequestTooLong"
        | "EmptyBatchRequest" => format!("AWS.SimpleQueueService.{kind}"),
        other => other.to_string(),
    })
}

impl HttpClient for Fakes {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl Fakes {
    /// A path-style S3 request, answered by the S3 fake.
    fn s3_call(&self, request: &HttpRequest) -> Response<SdkBody> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let uri = request.uri();
        let after_host = uri
            .split_once("://")
            .map_or(uri, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
        let (path, query) = after_host.split_once('?').unwrap_or((after_host, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(p), String::new()),
            })
            // The SDK names the operation in the query (`x-id=PutObject`); S3 ignores it.
            .filter(|(k, _)| k != "x-id")
            .collect();
        let header = |name: &str| request.headers().get(name).map(str::to_string);
        let req = super::s3::Request {
            method: request.method(),
            path: decode(path),
            query,
            header: &header,
            body: request.body().bytes().unwrap_or_default(),
        };
        let a = self.s3.handle(&req);
        let mut r = Response::new(
            StatusCode::try_from(a.status).expect("a valid status"),
            SdkBody::from(a.body),
        );
        for (k, v) in a.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, each request waits up to `max` with `probability` (drawn from `seed`)
    /// before it is served: under paused time, a slow call lets leases and visibility
    /// timeouts lapse while its handler is still running.
    pub fn slow_down(&self, seed: u64, probability: f64, max: std::time::Duration) {
        use rand::SeedableRng;
        if let Ok(mut l) = self.latency.lock() {
            *l = Some(Latency {
                rng: rand::rngs::StdRng::seed_from_u64(seed),
                probability,
                max,
            });
        }
    }

    /// An SDK configuration whose every client is answered by these fakes.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "fake", "fake", None, None, "fakes",
            ))
            .endpoint_url("http://fakes.invalid")
            .http_client(self.clone())
            .load()
            .await
    }
}
