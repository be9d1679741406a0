//! A generator job's chunks as they were cut, kept in the stack bucket before they are
//! queued (see [`ChunkDefinition`]).

use crate::chunk::Chunk;
use crate::manifest::Position;
use crate::{Deps, Error, Result};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// A generator job's chunk as it was cut, written before it is queued: what chunk `n` holds,
/// for good. A manifest file is pinned by its ETag, so its chunks are cut again identically;
/// a bucket listing is not (objects come and go), so a planner run again — after a crash, or
/// a second delivery of its plan message — queues the definitions it finds instead of cutting
/// anew, and goes on listing where the last one says. The first planner to write a
/// definition wins (`If-None-Match: *`); one that finds its chunk defined by another stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDefinition {
    pub chunk: Chunk,
    /// Where the listing goes on after it (none: the listing ended with it).
    pub next: Option<Position>,
    /// The row number of the row after it.
    pub next_row: u64,
}

/// Where chunk definitions live in the stack bucket (deleted once a checkpoint or the end of
/// planning covers them).
pub const DEFINITIONS_PREFIX: &str = "plan/";

fn definition_key(job_id: &str, chunk: u64) -> String {
    format!("{DEFINITIONS_PREFIX}{job_id}/{chunk:012}.json")
}

pub(super) async fn read_definition(
    deps: &Deps,
    job_id: &str,
    chunk: u64,
) -> Result<Option<ChunkDefinition>> {
    let Some(bytes) = deps
        .objects
        .get_bytes_opt(&deps.config.bucket, &definition_key(job_id, chunk))
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Record(format!("job {job_id}: chunk {chunk}: bad definition: {e}")))
}

/// Writes a chunk's definition unless one exists: `false` when another planner defined it.
pub(super) async fn define(deps: &Deps, def: &ChunkDefinition) -> Result<bool> {
    let body = serde_json::to_vec(def).map_err(Error::Message)?;
    deps.objects
        .put_bytes_if_absent(
            &deps.config.bucket,
            &definition_key(&def.chunk.job_id, def.chunk.chunk),
            body,
            "application/json",
        )
        .await
}

/// Deletes the definitions of chunks `from..to` (covered by a checkpoint or the end of
/// planning); what is left behind by a crash expires with the bucket's lifecycle rule.
pub(super) async fn forget_definitions(deps: &Deps, job_id: &str, from: u64, to: u64) {
    use futures::StreamExt;
    let deletes = (from..to).map(|chunk| async move {
        let key = definition_key(job_id, chunk);
        match deps.objects.delete(&deps.config.bucket, &key).await {
            Ok(()) => {}
            Err(e) => warn!(chunk, error = %e, "could not delete a chunk definition"),
        }
    });
    futures::stream::iter(deletes)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}
