//! Where planning stands between planner invocations: the job's `PLAN` item, which the job
//! store keeps and the planner writes. A leaf beside the manifest's [`Position`], so that the
//! store and the planner share it without depending on each other.

use crate::manifest::{Position, Resume};
use serde::{Deserialize, Serialize};

/// What an invocation is reading the manifest for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `ConfirmationRequired`: counting the rows; nothing is queued.
    Count,
    /// Queuing chunks.
    Plan,
}

/// Where planning stands between invocations (stored as the job's `PLAN` item).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub phase: Phase,
    /// The first row not yet queued (or counted).
    pub at: Position,
    /// Its row number: the rows before it are all queued.
    pub row: u64,
    /// The number of the chunk that will hold it.
    pub next_chunk: u64,
    /// The manifest's ETag as first read.
    pub etag: String,
    /// The chunk size planning started with (kept, so chunk boundaries cannot move).
    pub chunk_size: usize,
    /// Invocations that have stopped part-way so far.
    pub continuations: u64,
    /// The generator scan span planning started with (kept like the chunk size; absent in
    /// checkpoints written before it existed: the configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_span: Option<u64>,
    /// When it was saved: the sweep judges a long plan's progress by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<String>,
}

impl Checkpoint {
    /// Where reading resumes from this checkpoint.
    pub fn resume(&self) -> Resume {
        Resume {
            at: self.at.clone(),
            row: self.row,
            etag: self.etag.clone(),
        }
    }
}
