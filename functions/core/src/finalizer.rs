//! Ending a job: once every chunk is counted, write the completion report and set the final
//! status. Safe to run twice, concurrently or after a crash: status changes are conditional,
//! `ReportCreationDate` is fixed once, and report object names are deterministic, so two
//! finalizers write one report and one final status.

use crate::adapters::dynamo::StatusChange;
use crate::job::{Job, JobStatus};
use crate::report::{ReportManifest, ReportWriter, report_dir};
use crate::{Deps, Error, Result};
use tracing::{info, instrument};

/// What finalizing came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finalized {
    /// The job ended now (with the report's manifest, if one was written).
    Ended(JobStatus, Option<ReportManifest>),
    /// It had already ended.
    AlreadyEnded(JobStatus),
    /// Its chunks are not all counted yet.
    NotReady,
}

#[instrument(skip(deps), fields(job_id = %job_id))]
pub async fn finalize_job(deps: &Deps, job_id: &str) -> Result<Finalized> {
    let mut job = deps.store.require(job_id).await?;
    if job.status.is_terminal() {
        return Ok(Finalized::AlreadyEnded(job.status));
    }
    if !job.reconciled() {
        info!(
            done = job.chunks_done,
            total = job.chunks_total,
            "not all chunks counted yet"
        );
        return Ok(Finalized::NotReady);
    }
    let (from, to) = match job.status {
        JobStatus::Active | JobStatus::Completing => (JobStatus::Completing, JobStatus::Complete),
        JobStatus::Failing => (JobStatus::Failing, JobStatus::Failed),
        JobStatus::Cancelling => (JobStatus::Cancelling, JobStatus::Cancelled),
        other => {
            info!(status = %other, "job is not ending");
            return Ok(Finalized::NotReady);
        }
    };
    if job.status == JobStatus::Active {
        let change = StatusChange::default().set("report_date", crate::time::now_iso());
        job = match deps
            .store
            .transition(job_id, &[JobStatus::Active], JobStatus::Completing, change)
            .await
        {
            Ok(j) => j,
            // A concurrent finalizer moved it first: carry on from what it wrote.
            Err(Error::StatusConflict { .. }) => deps.store.require(job_id).await?,
            Err(e) => return Err(e),
        };
        if job.status.is_terminal() {
            return Ok(Finalized::AlreadyEnded(job.status));
        }
    }
    let report_date = match &job.report_date {
        Some(d) => d.clone(),
        None => deps.store.fix_report_date(job_id).await?,
    };
    let manifest = write_report(deps, &job, &report_date).await?;
    let change = StatusChange::default().set("termination_date", crate::time::now_iso());
    match deps.store.transition(job_id, &[from], to, change).await {
        Ok(_) => {
            info!(status = %to, succeeded = job.succeeded, failed = job.failed, "job ended");
            Ok(Finalized::Ended(to, manifest))
        }
        Err(Error::StatusConflict { actual, .. }) => {
            let actual = JobStatus::parse(&actual).unwrap_or(to);
            Ok(Finalized::AlreadyEnded(actual))
        }
        Err(e) => Err(e),
    }
}

/// Writes the completion report, if the job asked for one and at least one task ran.
async fn write_report(deps: &Deps, job: &Job, report_date: &str) -> Result<Option<ReportManifest>> {
    let report = &job.request.report;
    if !report.enabled || job.succeeded + job.failed == 0 {
        return Ok(None);
    }
    let bucket = report
        .bucket
        .as_deref()
        .and_then(crate::job::spec::parse_bucket_arn)
        .unwrap_or_else(|| deps.config.bucket.clone());
    let include_succeeded = job.request.report_scope() == crate::job::spec::ReportScope::AllTasks;
    let mut writer = ReportWriter::new(
        &deps.objects,
        bucket,
        report_dir(report.prefix.as_deref(), &job.job_id),
        job.job_id.clone(),
        deps.config.report_file_max_bytes,
        include_succeeded,
    );
    let mut cursor = None;
    loop {
        let (records, next) = deps.store.chunk_page(&job.job_id, cursor).await?;
        for record in records {
            if let Some(key) = &record.result_key {
                let data = deps.objects.get_bytes(&deps.config.bucket, key).await?;
                writer.add_chunk_rows(&data).await?;
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let rows = writer.rows_written;
    let manifest = writer.finish(report_date).await?;
    info!(rows, files = manifest.results.len(), "report written");
    Ok(Some(manifest))
}

/// The scheduled sweep: finalizes every job whose chunks are all counted but which has not
/// ended (its finalize message was lost, or its finalizer died). Returns how many it ended.
#[instrument(skip(deps))]
pub async fn sweep(deps: &Deps) -> Result<u64> {
    let mut ended = 0;
    let mut cursor = None;
    loop {
        let (jobs, next) = deps.store.list_page(None, 100, cursor).await?;
        for job in jobs {
            let ending = matches!(
                job.status,
                JobStatus::Active
                    | JobStatus::Completing
                    | JobStatus::Failing
                    | JobStatus::Cancelling
            );
            if ending
                && job.reconciled()
                && matches!(finalize_job(deps, &job.job_id).await?, Finalized::Ended(..))
            {
                ended += 1;
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(ended)
}
