//! Operations: one module per operation, each a function from a task to an [`Outcome`].
//! [`run_task`] wraps them with the retry policy: transient errors (throttling, 5xx,
//! timeouts, dropped connections) are retried with capped exponential backoff and full jitter,
//! up to `task_max_attempts` tries; only the final outcome is counted and reported.

pub mod copy;
pub mod tagging;

use crate::chunk::Task;
use crate::job::spec::JobOperation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use rand::Rng;
use std::time::Duration;

/// A task's final result, as it appears in the completion report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub succeeded: bool,
    pub http_status: u16,
    pub error_code: String,
    pub message: String,
}

impl Outcome {
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            succeeded: true,
            http_status: 200,
            error_code: String::new(),
            message: message.into(),
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
            message: message.into(),
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

    /// Classifies an S3 SDK error: service errors keep S3's code, status and message;
    /// transport failures and timeouts are retryable.
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
                    .unwrap_or_else(|| format!("S3 answered HTTP {status} ({code})"));
                let retryable = status >= 500
                    || status == 429
                    || status == 408
                    || matches!(
                        code.as_str(),
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
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
                message: "the request to S3 timed out".into(),
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
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "InvalidRequest",
        403 => "AccessDenied",
        404 => "NoSuchKey",
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
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(20));
        let ceiling = exp.min(self.cap);
        ceiling.mul_f64(rng.random::<f64>())
    }
}

/// Runs one task to its final outcome. A task from an unparseable manifest row fails without
/// any call.
pub async fn run_task(
    s3: &aws_sdk_s3::Client,
    op: &JobOperation,
    task: &Task,
    policy: RetryPolicy,
) -> Outcome {
    if let Some(reason) = &task.invalid {
        return Outcome::failure(400, "InvalidManifestRow", reason.clone());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match op {
            JobOperation::S3PutObjectCopy(p) => copy::run(s3, p, task).await,
            JobOperation::S3PutObjectTagging(p) => tagging::run(s3, p, task).await,
        };
        match result {
            Ok(message) => return Outcome::success(message),
            Err(e) if e.retryable && attempt < policy.max_attempts => {
                let delay = policy.backoff(attempt, &mut rand::rng());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_grows() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let mut rng = rand::rng();
        for attempt in 1..30 {
            let d = p.backoff(attempt, &mut rng);
            assert!(d <= Duration::from_millis(1000), "{d:?}");
            assert!(d <= Duration::from_millis(100) * (1 << attempt.min(20)));
        }
    }

    #[tokio::test]
    async fn invalid_rows_fail_without_a_call() {
        // The client points nowhere: a call would fail with a transport error, not this.
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(conf);
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
        let out = run_task(&s3, &op, &task, policy).await;
        assert_eq!(
            out,
            Outcome::failure(400, "InvalidManifestRow", "row 5: malformed percent-escape")
        );
    }
}
