//! What follows a job's status changes, shared by the stages: failing a job before anything
//! ran, and handing a job whose chunks are all counted to the finalizer. The status rules are
//! [`crate::job::JobStatus`]'s (`can_become`, `requestable`); the conditional write and the
//! stamps a move implies are [`crate::adapters::JobStore::transition`]'s, and a stage that
//! may lose a race to another actor uses [`crate::adapters::JobStore::try_transition`], which
//! answers the status that won instead of an error.

use crate::adapters::dynamo::StatusChange;
use crate::job::{Job, JobStatus};
use crate::{Deps, Result};
use tracing::{info, warn};

/// Fails a job that has not run anything, with a `FailureReasons` entry.
pub async fn fail_job(deps: &Deps, job_id: &str, code: &str, reason: &str) -> Result<()> {
    warn!(job_id, code, reason, "failing job");
    let change = StatusChange::default().failure(code, reason);
    let failed = deps
        .store
        .try_transition(
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
        .await?;
    if failed.is_ok() {
        clean_up_later(deps, job_id).await;
    }
    Ok(())
}

/// Sends the job to the finalizer when every chunk is counted.
pub async fn maybe_finalize(deps: &Deps, job_id: &str) -> Result<()> {
    let job = deps.store.require(job_id).await?;
    finalize_if_reconciled(deps, &job).await
}

/// Sends the job to the finalizer when every chunk is counted (given a fresh read of it).
pub async fn finalize_if_reconciled(deps: &Deps, job: &Job) -> Result<()> {
    let ending = matches!(
        job.status,
        JobStatus::Active | JobStatus::Failing | JobStatus::Cancelling
    );
    if ending && job.reconciled() {
        info!(job_id = %job.job_id, "all chunks counted; finalizing");
        deps.queues.finalize(&job.job_id).await?;
    }
    Ok(())
}

/// Asks the finalizer to clean up after a job another stage ended (a cancel before anything
/// was queued, a planner that failed the job): a finalize message, whose run finds the job
/// ended and clears its working records. Best effort: a failure is logged.
pub async fn clean_up_later(deps: &Deps, job_id: &str) {
    if let Err(e) = deps.queues.finalize(job_id).await {
        tracing::warn!(job_id, error = %e, "could not queue the ended job's clean-up");
    }
}
