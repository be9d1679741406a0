//! A problem with a manifest as a whole (a leaf: the crate's [`crate::Error`] wraps it).

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
    #[error("the manifest s3://{bucket}/{key} changed while the job was being planned")]
    Changed { bucket: String, key: String },
    #[error("the manifest is empty")]
    Empty,
    #[error("reading the manifest failed after row {rows}: {reason}")]
    Stream { rows: u64, reason: String },
    #[error("the manifest request is invalid: {0}")]
    Spec(String),
    #[error("the inventory manifest is invalid: {0}")]
    Inventory(String),
    #[error(
        "inventory data file s3://{bucket}/{key} is corrupt: its MD5 is {actual}, manifest.json says {expected}"
    )]
    Checksum {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },
    #[error("bucket {0} is not in this stack's allowed buckets")]
    Forbidden(String),
    /// Writing the generated manifest (`EnableManifestOutput`) failed: for good (no such
    /// bucket, access denied) the job fails; for now (throttling, 5xx), planning is retried.
    #[error("the generated manifest could not be written to s3://{bucket}: {reason}")]
    OutputWrite {
        bucket: String,
        reason: String,
        transient: bool,
    },
    /// Throttling, a 5xx or a dropped connection: planning is retried from its checkpoint,
    /// and fails the job only on the plan message's last delivery.
    #[error("reading the manifest s3://{bucket}/{key} failed for now: {reason}")]
    Transient {
        bucket: String,
        key: String,
        reason: String,
    },
}

impl ManifestError {
    /// Whether planning should be retried rather than the job failed. A stream that breaks
    /// mid-body (a reset connection) is transient too; a corrupt file is caught by its
    /// checksum, which is not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ManifestError::Transient { .. }
                | ManifestError::Stream { .. }
                | ManifestError::OutputWrite {
                    transient: true,
                    ..
                }
        )
    }

    /// The `FailureCode` reported in the job's `FailureReasons`.
    pub fn failure_code(&self) -> &'static str {
        match self {
            ManifestError::Unreadable { .. }
            | ManifestError::Stream { .. }
            | ManifestError::Transient { .. } => "ManifestReadFailure",
            ManifestError::EtagMismatch { .. } | ManifestError::Changed { .. } => {
                "ManifestETagMismatch"
            }
            ManifestError::Empty => "ManifestEmpty",
            ManifestError::Spec(_) | ManifestError::Inventory(_) => "ManifestInvalid",
            ManifestError::Checksum { .. } => "ManifestChecksumMismatch",
            ManifestError::Forbidden(_) => "ManifestAccessDenied",
            ManifestError::OutputWrite { .. } => "ManifestOutputWriteFailed",
        }
    }
}
