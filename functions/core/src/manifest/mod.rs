//! Manifest readers. A manifest is streamed: rows are parsed as bytes arrive from S3 and handed
//! on through a bounded channel, so memory does not grow with the manifest's length.
//!
//! A bad *row* is never an error here: it becomes a task carrying an `invalid` reason, which the
//! worker reports as a failed task. Only problems with the manifest as a whole (unreadable,
//! wrong ETag, empty) are [`ManifestError`]s, and they fail the job.

pub mod csv;
pub mod source;

pub use source::{ManifestStream, open_manifest};

/// A problem with the manifest as a whole; it fails the job with this reason.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest s3://{bucket}/{key} could not be read: {reason}")]
    Unreadable {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("the manifest ETag {actual} does not match the ETag {expected} given in the request")]
    EtagMismatch { expected: String, actual: String },
    #[error("the manifest is empty")]
    Empty,
    #[error("reading the manifest failed after row {rows}: {reason}")]
    Stream { rows: u64, reason: String },
    #[error("the manifest request is invalid: {0}")]
    Spec(String),
}

impl ManifestError {
    /// The `FailureCode` reported in the job's `FailureReasons`.
    pub fn failure_code(&self) -> &'static str {
        match self {
            ManifestError::Unreadable { .. } | ManifestError::Stream { .. } => {
                "ManifestReadFailure"
            }
            ManifestError::EtagMismatch { .. } => "ManifestETagMismatch",
            ManifestError::Empty => "ManifestEmpty",
            ManifestError::Spec(_) => "ManifestInvalid",
        }
    }
}
