//! # batchops-tests
//!
//! The integration-test harness: a moto server per test binary (started on a free port, or
//! the one named by `BATCHOPS_TEST_ENDPOINT`), and [`TestStack`], a complete `batchops dev`
//! stack with uniquely named resources, so tests run in parallel against one emulator.
//!
//! ## Layout
//! - `src/lib.rs`: the harness (emulator, stacks, buckets, manifests, API client).
//! - `tests/*.rs`: the integration tests, one file per theme.

pub mod faults;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use batchops_cli::client::{ApiClient, Report, download_report};
use batchops_cli::dev::{Dev, DevOptions};
use batchops_core::Config;
use batchops_core::report::encode_key;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::OnceCell;

static EMULATOR: OnceCell<String> = OnceCell::const_new();

/// The emulator's endpoint, starting moto for this test process on first use.
#[allow(clippy::zombie_processes)]
pub async fn emulator() -> &'static str {
    EMULATOR
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("BATCHOPS_TEST_ENDPOINT") {
                return url;
            }
            let moto = std::env::var("BATCHOPS_MOTO_SERVER").unwrap_or_else(|_| {
                format!("{}/../.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR"))
            });
            assert!(
                std::path::Path::new(&moto).exists(),
                "moto_server not found at {moto}: run the tests with `make test` (it installs moto), \
                 or set BATCHOPS_MOTO_SERVER or BATCHOPS_TEST_ENDPOINT"
            );
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            // A watchdog shell ends moto when this test process ends, however it ends; it is
            // meant to outlive this process briefly, so it is never waited on.
            let script = format!(
                "\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
                 while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill $m",
                pid = std::process::id()
            );
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(&moto)
                .env_remove("AWS_CA_BUNDLE")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let url = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::new();
            for _ in 0..300 {
                if http.get(format!("{url}/moto-api/")).send().await.is_ok() {
                    return url;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("moto did not start on {url}");
        })
        .await
}

/// SDK configuration pointing every client at the emulator.
pub async fn sdk() -> SdkConfig {
    let endpoint = emulator().await;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A short unique lowercase name.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// A running batchops stack on the emulator, with clients for tests.
pub struct TestStack {
    pub dev: Dev,
    pub api: ApiClient,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sdk: SdkConfig,
    pub base_url: String,
}

/// Options for [`TestStack::start_with`].
pub struct StackOptions {
    pub workers: usize,
    pub tune: fn(&mut Config),
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            workers: 4,
            tune: |_| {},
        }
    }
}

impl TestStack {
    pub async fn start() -> Self {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Self {
        Self::start_with_dev(options, |_| {}).await
    }

    /// Like [`TestStack::start_with`], with a last say on the dev runner's options.
    pub async fn start_with_dev(options: StackOptions, dev: fn(&mut DevOptions)) -> Self {
        let sdk = sdk().await;
        let mut opts = DevOptions::new(unique("t"), "127.0.0.1:0".parse().unwrap());
        opts.workers = options.workers;
        opts.tune = options.tune;
        opts.sweep_interval = Duration::from_secs(2);
        dev(&mut opts);
        let dev = Dev::start(&sdk, opts).await.expect("start the dev stack");
        let base_url = format!("http://{}", dev.addr);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        Self {
            api: ApiClient::new(&base_url),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3,
            sdk,
            base_url,
            dev,
        }
    }

    pub async fn bucket(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.s3.create_bucket().bucket(&name).send().await.unwrap();
        name
    }

    /// Puts objects whose body is `body-of:<key>`, 32 at a time.
    pub async fn put_objects(&self, bucket: &str, keys: &[String]) {
        use futures::StreamExt;
        let puts: Vec<_> = keys
            .iter()
            .map(|k| {
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(k)
                    .body(ByteStream::from(body_of(k)))
                    .send()
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(puts)
            .buffer_unordered(32)
            .collect()
            .await;
        for r in results {
            r.unwrap();
        }
    }

    /// Writes a `Bucket,Key` manifest of `keys` (URL-encoded); returns its ETag.
    pub async fn put_manifest(&self, bucket: &str, key: &str, rows: &[(String, String)]) -> String {
        let mut text = String::new();
        for (b, k) in rows {
            text.push_str(&format!("{b},{}\n", encode_key(k)));
        }
        self.put_raw_manifest(bucket, key, text.into_bytes()).await
    }

    pub async fn put_raw_manifest(&self, bucket: &str, key: &str, body: Vec<u8>) -> String {
        let out = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        out.e_tag().unwrap().trim_matches('"').to_string()
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    }

    /// Waits (at most `limit`) for the job to end; returns its description.
    pub async fn wait(&self, job_id: &str, limit: Duration) -> Value {
        tokio::time::timeout(
            limit,
            self.api.wait(job_id, Duration::from_millis(200), |_| {}),
        )
        .await
        .unwrap_or_else(|_| panic!("job {job_id} did not end within {limit:?}"))
        .unwrap()
    }

    pub async fn report(&self, bucket: &str, prefix: &str, job_id: &str) -> Report {
        download_report(&self.s3, bucket, &format!("{prefix}/job-{job_id}"))
            .await
            .unwrap()
    }

    /// POSTs a raw body to `/jobs`; returns status and JSON answer.
    pub async fn post_jobs_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/jobs", self.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// The body `put_objects` gives `key`.
pub fn body_of(key: &str) -> Vec<u8> {
    format!("body-of:{key}").into_bytes()
}

/// A CreateJob body copying the manifest's objects to `target` under `prefix`.
pub fn copy_job(
    manifest_bucket: &str,
    manifest_key: &str,
    etag: Option<&str>,
    target: &str,
    report_bucket: &str,
    scope: &str,
) -> Value {
    let mut location =
        json!({"ObjectArn": format!("arn:aws:s3:::{manifest_bucket}/{manifest_key}")});
    if let Some(e) = etag {
        location["ETag"] = e.into();
    }
    json!({
        "Operation": {"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}"), "TargetKeyPrefix": "copy"}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]}, "Location": location},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{report_bucket}"), "Format": "Report_CSV_20180820",
                   "Prefix": "reports", "ReportScope": scope},
        "Priority": 10
    })
}
