//! Manifest readers. A manifest is streamed: rows are parsed as bytes arrive from S3 (or as
//! ListObjectsV2 pages arrive, for a generator) and handed on through a bounded channel, so
//! memory does not grow with the manifest's length.
//!
//! Every row comes with its [`Position`]: where to start reading again to get that very row
//! back. The planner saves the position of the first row it has not queued when it stops
//! before its time budget, and the next invocation resumes there ([`Resume`]).
//!
//! A bad *row* is never an error here: it becomes a task carrying an `invalid` reason, which the
//! worker reports as a failed task. Only problems with the manifest as a whole (unreadable,
//! wrong ETag or checksum, empty) are [`ManifestError`]s, and they fail the job.
//!
//! ## Layout
//! - [`csv`]: `S3BatchOperations_CSV_20180820` rows, key decoding.
//! - [`inventory`]: `S3InventoryReport_CSV_20161130`: `manifest.json`, gzip CSV data files.
//! - [`generator`]: `S3JobManifestGenerator`: ListObjectsV2 with filters; the generated
//!   manifest's output files.
//! - [`source`]: opening any of them as one [`ManifestStream`].

pub mod csv;
pub mod generator;
pub mod inventory;
pub mod source;
pub mod spec;

pub use source::{ManifestSource, ManifestStream, STREAM_BUFFER_ROWS, open};

use crate::chunk::Task;
use serde::{Deserialize, Serialize};

/// Where a row stands in its manifest: enough to read it again, and everything after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// `S3BatchOperations_CSV_20180820`: the byte offset where the row starts (read again
    /// with a ranged GetObject).
    Csv { offset: u64 },
    /// Inventory report: the data file (index into `manifest.json`'s `files`) and how many
    /// CSV records of that file come before the row (gzip cannot be entered mid-stream, so
    /// the file is read again and that many records skipped).
    Inventory { file: u32, record: u64 },
    /// Generator: the key prefix being listed (index into the sorted prefixes) and the key
    /// to list after (ListObjectsV2 `StartAfter`; none: from the prefix's start).
    Generator {
        prefix: u32,
        start_after: Option<String>,
    },
}

/// One row of a manifest (its task and where it stands), or a scan boundary.
///
/// A scan boundary (`task: None`) is a point of a generator's listing where a chunk ends even
/// if it is not full, placed every [`Config::generator_scan_span`] listed keys counted from
/// where the listing started (a pure function of the listing and the start, like a full
/// chunk's end): a generator whose filter admits few keys still reaches a chunk boundary, and
/// so a checkpoint, within its time budget. `at` is where the listing goes on.
///
/// [`Config::generator_scan_span`]: crate::Config::generator_scan_span
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub task: Option<Task>,
    pub at: Position,
}

impl Item {
    pub fn row(task: Task, at: Position) -> Self {
        Self {
            task: Some(task),
            at,
        }
    }

    pub fn boundary(at: Position) -> Self {
        Self { task: None, at }
    }
}

/// Where to resume reading: a saved position, the number the row there gets, and the ETag of
/// the manifest object read so far (a changed manifest is refused rather than mixed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub at: Position,
    pub row: u64,
    pub etag: String,
}

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
    /// The manifest object (or listing) could not be read: transient when retrying can
    /// help (throttling, 5xx, transport), else the job fails (403, 404 …).
    pub fn unreadable(bucket: &str, key: &str, e: crate::Error) -> Self {
        let (bucket, key, reason) = (bucket.to_string(), key.to_string(), e.to_string());
        if e.is_retryable() {
            ManifestError::Transient {
                bucket,
                key,
                reason,
            }
        } else {
            ManifestError::Unreadable {
                bucket,
                key,
                reason,
            }
        }
    }

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
