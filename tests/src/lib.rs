//! # batchops-tests
//!
//! The integration-test harness: a moto server per test binary (started on a free port, or
//! the one named by `BATCHOPS_TEST_ENDPOINT`), and [`TestStack`], a complete `batchops dev`
//! stack with uniquely named resources, so tests run in parallel against one emulator.
//!
//! ## Layout
//! - `src/lib.rs`: the harness (emulator, stacks, buckets, manifests, API client, jobs of any
//!   operation, and [`LambdaEmulator`]: a user function under `cargo lambda watch`).
//! - `tests/*.rs`: the integration tests, one file per theme.
//! - `echo-lambda/`: the user function the `LambdaInvoke` tests invoke.

pub mod browser;
pub mod fake;
pub mod faults;
pub mod model;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use batchops_cli::client::{ApiClient, Report, ReportRow, download_report};
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
pub async fn emulator() -> &'static str {
    EMULATOR
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("BATCHOPS_TEST_ENDPOINT") {
                return url;
            }
            start_emulator(&[]).await
        })
        .await
}

/// The virtualenv's python, which has moto, boto3 and the SAM translator.
pub fn venv_python() -> String {
    let python = std::env::var("BATCHOPS_EMULATOR_PYTHON")
        .unwrap_or_else(|_| format!("{}/../.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    assert!(
        std::path::Path::new(&python).exists(),
        "the virtualenv's python is not at {python}: run the tests with `make test` (it \
         installs moto), or set BATCHOPS_EMULATOR_PYTHON or BATCHOPS_TEST_ENDPOINT"
    );
    python
}

/// Starts a new emulator (moto behind infra/emulator.py, which isolates DynamoDB requests as
/// DynamoDB does) with `env` added to its environment; it ends with this test process.
#[allow(clippy::zombie_processes)]
pub async fn start_emulator(env: &[(&str, &str)]) -> String {
    let python = venv_python();
    let script = format!("{}/../infra/emulator.py", env!("CARGO_MANIFEST_DIR"));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A watchdog shell ends the emulator when this test process ends, however it ends;
    // it is meant to outlive this process briefly, so it is never waited on.
    let watchdog = format!(
        "\"$0\" \"$1\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill $m",
        pid = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(watchdog)
        .arg(&python)
        .arg(&script)
        .env_remove("AWS_CA_BUNDLE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the emulator");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{url}/moto-api/")).send().await.is_ok() {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the emulator did not start on {url}");
}

/// The SQS event Lambda's event source mapping would deliver for `messages`, on their
/// `receive_count`th delivery.
pub fn sqs_event(
    messages: &[aws_sdk_sqs::types::Message],
    receive_count: u32,
) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = aws_lambda_events::event::sqs::SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.attributes = std::collections::HashMap::from([(
                "ApproximateReceiveCount".to_string(),
                receive_count.to_string(),
            )]);
            r
        })
        .collect();
    event
}

/// SDK configuration pointing every client at the emulator.
pub async fn sdk() -> SdkConfig {
    sdk_at(emulator().await).await
}

/// SDK configuration pointing every client at `endpoint` (the emulator, or a
/// [`faults::FaultProxy`] in front of it), with the emulator's dummy credentials.
pub async fn sdk_at(endpoint: &str) -> SdkConfig {
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
        Self::start_with_sdk_dev(sdk().await, options, dev).await
    }

    /// A stack whose clients come from `sdk` (for example one whose Lambda endpoint is a
    /// [`LambdaEmulator`]).
    pub async fn start_with_sdk(sdk: SdkConfig, options: StackOptions) -> Self {
        Self::start_with_sdk_dev(sdk, options, |_| {}).await
    }

    /// The most general constructor: SDK configuration, stack options and dev options.
    pub async fn start_with_sdk_dev(
        sdk: SdkConfig,
        options: StackOptions,
        dev: fn(&mut DevOptions),
    ) -> Self {
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

    /// A bucket with versioning enabled.
    pub async fn versioned_bucket(&self, prefix: &str) -> String {
        let name = self.bucket(prefix).await;
        self.s3
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        name
    }

    /// A bucket created with Object Lock enabled (and so versioned).
    pub async fn object_lock_bucket(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.s3
            .create_bucket()
            .bucket(&name)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        name
    }

    /// Puts one object; returns its version id (when the bucket is versioned).
    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Option<String> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await
            .unwrap()
            .version_id
    }

    /// Writes a manifest of `rows`, creates a job of `operation` over it (plus any `extra`
    /// CreateJob fields), waits for it to end and downloads its `AllTasks` report, written to
    /// `<bucket>/reports`. Rows carrying a version id make a `Bucket, Key, VersionId` manifest
    /// (then every row needs one).
    pub async fn run_job(
        &self,
        bucket: &str,
        rows: &[Row],
        operation: Value,
        extra: Value,
    ) -> (Value, Report) {
        let versions = rows.iter().any(|r| r.version_id.is_some());
        let mut text = String::new();
        for r in rows {
            text.push_str(&format!("{},{}", r.bucket, encode_key(&r.key)));
            if versions {
                text.push_str(&format!(",{}", r.version_id.as_deref().unwrap_or_default()));
            }
            text.push('\n');
        }
        let manifest = unique("manifest");
        let etag = self
            .put_raw_manifest(bucket, &manifest, text.into_bytes())
            .await;
        let fields = if versions {
            json!(["Bucket", "Key", "VersionId"])
        } else {
            json!(["Bucket", "Key"])
        };
        let mut body = json!({
            "Operation": operation,
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": fields},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::{bucket}/{manifest}"), "ETag": etag}},
            "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{bucket}"), "Prefix": "reports",
                       "ReportScope": "AllTasks"},
            "Priority": 10
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let job_id = self
            .api
            .create(&body)
            .await
            .unwrap_or_else(|e| panic!("CreateJob {body}: {e}"));
        let job = self.wait(&job_id, Duration::from_secs(300)).await;
        let report = self.report(bucket, "reports", &job_id).await;
        (job, report)
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

    /// A source and a target bucket; the objects `present` put in the source, and a manifest
    /// `m.csv` listing `present` then `missing` (which are never put).
    pub async fn seed(&self, present: &[String], missing: &[String]) -> Seeded {
        let source = self.bucket("src").await;
        let target = self.bucket("dst").await;
        self.put_objects(&source, present).await;
        let rows: Vec<_> = present
            .iter()
            .chain(missing)
            .map(|k| (source.clone(), k.clone()))
            .collect();
        let etag = self.put_manifest(&source, "m.csv", &rows).await;
        Seeded {
            source,
            target,
            etag,
        }
    }

    /// HeadObject of a key (of one version when given); panics if it fails.
    pub async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(String::from))
            .send()
            .await
            .unwrap_or_else(|e| panic!("HeadObject {bucket}/{key}: {e:?}"))
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

    /// A stack whose every AWS call goes through a new [`faults::FaultProxy`] in front of the
    /// emulator (no faults until the test sets some).
    pub async fn behind_proxy(options: StackOptions) -> (faults::FaultProxy, Self) {
        let proxy = faults::FaultProxy::start(emulator().await).await;
        let stack = Self::start_with_sdk(sdk_at(&proxy.url()).await, options).await;
        (proxy, stack)
    }

    /// Receives chunk messages from the work queue (hidden for 300 s) until at least
    /// `at_least` have come, polling up to 100 times; with 0, one poll.
    pub async fn receive_chunks(&self, at_least: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let mut messages = Vec::new();
        for _ in 0..100 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.dev.deps.config.work_queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            messages.extend(out.messages.unwrap_or_default());
            if messages.len() >= at_least {
                break;
            }
        }
        messages
    }

    /// Empties the finalize queue: the finalize messages sent so far are lost.
    pub async fn lose_finalize_messages(&self) {
        self.sqs
            .purge_queue()
            .queue_url(&self.dev.deps.config.finalize_queue_url)
            .send()
            .await
            .unwrap();
    }

    /// Hands every message on the finalize queue to the finalizer, as its event source would
    /// (for stacks that run no finalizer poller), until none is left; returns how many.
    pub async fn run_finalize_messages(&self) -> usize {
        let queue = &self.dev.deps.config.finalize_queue_url;
        let mut handled = 0;
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return handled;
            }
            let response =
                batchops_finalizer::handle_sqs(&self.dev.deps, sqs_event(&messages, 1)).await;
            assert!(response.batch_item_failures.is_empty(), "finalize failed");
            for m in &messages {
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            handled += messages.len();
        }
    }

    /// Puts `body` on the work queue's dead-letter queue, as SQS's redrive does.
    pub async fn dead_letter(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.dev.deps.config.work_dlq_urls[0])
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Polls DescribeJob until `pred` holds (at most `secs`); panics with the job otherwise.
    pub async fn until(&self, job_id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..secs * 10 {
            let job = self.api.describe(job_id).await.unwrap();
            if pred(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "condition not met for job {job_id}: {}",
            self.api.describe(job_id).await.unwrap()
        );
    }

    /// The sort keys of every item the job has in the table.
    pub async fn job_items(&self, job_id: &str) -> Vec<String> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let out = ddb
                .query()
                .table_name(&self.dev.deps.config.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(
                    ":pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("JOB#{job_id}")),
                )
                .consistent_read(true)
                .set_exclusive_start_key(cursor)
                .send()
                .await
                .unwrap();
            keys.extend(out.items().iter().filter_map(|i| {
                i.get("sk")
                    .and_then(|v| v.as_s().ok())
                    .map(|s| s.to_string())
            }));
            match out.last_evaluated_key() {
                Some(k) => cursor = Some(k.clone()),
                None => break,
            }
        }
        keys
    }

    /// Waits (at most `secs`) until an ended job's clean-up is done, which follows its final
    /// status: only its job and request items are left, and no result file. Panics, naming
    /// what is left, otherwise.
    pub async fn until_cleaned_up(&self, job_id: &str, secs: u64) {
        let started = std::time::Instant::now();
        loop {
            let items = self.job_items(job_id).await;
            let files = self
                .s3
                .list_objects_v2()
                .bucket(&self.dev.deps.config.bucket)
                .prefix(format!("results/{job_id}/"))
                .send()
                .await
                .unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect::<Vec<_>>();
            if items == ["JOB", "JOB#REQUEST"] && files.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "job {job_id} not cleaned up within {secs} s: items {items:?}, result files {files:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (at most `limit`) for the job to end; returns its description.
    ///
    /// On a stack whose planner budget is zero (one chunk per invocation: the lifecycle
    /// matrix of `make test`), it also checks that a job of more than two chunks was planned
    /// across several invocations, so the matrix cannot pass by planning in one.
    pub async fn wait(&self, job_id: &str, limit: Duration) -> Value {
        let job = tokio::time::timeout(
            limit,
            self.api.wait(job_id, Duration::from_millis(200), |_| {}),
        )
        .await
        .unwrap_or_else(|_| panic!("job {job_id} did not end within {limit:?}"))
        .unwrap();
        let config = &self.dev.deps.config;
        let total = job["ProgressSummary"]["TotalNumberOfTasks"]
            .as_u64()
            .unwrap_or(0);
        if config.planner_budget.is_zero() && total > 2 * config.chunk_size as u64 {
            // The job item keeps the count: the plan checkpoint is gone once the job ended.
            let job = self.dev.deps.store.require(job_id).await.unwrap();
            assert!(
                job.plan_continuations > 0,
                "job {job_id} of {total} tasks was planned in one invocation under a zero budget"
            );
        }
        job
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

/// One manifest row.
#[derive(Clone, Debug)]
pub struct Row {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl Row {
    pub fn new(bucket: &str, key: &str) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
        }
    }

    pub fn version(bucket: &str, key: &str, version_id: &str) -> Self {
        Self {
            version_id: Some(version_id.into()),
            ..Self::new(bucket, key)
        }
    }
}

/// The report row of `key` (keys are URL-encoded in reports).
pub fn row_of<'a>(report: &'a Report, key: &str) -> &'a ReportRow {
    let encoded = encode_key(key);
    report
        .rows
        .iter()
        .find(|r| r.key == encoded)
        .unwrap_or_else(|| panic!("no report row for {key}: {:#?}", report.rows))
}

/// Checks a report row failed with this HTTP status and error code.
pub fn assert_failed_row(row: &ReportRow, http_status: &str, error_code: &str) {
    assert_eq!(
        (
            row.status.as_str(),
            row.http_status.as_str(),
            row.error_code.as_str()
        ),
        ("failed", http_status, error_code),
        "{row:?}"
    );
}

/// Checks the job ended `Complete` with these counts (showing the report rows if not).
pub fn assert_counts(job: &Value, report: &Report, succeeded: u64, failed: u64) {
    let p = &job["ProgressSummary"];
    let got = (
        job["Status"].as_str().unwrap_or_default(),
        p["NumberOfTasksSucceeded"].as_u64().unwrap_or_default(),
        p["NumberOfTasksFailed"].as_u64().unwrap_or_default(),
    );
    assert_eq!(
        got,
        ("Complete", succeeded, failed),
        "job {job}\nreport rows {:#?}",
        report.rows
    );
}

/// A user Lambda function served by `cargo lambda watch` on a free loopback port: the
/// [`echo-lambda`](../echo-lambda/src/main.rs) crate of this workspace. Dropping it stops
/// the emulator and the function.
pub struct LambdaEmulator {
    /// `http://127.0.0.1:<port>`: the Lambda Invoke API (`AWS_ENDPOINT_URL_LAMBDA`).
    pub url: String,
    /// Process group of `cargo lambda watch` and the function it runs.
    group: u32,
    /// The watchdog shell, reaped once the group is gone.
    watchdog: std::process::Child,
    log: std::path::PathBuf,
}

/// The function name `cargo lambda watch` serves the echo function under.
pub const ECHO_FUNCTION: &str = "echo-lambda";

impl LambdaEmulator {
    /// Starts `cargo lambda watch` (`BATCHOPS_CARGO_LAMBDA`, default the virtualenv's
    /// `cargo-lambda` that `make setup` installs) and waits until the function answers. Fails
    /// loudly when it cannot: a LambdaInvoke test never passes without a real invocation.
    pub async fn start() -> Self {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let tool = std::env::var("BATCHOPS_CARGO_LAMBDA").unwrap_or_else(|_| {
            workspace
                .join(".venv/bin/cargo-lambda")
                .display()
                .to_string()
        });
        assert!(
            std::path::Path::new(&tool).exists(),
            "cargo-lambda not found at {tool}: run `make setup` (it installs cargo-lambda into the \
             virtualenv) or set BATCHOPS_CARGO_LAMBDA to a cargo-lambda binary"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("batchops-cargo-lambda-{port}.log"));
        // `setsid` makes cargo-lambda lead a process group holding the function it spawns;
        // the watchdog ends that group when this test process ends, however it ends.
        let script = format!(
            "setsid \"$0\" lambda watch --ignore-changes --invoke-address 127.0.0.1 \
             --invoke-port {port} --package batchops-echo-lambda >\"$1\" 2>&1 & m=$!; echo $m; \
             while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
             kill -- -$m 2>/dev/null",
            pid = std::process::id()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&tool)
            .arg(&log)
            .current_dir(&workspace)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        let mut first_line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut first_line,
        )
        .unwrap();
        let group: u32 = first_line.trim().parse().expect("cargo-lambda's pid");
        let emulator = Self {
            url: format!("http://127.0.0.1:{port}"),
            group,
            watchdog: child,
            log,
        };
        // The first invocation builds and starts the function: allow for a cold build.
        let http = reqwest::Client::new();
        let probe = json!({"invocationSchemaVersion": "1.0", "invocationId": "probe", "job": {"id": "probe"},
                           "tasks": [{"taskId": "probe", "s3Key": "ok/probe", "s3VersionId": null,
                                      "s3BucketArn": "arn:aws:s3:::probe"}]});
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            let answer = http
                .post(emulator.invoke_url(ECHO_FUNCTION))
                .json(&probe)
                .timeout(Duration::from_secs(300))
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => return emulator,
                _ if std::time::Instant::now() > deadline => panic!(
                    "cargo lambda watch did not serve {ECHO_FUNCTION} on port {port} within 10 minutes; its log:\n{}",
                    emulator.log_tail()
                ),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The Invoke API URL of `function`.
    pub fn invoke_url(&self, function: &str) -> String {
        format!("{}/2015-03-31/functions/{function}/invocations", self.url)
    }

    /// The last lines cargo lambda wrote, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SDK configuration for a stack on the emulator whose Lambda client calls this function
    /// server: the endpoints come from (a test-local copy of) the environment, exactly as in
    /// production — `AWS_ENDPOINT_URL` for every service, `AWS_ENDPOINT_URL_LAMBDA` for Lambda.
    pub async fn sdk(&self) -> SdkConfig {
        let moto = emulator().await;
        let env = aws_types::os_shim_internal::Env::from_slice(&[
            ("AWS_ENDPOINT_URL", moto),
            ("AWS_ENDPOINT_URL_LAMBDA", &self.url),
        ]);
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .env(env)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .load()
            .await
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.group))
            .stderr(Stdio::null())
            .status();
        // The watchdog notices the group is gone within half a second and exits.
        let _ = self.watchdog.wait();
    }
}

/// What [`TestStack::seed`] made.
pub struct Seeded {
    pub source: String,
    pub target: String,
    /// The ETag of `s3://<source>/m.csv`.
    pub etag: String,
}

impl Seeded {
    /// A CreateJob body copying the manifest's objects to the target (report there too).
    pub fn copy_job(&self, scope: &str) -> Value {
        copy_job(
            &self.source,
            "m.csv",
            Some(&self.etag),
            &self.target,
            &self.target,
            scope,
        )
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

/// Creates an `Active`, fully planned and counted job whose `rows` tasks (in chunks of
/// `chunk_size`) all succeeded, as if its workers had run: every chunk's result file and
/// record written directly, so only the finalizer is left to run. Its report (all tasks) goes
/// to `report_bucket` under `r/`; `key` names row `n`'s object. Returns the job's id.
pub async fn seed_counted_job(
    deps: &batchops_core::Deps,
    rows: u64,
    chunk_size: u64,
    report_bucket: &str,
    key: impl Fn(u64) -> String + Copy,
) -> batchops_core::Result<String> {
    use batchops_core::adapters::ChunkCounts;
    use batchops_core::chunk::Task;
    use batchops_core::job::{CreateJobRequest, Job, JobStatus};
    use batchops_core::ops::Outcome;
    use futures::StreamExt;
    let request: CreateJobRequest = serde_json::from_value(json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820"},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{report_bucket}/manifest.csv")}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{report_bucket}"),
                   "Format": "Report_CSV_20180820", "Prefix": "r", "ReportScope": "AllTasks"}
    }))
    .map_err(batchops_core::Error::Message)?;
    let job_id = uuid::Uuid::new_v4().to_string();
    deps.store
        .create(&Job::new(
            job_id.clone(),
            request,
            batchops_core::time::now_iso(),
        ))
        .await?;
    let chunks = rows.div_ceil(chunk_size);
    let write = |n: u64| {
        let job_id = &job_id;
        async move {
            let first = n * chunk_size;
            let tasks: Vec<Task> = (first..rows.min(first + chunk_size))
                .map(|row| Task {
                    row,
                    bucket: "seeded-source-bucket".into(),
                    key: key(row),
                    version_id: None,
                    invalid: None,
                })
                .collect();
            let outcomes = vec![Outcome::success("Successful"); tasks.len()];
            let body = batchops_core::report::chunk_rows(&tasks, &outcomes)?;
            let file = batchops_core::worker::result_key(&deps.ids, job_id, n);
            deps.objects
                .put_bytes(&deps.config.bucket, &file, body, "text/csv")
                .await?;
            let counts = ChunkCounts {
                succeeded: tasks.len() as u64,
                ..Default::default()
            };
            deps.store
                .count_chunk(job_id, n, counts, Some(&file))
                .await?;
            Ok::<_, batchops_core::Error>(())
        }
    };
    let results: Vec<_> = futures::stream::iter((0..chunks).map(write))
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r?;
    }
    deps.store
        .finish_planning(&job_id, rows, chunks, "")
        .await?;
    for (from, to) in [
        (JobStatus::New, JobStatus::Preparing),
        (JobStatus::Preparing, JobStatus::Active),
    ] {
        deps.store
            .transition(&job_id, &[from], to, Default::default())
            .await?;
    }
    Ok(job_id)
}

/// An endpoint resolver that always answers `url`: it bypasses the S3 Control rules that put
/// the account id in front of the host name (S3CONTROL.md), as a stock client pointed at a
/// resolvable local name would reach it.
#[derive(Debug)]
struct FixedEndpoint(String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        _: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        aws_sdk_s3control::config::endpoint::EndpointFuture::ready(Ok(
            aws_sdk_s3control::config::endpoint::Endpoint::builder()
                .url(self.0.clone())
                .build(),
        ))
    }
}

/// The Rust `aws-sdk-s3control` client, unmodified but for its endpoint: `url` (batchops dev,
/// or a `batchops proxy`).
pub fn s3control_client(sdk: &SdkConfig, url: &str) -> aws_sdk_s3control::Client {
    aws_sdk_s3control::Client::from_conf(
        aws_sdk_s3control::config::Builder::from(sdk)
            .endpoint_resolver(FixedEndpoint(url.to_string()))
            .build(),
    )
}

/// Runs `tests/scripts/s3control_clients.py`: boto3 and the AWS CLI, through `HTTP_PROXY` at
/// 127.0.0.1:`port`, each create a tagging job over `manifest` (in `bucket`, with `etag`),
/// watch it end and list it. Returns what each saw.
pub async fn run_stock_clients(port: u16, bucket: &str, manifest: &str, etag: &str) -> Value {
    let script = format!(
        "{}/scripts/s3control_clients.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let args = [
        script,
        port.to_string(),
        bucket.to_string(),
        manifest.to_string(),
        etag.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new(venv_python())
            .args(args)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .expect("run tests/scripts/s3control_clients.py")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "s3control_clients.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
