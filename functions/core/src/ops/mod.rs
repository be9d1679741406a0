//! Operations: what a job does to each object.
//!
//! Every operation is one module holding its parameter type — the JSON object under its key in
//! S3 Control's `JobOperation`, with S3 Control's field names — and that type's [`Operation`]
//! implementation: `validate` (at CreateJob, naming the failing field) and `run` (on one object,
//! answering the report's result message or an [`OpError`]). [`JobOperation`] is generated from
//! the one list in [`operations!`], so it dispatches with one match per method in one place.
//!
//! [`run_task`] wraps an operation with the retry policy: transient errors (throttling, 5xx,
//! timeouts, dropped connections, a Lambda's `TemporaryFailure`) are retried with capped
//! exponential backoff and full jitter, up to `task_max_attempts` tries; only the final outcome
//! is counted and reported. A task's failure is data (a report row), never an `Err` that aborts
//! a chunk.
//!
//! ## Layout
//! - [`copy`] `S3PutObjectCopy`, with [`multipart`] for objects past the multipart threshold
//! - [`tagging`] `S3PutObjectTagging`; [`delete_tagging`] `S3DeleteObjectTagging`
//! - [`acl`] `S3PutObjectAcl`
//! - [`restore`] `S3InitiateRestoreObject`
//! - [`retention`] `S3PutObjectRetention`; [`legal_hold`] `S3PutObjectLegalHold`
//! - [`lambda`] `LambdaInvoke`
//! - [`checksum`] `S3ComputeObjectChecksum`
//! - [`delete`] `S3DeleteObject` (beyond AWS)
//! - [`dry_run`] what a `"DryRun": true` job runs instead of its operation (beyond AWS)
//!
//! Adding an operation: a module with its parameter type implementing [`Operation`], and one
//! line in the [`operations!`] list below.

pub mod acl;
pub mod checksum;
pub mod copy;
pub mod delete;
pub mod delete_tagging;
pub mod dry_run;
pub mod lambda;
pub mod legal_hold;
pub mod powers;
pub mod restore;
pub mod retention;
pub mod tagging;

use crate::chunk::Task;
use crate::job::validate::Invalid;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// What an operation runs with: the task clients (SDK retries off, see
/// [`crate::adapters::Clients`]), the job and the settings that shape the calls.
#[derive(Clone, Copy, Debug)]
pub struct OpContext<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub lambda: &'a aws_sdk_lambda::Client,
    pub job_id: &'a str,
    pub multipart: MultipartSettings,
    /// Where a task cut off mid-way (its future dropped at the worker's deadline) leaves the
    /// clean-up it owes, such as aborting its multipart upload; the worker awaits it.
    pub cleanup: &'a Cleanup,
    /// Where retry delays and invocation ids are drawn from.
    pub ids: &'a crate::ids::Ids,
}

/// Clean-up work started by tasks that were cut off, awaited by the worker before it records
/// anything ([`Cleanup::finish`]).
#[derive(Debug, Default)]
pub struct Cleanup {
    running: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cleanup {
    /// Starts `work` now (a dropped task cannot await it) for [`Cleanup::finish`] to await.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(work);
        if let Ok(mut running) = self.running.lock() {
            running.push(handle);
        }
    }

    /// Awaits the clean-up started so far, for at most 5 s.
    pub async fn finish(&self) {
        let running: Vec<_> = match self.running.lock() {
            Ok(mut r) => r.drain(..).collect(),
            Err(_) => return,
        };
        if running.is_empty() {
            return;
        }
        let all = futures::future::join_all(running);
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            tracing::warn!("clean-up of cut-off tasks still running after 5 s");
        }
    }
}

/// When and how `S3PutObjectCopy` switches from CopyObject to a multipart copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultipartSettings {
    /// Objects larger than this many bytes are copied part by part.
    pub threshold: u64,
    /// Bytes per part (raised when an object would need more than 10,000 parts).
    pub part_size: u64,
}

/// One operation's parameters and behaviour.
pub trait Operation {
    /// Checks what serde's types cannot, at CreateJob. The error's field is relative to
    /// `Operation.<name>` (for example `StorageClass`); [`JobOperation::validate`] prefixes it.
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }

    /// Buckets the operation writes besides the manifest's objects, with the field naming each
    /// (relative, as in `validate`), for the stack's bucket allow-list.
    fn buckets(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Runs once on one object: the report's result message, or why this try failed.
    fn run(
        &self,
        ctx: &OpContext<'_>,
        task: &Task,
    ) -> impl Future<Output = Result<String, OpError>> + Send;
}

/// Declares [`JobOperation`] from `Variant(ParamsType)` pairs and derives its dispatch.
macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident($params:ty), )+) => {
        /// The one operation a job runs (S3 Control `JobOperation`: an object with exactly one
        /// key, the operation's name).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub enum JobOperation {
            $( $(#[$doc])* $variant($params), )+
        }

        impl JobOperation {
            /// Every operation's name, as in the JSON.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($variant), )+];

            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => stringify!($variant), )+
                }
            }

            /// Checks the parameters; the error names the field from `Operation`.
            pub fn validate(&self) -> Result<(), Invalid> {
                let checked = match self {
                    $( Self::$variant(p) => p.validate(), )+
                };
                checked.map_err(|e| Invalid {
                    field: format!("Operation.{}.{}", self.name(), e.field),
                    message: e.message,
                })
            }

            /// Buckets the operation writes (besides the manifest's objects), with full field names.
            pub fn buckets(&self) -> Vec<(String, String)> {
                let found = match self {
                    $( Self::$variant(p) => p.buckets(), )+
                };
                found
                    .into_iter()
                    .map(|(field, bucket)| (format!("Operation.{}.{field}", self.name()), bucket))
                    .collect()
            }

            /// Runs the operation once on one object.
            pub async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
                match self {
                    $( Self::$variant(p) => p.run(ctx, task).await, )+
                }
            }
        }
    };
}

operations! {
    /// Copies each object (CopyObject, or a multipart copy past the threshold).
    S3PutObjectCopy(Box<copy::CopyParams>),
    /// Replaces each object's tag set.
    S3PutObjectTagging(tagging::TaggingParams),
    /// Removes each object's tags.
    S3DeleteObjectTagging(delete_tagging::DeleteTaggingParams),
    /// Sets each object's ACL (canned or explicit grants).
    S3PutObjectAcl(acl::AclParams),
    /// Starts a restore of each archived object.
    S3InitiateRestoreObject(restore::RestoreParams),
    /// Sets each object's Object Lock retention.
    S3PutObjectRetention(retention::RetentionParams),
    /// Sets each object's Object Lock legal hold.
    S3PutObjectLegalHold(legal_hold::LegalHoldParams),
    /// Invokes a Lambda function once per object.
    LambdaInvoke(lambda::LambdaInvokeParams),
    /// Computes each object's checksum into the report.
    S3ComputeObjectChecksum(checksum::ChecksumParams),
    /// Deletes each object (a version, or a delete marker). Beyond AWS.
    S3DeleteObject(delete::DeleteParams),
}

/// A validation error on a field of an operation's parameters (relative to `Operation.<name>`).
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks that an optional value is one of `allowed`, naming the field otherwise.
pub(crate) fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), Invalid> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(invalid(
            field,
            format!("must be one of {}, got {v:?}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// A task's final result, as it appears in the completion report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub succeeded: bool,
    pub http_status: u16,
    pub error_code: String,
    pub message: String,
}

/// The longest `ResultMessage` a report row carries (a LambdaInvoke `resultString` can be
/// megabytes): longer messages are cut, saying so.
pub const MAX_MESSAGE_BYTES: usize = 4096;

fn bounded_message(message: impl Into<String>) -> String {
    let mut message = message.into();
    if message.len() > MAX_MESSAGE_BYTES {
        let total = message.len();
        let note = format!(" … (truncated; {total} bytes)");
        crate::chunk::truncate_utf8(&mut message, MAX_MESSAGE_BYTES - note.len());
        message.push_str(&note);
    }
    message
}

impl Outcome {
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            succeeded: true,
            http_status: 200,
            error_code: String::new(),
            message: bounded_message(message),
        }
    }

    pub fn failure(
        http_status: u16,
        error_code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            succeeded: false,
            http_status,
            error_code: error_code.into(),
            message: bounded_message(message),
        }
    }
}

/// A failed attempt of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    pub http_status: u16,
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl OpError {
    pub fn permanent(http_status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            http_status,
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// Classifies an SDK error (S3 or Lambda: they share the HTTP response type): service
    /// errors keep the service's code, status and message; transport failures and timeouts are
    /// retryable.
    pub fn from_sdk<E>(err: SdkError<E, crate::error::HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &err {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let meta = se.err();
                let code = meta
                    .code()
                    .map(String::from)
                    .unwrap_or_else(|| default_code(status).to_string());
                let message = meta
                    .message()
                    .map(String::from)
                    .unwrap_or_else(|| format!("the service answered HTTP {status} ({code})"));
                let retryable = status >= 500
                    || status == 429
                    || status == 408
                    || matches!(
                        code.as_str(),
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "TooManyRequestsException"
                            | "RequestTimeout"
                            | "RequestTimeTooSkewed"
                    );
                Self {
                    http_status: status,
                    code,
                    message,
                    retryable,
                }
            }
            SdkError::TimeoutError(_) => Self {
                http_status: 408,
                code: "RequestTimeout".into(),
                message: "the request timed out".into(),
                retryable: true,
            },
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Self {
                http_status: 503,
                code: "ServiceUnavailable".into(),
                message: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
                retryable: true,
            },
            _ => Self {
                http_status: 400,
                code: "InvalidRequest".into(),
                message: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
                retryable: false,
            },
        }
    }

    /// HeadObject errors carry no body, so the SDK knows only the status: name them the way
    /// S3 names the same condition on a GET, so the report says what went wrong.
    pub fn for_head(self, version_id: Option<&str>) -> Self {
        let (code, message) = match (self.http_status, version_id) {
            (404, Some(v)) => (
                "NoSuchVersion",
                format!("version {v} of the object does not exist"),
            ),
            (404, None) => ("NoSuchKey", "the object does not exist".to_string()),
            (405, _) => (
                "MethodNotAllowed",
                "the version is a delete marker".to_string(),
            ),
            (403, _) => ("AccessDenied", "access to the object is denied".to_string()),
            _ => return self,
        };
        Self {
            code: code.into(),
            message,
            ..self
        }
    }
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "InvalidRequest",
        403 => "AccessDenied",
        // A 404 without a code is a HEAD (no body) or a non-S3 endpoint: say no more than
        // the status does; `OpError::for_head` names HEAD's cases.
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        412 => "PreconditionFailed",
        503 => "SlowDown",
        s if s >= 500 => "InternalError",
        _ => "UnknownError",
    }
}

/// Retry policy of one task.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// Full-jitter exponential backoff before try `attempt` (1-based; the first retry is 1):
    /// a random delay in `[0, min(cap, base * 2^attempt)]`.
    /// The delay before retry `attempt`: `fraction` (in `[0, 1)`, drawn by the caller) of a
    /// ceiling that doubles with each attempt up to the cap ("full jitter").
    pub fn backoff(&self, attempt: u32, fraction: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(20));
        let ceiling = exp.min(self.cap);
        ceiling.mul_f64(fraction)
    }
}

/// A request's instant for the AWS SDK (the request's types name none of the SDK's).
pub(crate) fn sdk_time(t: crate::job::timestamp::Timestamp) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_nanos(t.0.unix_timestamp_nanos())
        .expect("an OffsetDateTime is within the SDK's range")
}

/// What a worker does with each task: the job's operation, or, for a `"DryRun": true` job,
/// only the existence check of [`dry_run`].
#[derive(Clone, Copy, Debug)]
pub enum Mode<'a> {
    Run(&'a JobOperation),
    DryRun(&'a JobOperation),
}

/// Runs one task to its final outcome. A task from an unparseable manifest row fails without
/// any call.
pub async fn run_task(
    ctx: &OpContext<'_>,
    mode: Mode<'_>,
    task: &Task,
    policy: RetryPolicy,
) -> Outcome {
    if let Some(reason) = &task.invalid {
        return Outcome::failure(400, "InvalidManifestRow", reason.clone());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = guarded(async {
            match mode {
                Mode::Run(op) => op.run(ctx, task).await,
                Mode::DryRun(op) => dry_run::run(ctx, op, task).await,
            }
        })
        .await;
        match result {
            Ok(message) => return Outcome::success(message),
            Err(e) if e.retryable && attempt < policy.max_attempts => {
                let delay = policy.backoff(attempt, ctx.ids.fraction());
                tracing::debug!(row = task.row, attempt, code = %e.code, ?delay, "retrying task");
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                let message = if attempt > 1 {
                    format!("{} (after {attempt} tries)", e.message)
                } else {
                    e.message
                };
                return Outcome::failure(e.http_status, e.code, message);
            }
        }
    }
}

/// Runs one attempt of a task; a panic in it (a bug, never an input) becomes a permanent
/// `500 InternalError` of this task, so the other tasks of its chunk still run and are counted.
/// Lambda builds unwind on panic for this (`panic = "unwind"` in the release profile).
pub async fn guarded<F>(attempt: F) -> Result<String, OpError>
where
    F: std::future::Future<Output = Result<String, OpError>>,
{
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(attempt).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(panic = %what, "a task panicked");
            Err(OpError::permanent(
                500,
                "InternalError",
                format!("the task failed inside batchops: {what}"),
            ))
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Clients that point nowhere, for unit tests that build requests without sending them.

    pub fn s3() -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        )
    }

    pub fn lambda() -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::Config::builder()
                .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
                .region(aws_sdk_lambda::config::Region::new("us-east-1"))
                .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security issue §7: a panic in one task fails that task; the tasks beside it run on.
    #[tokio::test]
    async fn a_task_that_panics_is_a_failed_task_not_a_lost_batch() {
        let attempts: Vec<_> = (0..3)
            .map(|i| {
                guarded(async move {
                    tokio::task::yield_now().await;
                    if i == 1 {
                        panic!("a bug in an operation");
                    }
                    Ok(format!("task {i}"))
                })
            })
            .collect();
        use futures::StreamExt;
        let results: Vec<_> = futures::stream::iter(attempts).buffered(3).collect().await;
        assert_eq!(results[0], Ok("task 0".into()));
        assert_eq!(results[2], Ok("task 2".into()));
        let e = results[1].clone().unwrap_err();
        assert_eq!(
            (e.http_status, e.code.as_str(), e.retryable),
            (500, "InternalError", false)
        );
        assert!(e.message.contains("a bug in an operation"), "{}", e.message);
    }

    /// Lambda builds must unwind for [`guarded`] to catch anything: cargo-lambda aborts on
    /// panic unless the profile says otherwise.
    #[test]
    fn the_release_profile_unwinds_on_panic() {
        let manifest = include_str!("../../../../Cargo.toml");
        let release = manifest
            .split("[profile.release]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("a [profile.release] section");
        assert!(
            release
                .lines()
                .any(|l| l.replace(' ', "") == "panic=\"unwind\""),
            "[profile.release] sets panic = \"unwind\": {release}"
        );
    }

    #[test]
    fn a_megabyte_result_message_is_cut_to_the_report_bound_saying_so() {
        let outcome = Outcome::success("ü".repeat(500_000));
        assert!(outcome.message.len() <= MAX_MESSAGE_BYTES);
        assert!(
            outcome.message.ends_with("(truncated; 1000000 bytes)"),
            "{}",
            &outcome.message[outcome.message.len() - 40..]
        );
        let short = Outcome::failure(500, "InternalError", "short");
        assert_eq!(short.message, "short");
    }

    #[test]
    fn backoff_is_capped_and_grows() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let ids = crate::ids::Ids::seeded(1);
        for attempt in 1..30 {
            let d = p.backoff(attempt, ids.fraction());
            assert!(d <= Duration::from_millis(1000), "{d:?}");
            assert!(d <= Duration::from_millis(100) * (1 << attempt.min(20)));
        }
    }

    #[tokio::test]
    async fn invalid_rows_fail_without_a_call() {
        // The clients point nowhere: a call would fail with a transport error, not this.
        let (s3, lambda) = (test_support::s3(), test_support::lambda());
        let ctx = OpContext {
            s3: &s3,
            lambda: &lambda,
            job_id: "j",
            multipart: MultipartSettings {
                threshold: u64::MAX,
                part_size: 5 << 20,
            },
            cleanup: &Default::default(),
            ids: &Default::default(),
        };
        let task = Task {
            row: 4,
            bucket: "b".into(),
            key: "k%zz".into(),
            version_id: None,
            invalid: Some("row 5: malformed percent-escape".into()),
        };
        let op = JobOperation::S3PutObjectTagging(Default::default());
        let policy = RetryPolicy {
            max_attempts: 1,
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        for mode in [Mode::Run(&op), Mode::DryRun(&op)] {
            let out = run_task(&ctx, mode, &task, policy).await;
            assert_eq!(
                out,
                Outcome::failure(400, "InvalidManifestRow", "row 5: malformed percent-escape")
            );
        }
    }

    #[test]
    fn every_operation_has_a_name_and_validation_names_the_operation() {
        assert_eq!(JobOperation::NAMES.len(), 10);
        let op: JobOperation = serde_json::from_value(
            serde_json::json!({"S3PutObjectCopy": {"TargetResource": "nope!"}}),
        )
        .unwrap();
        assert_eq!(
            op.validate().unwrap_err().field,
            "Operation.S3PutObjectCopy.TargetResource"
        );
    }

    #[test]
    fn head_errors_are_named() {
        let e = OpError::permanent(404, "NotFound", "the service answered HTTP 404");
        assert_eq!(e.clone().for_head(None).code, "NoSuchKey");
        assert_eq!(default_code(404), "NotFound");
        let v = e.for_head(Some("v1"));
        assert_eq!(
            (v.code.as_str(), v.message.as_str()),
            ("NoSuchVersion", "version v1 of the object does not exist")
        );
    }
}
