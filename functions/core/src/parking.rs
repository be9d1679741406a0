//! A paused job's chunks wait off the work queue: parked in the stack bucket until the job is
//! resumed, cancelled or failed.
//!
//! A worker that receives a chunk of a `Pausing` or `Paused` job writes the chunk's message to
//! `parked/<job>/<chunk>.json` and acknowledges it, so nothing cycles through SQS for the
//! length of the pause (and a pause may outlast SQS's 14-day retention). Whatever moves the job
//! out of the pause — resume, cancel, a planner failing it — queues its parked chunks again and
//! then deletes them ([`unpark`]). No chunk is stranded by a race: the worker reads the status
//! again after parking and unparks if the pause is over (a resume that listed before the write
//! landed is caught there), and the sweep unparks the chunks of any job no longer paused. A
//! chunk queued twice this way is counted once, like any redelivery.

use crate::chunk::Chunk;
use crate::job::JobStatus;
use crate::{Deps, Result};
use tracing::info;

/// Where parked chunks live in the stack bucket.
pub const PARKED_PREFIX: &str = "parked/";

fn job_prefix(job_id: &str) -> String {
    format!("{PARKED_PREFIX}{job_id}/")
}

fn parked_key(job_id: &str, chunk: u64) -> String {
    format!("{}{chunk:012}.json", job_prefix(job_id))
}

/// Parks a chunk of a paused job (on the work queue for `priority` when it goes back). If the
/// pause has ended by the time the chunk is parked, the job's parked chunks are queued again
/// at once.
pub async fn park(deps: &Deps, chunk: &Chunk, priority: i64) -> Result<()> {
    let body = serde_json::to_vec(chunk).map_err(crate::Error::Message)?;
    deps.objects
        .put_bytes(
            &deps.config.bucket,
            &parked_key(&chunk.job_id, chunk.chunk),
            body,
            "application/json",
        )
        .await?;
    let now = deps.store.status(&chunk.job_id).await?;
    if !matches!(now, JobStatus::Pausing | JobStatus::Paused) {
        info!(status = %now, "the pause ended while parking; queuing again");
        unpark(deps, &chunk.job_id, priority).await?;
    }
    Ok(())
}

/// Queues a job's parked chunks again (on the work queue for `priority`), then deletes them.
/// Returns how many were queued.
pub async fn unpark(deps: &Deps, job_id: &str, priority: i64) -> Result<u64> {
    let bucket = &deps.config.bucket;
    let prefix = job_prefix(job_id);
    let mut queued = 0u64;
    let mut token: Option<String> = None;
    loop {
        let (objects, next) = deps
            .objects
            .list_page(bucket, &prefix, None, token.as_deref())
            .await?;
        for batch in objects.chunks(10) {
            let mut chunks = Vec::with_capacity(batch.len());
            for object in batch {
                let body = deps.objects.get_bytes(bucket, &object.key).await?;
                chunks.push(serde_json::from_slice::<Chunk>(&body).map_err(crate::Error::Message)?);
            }
            deps.queues.send_chunks(&chunks, priority).await?;
            for object in batch {
                deps.objects.delete(bucket, &object.key).await?;
            }
            queued += chunks.len() as u64;
        }
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    if queued > 0 {
        info!(job_id, queued, "parked chunks queued again");
    }
    Ok(queued)
}

/// Deletes the parked chunks of a job that no longer exists.
pub async fn discard(deps: &Deps, job_id: &str) -> Result<()> {
    let bucket = &deps.config.bucket;
    let mut token: Option<String> = None;
    loop {
        let (objects, next) = deps
            .objects
            .list_page(bucket, &job_prefix(job_id), None, token.as_deref())
            .await?;
        for object in &objects {
            deps.objects.delete(bucket, &object.key).await?;
        }
        match next {
            Some(t) => token = Some(t),
            None => return Ok(()),
        }
    }
}

/// The jobs that have parked chunks (one listing of the parked prefix by job).
pub async fn parked_jobs(deps: &Deps) -> Result<Vec<String>> {
    let prefixes = deps
        .objects
        .list_prefixes(&deps.config.bucket, PARKED_PREFIX)
        .await?;
    Ok(prefixes
        .into_iter()
        .filter_map(|p| {
            p.strip_prefix(PARKED_PREFIX)
                .map(|rest| rest.trim_end_matches('/').to_string())
        })
        .filter(|id| !id.is_empty())
        .collect())
}
