//! Running one chunk: its tasks concurrently, its rows to the stack bucket, its counts into
//! the job exactly once.

use crate::adapters::ChunkCounts;
use crate::chunk::Chunk;
use crate::job::JobStatus;
use crate::ops::{Mode, MultipartSettings, OpContext, Outcome, RetryPolicy, run_task};
use crate::planner::maybe_finalize;
use crate::report::chunk_rows;
use crate::{Deps, Error, Result};
use futures::StreamExt;
use tracing::{info, instrument, warn};

/// What handling a chunk message came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkResult {
    /// Ran and counted now.
    Counted(ChunkCounts),
    /// Already counted by an earlier delivery: nothing changed.
    Duplicate,
    /// The job is cancelled or failed: the tasks were counted as not run.
    Dropped,
}

/// The stack-bucket key of one attempt's result rows. Each attempt writes its own object; the
/// chunk record names the one whose counts were committed, so rows and counts always agree.
pub fn result_key(job_id: &str, chunk: u64) -> String {
    format!("results/{job_id}/{chunk:012}/{}.csv", uuid::Uuid::new_v4())
}

#[instrument(skip(deps, chunk), fields(job_id = %chunk.job_id, chunk = chunk.chunk, tasks = chunk.tasks.len()))]
pub async fn process_chunk(deps: &Deps, chunk: &Chunk) -> Result<ChunkResult> {
    let job_id = chunk.job_id.as_str();
    if deps.store.chunk_counted(job_id, chunk.chunk).await? {
        info!("duplicate delivery; already counted");
        return Ok(ChunkResult::Duplicate);
    }
    let job = deps.store.require(job_id).await?;
    if job.status.drops_work() {
        let counts = ChunkCounts {
            not_run: chunk.tasks.len() as u64,
            ..Default::default()
        };
        if deps
            .store
            .count_chunk(job_id, chunk.chunk, counts, None)
            .await?
        {
            maybe_finalize(deps, job_id).await?;
        }
        info!(status = %job.status, "job is ending; chunk dropped unrun");
        return Ok(ChunkResult::Dropped);
    }
    if !matches!(job.status, JobStatus::Preparing | JobStatus::Active) {
        return Err(Error::StatusConflict {
            job_id: job_id.into(),
            actual: job.status.to_string(),
            expected: "Preparing|Active".into(),
        });
    }

    let policy = RetryPolicy {
        max_attempts: deps.config.task_max_attempts,
        base: deps.config.retry_base,
        cap: deps.config.retry_cap,
    };
    let Some(op) = &job.request.operation else {
        return Err(Error::Record(format!("job {job_id} has no Operation")));
    };
    let ctx = OpContext {
        s3: deps.objects.tasks(),
        lambda: &deps.lambda,
        job_id,
        multipart: MultipartSettings {
            threshold: deps.config.multipart_threshold,
            part_size: deps.config.multipart_part_size,
        },
    };
    let mode = if job.request.dry_run {
        Mode::DryRun(op)
    } else {
        Mode::Run(op)
    };
    // Futures are built up front (not in a stream closure) so the handler future is `Send`.
    let runs: Vec<_> = chunk
        .tasks
        .iter()
        .map(|task| run_task(&ctx, mode, task, policy))
        .collect();
    let outcomes: Vec<Outcome> = futures::stream::iter(runs)
        .buffered(deps.config.task_concurrency.max(1))
        .collect()
        .await;

    let counts = ChunkCounts {
        succeeded: outcomes.iter().filter(|o| o.succeeded).count() as u64,
        failed: outcomes.iter().filter(|o| !o.succeeded).count() as u64,
        not_run: 0,
    };
    let key = result_key(job_id, chunk.chunk);
    let rows = chunk_rows(&chunk.tasks, &outcomes)?;
    deps.objects
        .put_bytes(&deps.config.bucket, &key, rows, "text/csv")
        .await?;
    if !deps
        .store
        .count_chunk(job_id, chunk.chunk, counts, Some(&key))
        .await?
    {
        // Another delivery of this chunk won the race: its rows are the ones reported.
        warn!("chunk counted concurrently by another delivery; discarding this attempt");
        if let Err(e) = deps.objects.delete(&deps.config.bucket, &key).await {
            warn!(error = %e, key, "could not delete the losing attempt's rows");
        }
        return Ok(ChunkResult::Duplicate);
    }
    info!(
        succeeded = counts.succeeded,
        failed = counts.failed,
        "chunk counted"
    );
    maybe_finalize(deps, job_id).await?;
    Ok(ChunkResult::Counted(counts))
}
