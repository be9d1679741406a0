//! The crate's error type. A task's failure is *data* (a failed report row), never an `Error`;
//! an `Error` means a pipeline step could not finish and its message should be retried (when
//! [`Error::is_retryable`]) or the job failed with a reason.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),

    #[error("job {0} not found")]
    JobNotFound(String),

    #[error("job {job_id}: status is {actual}, expected one of {expected:?}")]
    StatusConflict {
        job_id: String,
        actual: crate::job::status::JobStatus,
        expected: Vec<crate::job::status::JobStatus>,
    },

    #[error("manifest: {0}")]
    Manifest(#[from] crate::manifest::error::ManifestError),

    #[error("malformed message: {0}")]
    Message(#[source] serde_json::Error),

    #[error("malformed stored record: {0}")]
    Record(String),

    /// The event bus refused or did not answer (job events stay in the outbox).
    #[error("EventBridge: {0}")]
    Events(String),

    #[error("DynamoDB {op}: {source}")]
    Dynamo {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        retryable: bool,
    },

    #[error("SQS {op}: {source}")]
    Sqs {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("S3 {op} s3://{bucket}/{key}: {source}")]
    S3 {
        op: &'static str,
        bucket: String,
        key: String,
        status: Option<u16>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("report: {0}")]
    Csv(#[from] csv::Error),

    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),

    #[error("task join: {0}")]
    Join(#[from] tokio::task::JoinError),

    /// Another delivery of the chunk holds its claim and may be running its tasks: this one
    /// must run none, and try again once the claim has lapsed (or the chunk is counted).
    #[error(
        "chunk {chunk} of job {job_id} is being run by another delivery (its claim lapses in {retry_after_secs} s)"
    )]
    ChunkBusy {
        job_id: String,
        chunk: u64,
        retry_after_secs: u32,
    },

    /// A delivery's deadline came before any of the chunk's remaining tasks finished: nothing
    /// to keep, so the delivery fails and the next one tries again (the last one reports them
    /// failed).
    #[error(
        "chunk {chunk} of job {job_id}: no task finished before the worker's deadline (a task that needs longer than one invocation)"
    )]
    Deadline { job_id: String, chunk: u64 },
}

impl Error {
    /// Whether retrying the same step later can succeed. Throttling, 5xx and transport errors
    /// can; a malformed message or a missing job cannot.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::JobNotFound(_)
            | Error::StatusConflict { .. }
            | Error::Message(_)
            | Error::Record(_)
            | Error::Manifest(_) => false,
            Error::Dynamo { retryable, .. } => *retryable,
            Error::S3 { status, .. } => {
                !matches!(status, Some(s) if (400..500).contains(s) && *s != 429 && *s != 408)
            }
            Error::Sqs { .. }
            | Error::Events(_)
            | Error::Csv(_)
            | Error::Io(_)
            | Error::Join(_)
            | Error::ChunkBusy { .. }
            | Error::Deadline { .. } => true,
        }
    }

    /// How long, at least, before a retry can succeed, when the error knows (a busy chunk:
    /// until its claim lapses).
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Error::ChunkBusy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub(crate) fn dynamo<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let retryable = match &err {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se.err().code().unwrap_or_default();
                status >= 500
                    || status == 429
                    || code.contains("Throttl")
                    || code == "ProvisionedThroughputExceededException"
                    || code == "RequestLimitExceeded"
                    || code == "TransactionConflictException"
            }
            SdkError::ConstructionFailure(_) => false,
            _ => true,
        };
        Error::Dynamo {
            op,
            source: aws_sdk_dynamodb::error::DisplayErrorContext(&err)
                .to_string()
                .into(),
            retryable,
        }
    }

    pub(crate) fn sqs<E>(op: &'static str, err: E) -> Self
    where
        E: std::error::Error,
    {
        Error::Sqs {
            op,
            source: aws_sdk_sqs::error::DisplayErrorContext(&err)
                .to_string()
                .into(),
        }
    }
}

/// The SDK's raw HTTP response type (the same type in every AWS SDK crate).
pub(crate) type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_event_bus_is_named_as_such_and_worth_retrying() {
        let e = Error::Events("PutEvents to bus default: service error".into());
        assert_eq!(
            e.to_string(),
            "EventBridge: PutEvents to bus default: service error"
        );
        assert!(e.is_retryable());
        assert!(!Error::Record("x".into()).is_retryable());
    }
}
