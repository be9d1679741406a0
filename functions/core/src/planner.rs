//! Planning a job: stream its manifest, cut chunks, queue them, count the rows.
//!
//! The planner is safe to run twice for one job: chunk numbers are a pure function of the
//! manifest, a re-sent chunk is counted once by the worker, and the totals are written with
//! `SET`, not `ADD`.

use crate::adapters::dynamo::StatusChange;
use crate::chunk::{Chunk, Chunker, FinalizeMessage};
use crate::job::{Job, JobStatus};
use crate::manifest::{ManifestError, open_manifest};
use crate::{Deps, Error, Result};
use tokio::task::JoinSet;
use tracing::{info, instrument, warn};

/// Chunk messages queued per `SendMessageBatch` round, and rounds in flight at once.
const CHUNKS_PER_ROUND: usize = 10;
const ROUNDS_IN_FLIGHT: usize = 4;

/// What planning did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub tasks: u64,
    pub chunks: u64,
}

/// Plans one job. Errors that retrying can fix are returned (the plan message is then retried
/// by SQS); a bad manifest fails the job with a reason and returns `Ok`.
#[instrument(skip(deps), fields(job_id = %job_id))]
pub async fn plan_job(deps: &Deps, job_id: &str) -> Result<PlanSummary> {
    let job = deps.store.require(job_id).await?;
    match job.status {
        JobStatus::New => {
            let started = deps
                .store
                .transition(
                    job_id,
                    &[JobStatus::New],
                    JobStatus::Preparing,
                    StatusChange::default(),
                )
                .await;
            match started {
                Ok(_) => {}
                Err(Error::StatusConflict { actual, .. }) => {
                    info!(%actual, "job left New before planning started");
                    return Ok(PlanSummary::default());
                }
                Err(e) => return Err(e),
            }
        }
        // A planner that died part-way: plan again from the start (chunks are deterministic).
        JobStatus::Preparing => {}
        // Confirmed by the user: plan for real.
        JobStatus::Ready => {}
        JobStatus::Active if !job.planned => {}
        other => {
            info!(status = %other, "nothing to plan");
            return Ok(PlanSummary::default());
        }
    }
    if job.request.confirmation_required
        && matches!(job.status, JobStatus::New | JobStatus::Preparing)
    {
        return count_for_confirmation(deps, &job).await;
    }
    let Some(manifest) = job.request.manifest.clone() else {
        fail_job(deps, job_id, "ManifestInvalid", "the job has no Manifest").await?;
        return Ok(PlanSummary::default());
    };
    let mut stream = match open_manifest(&deps.objects, &manifest, 0).await {
        Ok(s) => s,
        Err(e) => {
            fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
            return Ok(PlanSummary::default());
        }
    };

    let mut chunker = Chunker::new(job_id, deps.config.chunk_size, 0);
    let mut round: Vec<Chunk> = Vec::new();
    let mut in_flight: JoinSet<Result<()>> = JoinSet::new();
    let mut tasks = 0u64;
    let mut activated = job.status == JobStatus::Active;
    let mut stream_error: Option<ManifestError> = None;

    loop {
        let next = stream.rows.recv().await;
        let row = match next {
            Some(Ok(task)) => Some(task),
            Some(Err(e)) => {
                stream_error = Some(e);
                None
            }
            None => None,
        };
        let done = row.is_none();
        if let Some(task) = row {
            tasks += 1;
            round.extend(chunker.push(task));
        } else {
            round.extend(chunker.finish());
        }
        if round.len() >= CHUNKS_PER_ROUND || (done && !round.is_empty()) {
            let batch = std::mem::take(&mut round);
            if !activated {
                // Send the first round inline: the job is Active once a chunk is queued.
                deps.queues.send_chunks(&batch, job.priority).await?;
                activate(deps, &job).await?;
                activated = true;
            } else {
                while in_flight.len() >= ROUNDS_IN_FLIGHT {
                    in_flight.join_next().await.expect("non-empty")??;
                }
                let queues = deps.queues.clone();
                let priority = job.priority;
                in_flight.spawn(async move { queues.send_chunks(&batch, priority).await });
            }
        }
        if done {
            break;
        }
    }
    while let Some(sent) = in_flight.join_next().await {
        sent??;
    }

    let chunks = chunker.next_chunk();
    if let Some(e) = stream_error {
        warn!(error = %e, tasks, "manifest stream failed");
        if chunks == 0 {
            fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
            return Ok(PlanSummary::default());
        }
        // Some chunks are queued already: record what was planned and let the job fail
        // through Failing, so what ran is still counted and reported.
        deps.store
            .finish_planning(job_id, tasks, chunks, &stream.etag)
            .await?;
        let change = StatusChange::default().failure(e.failure_code(), e.to_string());
        match deps
            .store
            .transition(job_id, &[JobStatus::Active], JobStatus::Failing, change)
            .await
        {
            Ok(_) | Err(Error::StatusConflict { .. }) => {}
            Err(other) => return Err(other),
        }
        maybe_finalize(deps, job_id).await?;
        return Ok(PlanSummary { tasks, chunks });
    }
    if tasks == 0 {
        let e = ManifestError::Empty;
        fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
        return Ok(PlanSummary::default());
    }
    let planned = deps
        .store
        .finish_planning(job_id, tasks, chunks, &stream.etag)
        .await?;
    info!(tasks, chunks, "planned");
    finalize_if_reconciled(deps, &planned).await?;
    Ok(PlanSummary { tasks, chunks })
}

/// `ConfirmationRequired`: read the whole manifest to count its tasks, queue nothing, and wait
/// in `Suspended` for UpdateJobStatus `Ready` (which plans again, for real) or `Cancelled`.
async fn count_for_confirmation(deps: &Deps, job: &Job) -> Result<PlanSummary> {
    let job_id = job.job_id.as_str();
    let Some(manifest) = &job.request.manifest else {
        fail_job(deps, job_id, "ManifestInvalid", "the job has no Manifest").await?;
        return Ok(PlanSummary::default());
    };
    let mut stream = match open_manifest(&deps.objects, manifest, 0).await {
        Ok(s) => s,
        Err(e) => {
            fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
            return Ok(PlanSummary::default());
        }
    };
    let mut tasks = 0u64;
    while let Some(row) = stream.rows.recv().await {
        if let Err(e) = row {
            fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
            return Ok(PlanSummary::default());
        }
        tasks += 1;
    }
    if tasks == 0 {
        let e = ManifestError::Empty;
        fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
        return Ok(PlanSummary::default());
    }
    deps.store.set_total(job_id, tasks, &stream.etag).await?;
    let suspended = deps
        .store
        .transition(
            job_id,
            &[JobStatus::Preparing],
            JobStatus::Suspended,
            StatusChange::default(),
        )
        .await;
    match suspended {
        Ok(_) | Err(Error::StatusConflict { .. }) => {}
        Err(e) => return Err(e),
    }
    info!(tasks, "counted; awaiting confirmation");
    Ok(PlanSummary { tasks, chunks: 0 })
}

async fn activate(deps: &Deps, job: &Job) -> Result<()> {
    let change = StatusChange::default().set("active_since", crate::time::now_iso());
    match deps
        .store
        .transition(
            &job.job_id,
            &[JobStatus::Preparing, JobStatus::Ready],
            JobStatus::Active,
            change,
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already moved on (cancelled meanwhile, or a concurrent planner): workers decide.
        Err(Error::StatusConflict { actual, .. }) => {
            info!(%actual, "job left Preparing while planning");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Fails a job that has not run anything, with a `FailureReasons` entry.
pub async fn fail_job(deps: &Deps, job_id: &str, code: &str, reason: &str) -> Result<()> {
    warn!(job_id, code, reason, "failing job");
    let change = StatusChange::default()
        .failure(code, reason)
        .set("termination_date", crate::time::now_iso());
    match deps
        .store
        .transition(
            job_id,
            &[
                JobStatus::New,
                JobStatus::Preparing,
                JobStatus::Suspended,
                JobStatus::Ready,
            ],
            JobStatus::Failed,
            change,
        )
        .await
    {
        Ok(_) | Err(Error::StatusConflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sends the job to the finalizer when every chunk is counted.
pub async fn maybe_finalize(deps: &Deps, job_id: &str) -> Result<()> {
    let job = deps.store.require(job_id).await?;
    finalize_if_reconciled(deps, &job).await
}

async fn finalize_if_reconciled(deps: &Deps, job: &Job) -> Result<()> {
    let ending = matches!(
        job.status,
        JobStatus::Active | JobStatus::Failing | JobStatus::Cancelling
    );
    if ending && job.reconciled() {
        info!(job_id = %job.job_id, "all chunks counted; finalizing");
        deps.queues
            .send_finalize(&FinalizeMessage {
                job_id: job.job_id.clone(),
            })
            .await?;
    }
    Ok(())
}
