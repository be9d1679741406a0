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
//! - [`source`]: opening any of them as one [`ManifestStream`] ([`stream`]: the bounded
//!   channel rows travel through).

pub mod csv;
pub mod error;
pub mod generator;
pub mod inventory;
pub mod source;
pub mod spec;
pub mod stream;

pub use error::ManifestError;
pub use source::{ManifestSource, open};
pub use stream::{ManifestStream, STREAM_BUFFER_ROWS};

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
}
