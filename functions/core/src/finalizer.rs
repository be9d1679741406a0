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
    /// Its report is part-written, or its clean-up unfinished: a finalize message continues
    /// it in a new invocation.
    Continued,
}

/// Chunk result files read at once while a report is assembled.
const CHUNK_FILES_IN_FLIGHT: usize = 8;

#[instrument(skip(deps), fields(job_id = %job_id))]
pub async fn finalize_job(deps: &Deps, job_id: &str) -> Result<Finalized> {
    // A lost race for `Active → Completing` (a pause, cancel or failure landed first) starts
    // over from the job as it now is: nothing is written for a status this run did not win.
    let mut tries = 0;
    let (job, from, to) = loop {
        tries += 1;
        let job = deps.store.require(job_id).await?;
        if job.status.is_terminal() {
            // A clean-up cut short goes on (one query when there is nothing left).
            let deadline = tokio::time::Instant::now() + deps.config.finalizer_budget;
            return Ok(match clean_up(deps, job_id, deadline).await? {
                true => Finalized::AlreadyEnded(job.status),
                false => Finalized::Continued,
            });
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
            JobStatus::Active | JobStatus::Completing => {
                (JobStatus::Completing, JobStatus::Complete)
            }
            JobStatus::Failing => (JobStatus::Failing, JobStatus::Failed),
            JobStatus::Cancelling => (JobStatus::Cancelling, JobStatus::Cancelled),
            JobStatus::Pausing => {
                // Paused with every chunk counted: nothing runs, so the pause has settled;
                // resume finalizes it.
                let _moved = deps.store.settle_pause(job_id).await?;
                return Ok(Finalized::NotReady);
            }
            other => {
                info!(status = %other, "job is not ending");
                return Ok(Finalized::NotReady);
            }
        };
        if job.status != JobStatus::Active {
            break (job, from, to);
        }
        match deps
            .store
            .transition(
                job_id,
                &[JobStatus::Active],
                JobStatus::Completing,
                StatusChange::default(),
            )
            .await
        {
            Ok(j) => break (j, from, to),
            Err(Error::StatusConflict { actual, .. }) if tries < 3 => {
                info!(%actual, "the job moved before it could complete; looking again");
            }
            Err(e) => return Err(e),
        }
    };
    let report_date = match &job.report_date {
        Some(d) => d.clone(),
        None => deps.store.fix_report_date(job_id).await?,
    };
    let deadline = tokio::time::Instant::now() + deps.config.finalizer_budget;
    let written = match write_report(deps, &job, &report_date, deadline).await {
        // Failing for now, but for longer than the window: it is not going to get better soon
        // enough, and the job must end rather than wait for ever.
        Err(ReportError::Retry(e)) => match ending_for(&job, deps.clock.now()) {
            waited if waited >= deps.config.report_retry_window => Err(ReportError::Permanent {
                code: "ReportWriteFailed",
                reason: format!(
                    "the completion report could still not be written after {} s of trying \
                     (BATCHOPS_REPORT_RETRY_SECS): {e}",
                    waited.as_secs()
                ),
            }),
            _ => Err(ReportError::Retry(e)),
        },
        other => other,
    };
    let (to, manifest, change) = match written {
        Ok(Written::Done(None)) => (to, None, StatusChange::default()),
        Ok(Written::Done(Some((manifest, summary)))) => {
            // Recorded before the job ends, so an ended job with a report always has its
            // summary (a failure here is retried like the report's own writes).
            deps.store.set_report_summary(job_id, &summary).await?;
            (to, Some(manifest), StatusChange::default())
        }
        Ok(Written::Continued) => return Ok(Finalized::Continued),
        Err(ReportError::Retry(e)) => return Err(e),
        Err(ReportError::Permanent { code, reason }) => {
            // The report can never be written: the job ends now, saying why. A cancelled job
            // stays cancelled (what the user asked for); any other ends `Failed`.
            tracing::warn!(code, %reason, "the completion report cannot be written");
            let to = if to == JobStatus::Cancelled {
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            };
            let change = StatusChange::default()
                .failures_before(&job.failure_reasons)
                .failure(code, reason);
            (to, None, change)
        }
    };
    match deps
        .store
        .try_transition(job_id, &[from], to, change)
        .await?
    {
        Ok(_) => {
            info!(status = %to, succeeded = job.succeeded, failed = job.failed, "job ended");
            // The job has ended whatever the clean-up meets; a failed or unfinished one goes
            // on when the finalize message comes again.
            if !clean_up(deps, job_id, deadline).await? {
                return Ok(Finalized::Continued);
            }
            Ok(Finalized::Ended(to, manifest))
        }
        Err(actual) => Ok(Finalized::AlreadyEnded(actual)),
    }
}

/// Clears what an ended job's run left: its working records (chunk records, claims, partial
/// chunks, the plan checkpoint, the report's progress) and the result files they point to, a
/// page at a time, files first (`DeleteObject`), then the records (`BatchWriteItem`). What
/// is deleted is done, so a clean-up cut short (an error, a crash, the budget) goes on from
/// what is left when the finalize message comes again: an error fails the message, the
/// budget sends a new one. The job and its request stay, until their TTL. Returns `false`
/// when the budget ran out first.
async fn clean_up(deps: &Deps, job_id: &str, deadline: tokio::time::Instant) -> Result<bool> {
    use futures::StreamExt;
    let mut cursor = None;
    let (mut records_deleted, mut files_deleted) = (0usize, 0usize);
    loop {
        if tokio::time::Instant::now() >= deadline {
            deps.queues.finalize(job_id).await?;
            info!(
                records_deleted,
                files_deleted, "clean-up continues in a new invocation"
            );
            return Ok(false);
        }
        let (records, next) = deps.store.working_records_page(job_id, cursor).await?;
        let files: Vec<String> = records.iter().filter_map(|r| r.file.clone()).collect();
        // One `DeleteObject` per file, 32 at a time (S3 bills no deletes): each is authorised
        // on its own key, as the role's `results/*` grant is written, where a `DeleteObjects`
        // is refused by an emulator that checks it against the bucket.
        let deletes: Vec<_> = files
            .iter()
            .map(|key| deps.objects.delete(&deps.config.bucket, key))
            .collect();
        let results: Vec<Result<()>> = futures::stream::iter(deletes)
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        deps.store.delete_working_records(job_id, &records).await?;
        records_deleted += records.len();
        files_deleted += files.len();
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    if records_deleted > 0 {
        info!(
            records_deleted,
            files_deleted, "the ended job's working records deleted"
        );
    }
    Ok(true)
}

/// How long the job has been in its ending status (`Completing`, `Failing`, `Cancelling`).
fn ending_for(job: &Job, now: time::OffsetDateTime) -> std::time::Duration {
    crate::time::parse(&job.status_time)
        .map(|since| (now - since).whole_seconds().max(0) as u64)
        .map_or(std::time::Duration::ZERO, std::time::Duration::from_secs)
}

/// Why a report could not be written.
enum ReportError {
    /// Retrying can help (throttling, 5xx, the store): the finalize message is retried.
    Retry(Error),
    /// It never will: the job ends with this `FailureReasons` entry.
    Permanent { code: &'static str, reason: String },
}

impl From<Error> for ReportError {
    /// A write to the report bucket refused for good (no such bucket, access denied, a key S3
    /// will not take) is permanent; anything retryable is retried.
    fn from(e: Error) -> Self {
        if e.is_retryable() {
            ReportError::Retry(e)
        } else {
            ReportError::Permanent {
                code: "ReportWriteFailed",
                reason: format!("the completion report could not be written: {e}"),
            }
        }
    }
}

/// How far [`write_report`] got.
enum Written {
    /// The report is complete, with what its rows hold (or none was asked for).
    Done(Option<(ReportManifest, crate::report::ReportSummary)>),
    /// It stopped at its deadline with its progress saved; a finalize message goes on.
    Continued,
}

/// Writes the completion report, if the job asked for one and at least one task ran:
/// chunk result files are read several at a time, in chunk order, into report files. Past
/// `deadline` the open files are written, the progress saved (the job's `REPORT` item) and a
/// finalize message queued, so a report of any size is assembled across as many invocations
/// as it needs; a finalizer that finds progress goes on from it.
async fn write_report(
    deps: &Deps,
    job: &Job,
    report_date: &str,
    deadline: tokio::time::Instant,
) -> Result<Written, ReportError> {
    use futures::StreamExt;
    let report = &job.request.report;
    if !report.enabled || job.succeeded + job.failed == 0 {
        return Ok(Written::Done(None));
    }
    let bucket = report
        .bucket
        .as_deref()
        .and_then(crate::job::spec::parse_bucket_arn)
        .unwrap_or_else(|| deps.config.bucket.clone());
    let include_succeeded = job.request.report_scope() == crate::job::spec::ReportScope::AllTasks;
    let saved = deps
        .store
        .report_progress(&job.job_id)
        .await
        .map_err(ReportError::Retry)?;
    let seq = saved.as_ref().map(|(seq, _)| *seq);
    let progress = saved.map(|(_, p)| p).unwrap_or_default();
    let mut writer = ReportWriter::new(
        &deps.objects,
        bucket,
        report_dir(report.prefix.as_deref(), &job.job_id),
        job.job_id.clone(),
        deps.config.report_file_max_bytes,
        include_succeeded,
    )
    .resume(&progress);
    if progress.continuations > 0 {
        info!(
            through_chunk = progress.through_chunk,
            files = progress.results.len(),
            continuations = progress.continuations,
            "resuming the report"
        );
    }
    let mut cursor = progress
        .through_chunk
        .map(|c| crate::adapters::JobStore::chunk_cursor(&job.job_id, c));
    let mut through = progress.through_chunk;
    loop {
        let (records, next) = deps
            .store
            .chunk_page(&job.job_id, cursor)
            .await
            .map_err(ReportError::Retry)?;
        for batch in records.chunks(CHUNK_FILES_IN_FLIGHT) {
            let reads: Vec<_> = batch
                .iter()
                .map(|record| async move {
                    match &record.result_key {
                        Some(key) => deps
                            .objects
                            .get_bytes(&deps.config.bucket, key)
                            .await
                            .map(Some)
                            .map_err(|e| (record.chunk, e)),
                        None => Ok(None),
                    }
                })
                .collect();
            let files: Vec<_> = futures::stream::iter(reads)
                .buffered(CHUNK_FILES_IN_FLIGHT)
                .collect()
                .await;
            for file in files {
                match file {
                    Ok(Some(data)) => writer.add_chunk_rows(&data).await?,
                    Ok(None) => {}
                    Err((_, e)) if e.is_retryable() => return Err(ReportError::Retry(e)),
                    // A counted chunk's rows are gone: the report cannot be complete.
                    Err((chunk, e)) => {
                        return Err(ReportError::Permanent {
                            code: "ReportResultsMissing",
                            reason: format!(
                                "the result rows of chunk {chunk} are missing, so the report \
                                 cannot be written: {e}"
                            ),
                        });
                    }
                }
            }
            through = batch.last().map(|r| r.chunk).or(through);
            if tokio::time::Instant::now() >= deadline {
                let mut saved = writer.checkpoint(through).await?;
                saved.continuations = progress.continuations + 1;
                if deps
                    .store
                    .save_report_progress(&job.job_id, seq, &saved)
                    .await
                    .map_err(ReportError::Retry)?
                {
                    deps.queues
                        .finalize(&job.job_id)
                        .await
                        .map_err(ReportError::Retry)?;
                    info!(
                        through_chunk = through,
                        files = saved.results.len(),
                        "report part-written; continuing in a new invocation"
                    );
                } else {
                    info!("another finalizer moved this report on; stopping");
                }
                return Ok(Written::Continued);
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let rows = writer.rows_written;
    let summary = writer.summary.clone();
    let manifest = writer.finish(report_date).await?;
    info!(rows, files = manifest.results.len(), "report written");
    Ok(Written::Done(Some((manifest, summary))))
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepSummary {
    /// Jobs whose chunks were all counted but which had not ended: their finalize message
    /// queued (the sweep itself never assembles a report: that can take many invocations).
    pub finalize_queued: u64,
    /// Jobs stuck in `Preparing` past the timeout: failed with a reason.
    pub failed_stuck: u64,
    /// Jobs whose plan message looked lost (still `New` long after creation, or planning with
    /// no progress): their plan message queued again, at most once per quarter of the
    /// preparing timeout.
    pub replanned: u64,
    /// Dead-lettered chunks accounted as failed tasks.
    pub dead_chunks: u64,
    /// Jobs left `Pausing` with nothing of theirs running: now `Paused`.
    pub settled_pauses: u64,
    /// Parked chunks of jobs no longer paused (their resume or cancel died before queuing
    /// them again): queued again.
    pub unparked: u64,
    /// Planned jobs that made no progress for [`crate::Config::stall_timeout`]: their
    /// uncounted chunks were lost; failed (`ChunksLost`), those tasks counted as not run.
    pub stalled: u64,
    /// Job events published from outboxes a status write could not publish (a bus that was
    /// failing then).
    pub events_published: u64,
    /// Publishes the bus has refused so far in this process (status writes' and sweeps'):
    /// a failing bus, counted; its events wait in their outboxes.
    pub events_unpublished: u64,
    /// Repairs that failed (logged); the sweep went on with the other jobs.
    pub errors: u64,
    /// Open jobs looked at (and ended ones whose events are not all published; other ended
    /// ones are never read).
    pub examined: u64,
}

/// The scheduled sweep. It repairs what lost messages and dead processes leave behind:
/// queues the finalization of jobs whose chunks are all counted but which have not ended (their
/// finalize message was lost, or their finalizer died), re-queues the plan message of jobs stuck in `New`, fails
/// jobs stuck in `Preparing` past `preparing_timeout`, and accounts dead-lettered chunks.
#[instrument(skip(deps))]
pub async fn sweep(deps: &Deps) -> Result<SweepSummary> {
    let mut summary = SweepSummary::default();
    // Each repair stands alone: an error is logged and counted, and the sweep goes on, so one
    // wedged job never blocks the repair of the others.
    match drain_dead_letters(deps).await {
        Ok(n) => summary.dead_chunks = n,
        Err(e) => {
            tracing::error!(error = %e, "sweep: draining the dead-letter queues failed");
            summary.errors += 1;
        }
    }
    match unpark_stray(deps).await {
        Ok(n) => summary.unparked += n,
        Err(e) => {
            tracing::error!(error = %e, "sweep: looking for parked chunks failed");
            summary.errors += 1;
        }
    }
    // Only the open jobs: however many ended jobs the table keeps (90 days of them), the sweep
    // reads the jobs it may have to repair.
    let mut cursor = None;
    let mut bus_up = true;
    loop {
        let (jobs, next) = deps.store.open_jobs_page(100, cursor).await?;
        for listed in jobs {
            summary.examined += 1;
            let looked = match deps.store.get(&listed.job_id).await {
                Ok(Some(job)) => {
                    let repaired = sweep_job(deps, &job, &mut summary).await;
                    // Events a failing bus held back (an ended job leaves the index with
                    // them); once the bus fails, none more this run.
                    if bus_up && (job.pending_events > 0 || job.status.is_terminal()) {
                        match deps.store.settle_events(&job.job_id).await {
                            Some(n) => summary.events_published += n as u64,
                            None => bus_up = false,
                        }
                    }
                    repaired
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = looked {
                tracing::error!(job_id = %listed.job_id, status = %listed.status, error = %e, "sweep: repair failed; going on");
                summary.errors += 1;
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    summary.events_unpublished = deps.store.events_unpublished();
    // Logged when it did something (each refused publish is logged where it happens).
    if (SweepSummary {
        examined: 0,
        events_unpublished: 0,
        ..summary.clone()
    }) != SweepSummary::default()
    {
        info!(?summary, "sweep repaired jobs");
    }
    Ok(summary)
}

/// The sweep's look at one job.
async fn sweep_job(deps: &Deps, job: &Job, summary: &mut SweepSummary) -> Result<()> {
    let now = deps.clock.now();
    let age = |t: &str| {
        crate::time::parse(t)
            .map(|t| now - t)
            .unwrap_or(time::Duration::ZERO)
    };
    let timeout =
        time::Duration::try_from(deps.config.preparing_timeout).unwrap_or(time::Duration::MAX);
    let ending = matches!(
        job.status,
        JobStatus::Active | JobStatus::Completing | JobStatus::Failing | JobStatus::Cancelling
    );
    // A plan in progress is judged by its last checkpoint, not by when its status changed.
    let planning = !job.planned
        && matches!(
            job.status,
            JobStatus::Preparing
                | JobStatus::Ready
                | JobStatus::Active
                | JobStatus::Cancelling
                | JobStatus::Failing
        );
    let progress_age = if planning {
        let saved = deps
            .store
            .get_checkpoint(&job.job_id)
            .await?
            .and_then(|(_, cp)| cp.saved_at);
        saved
            .as_deref()
            .map_or(age(&job.status_time), |t| age(t).min(age(&job.status_time)))
    } else {
        age(&job.status_time)
    };
    if ending && job.reconciled() {
        // Its finalize message was lost, or its finalizer died: queue one (a report being
        // assembled across invocations goes on from its progress), at most once per
        // quarter of the preparing timeout.
        if deps
            .store
            .claim_repair(
                &job.job_id,
                crate::adapters::dynamo::Repair::Finalize,
                deps.config.preparing_timeout / 4,
            )
            .await?
        {
            deps.queues.finalize(&job.job_id).await?;
            summary.finalize_queued += 1;
        }
    } else if ending && stalled(deps, job, &age) {
        account_lost_chunks(deps, &job.job_id, &age, summary).await?;
    } else if planning && job.status != JobStatus::Preparing && progress_age > timeout / 4 {
        // Confirmed, activated, cancelled or failing, but planning made no progress for a
        // quarter of the timeout: its plan message was lost (a confirm whose send failed, a
        // planner that died). Planning again resumes from the checkpoint, or closes it.
        replan(deps, job, summary).await?;
    } else if job.status == JobStatus::Preparing && progress_age > timeout {
        let reason = format!(
            "the job was still Preparing after {} s: its planner stopped (see the planner's logs and DLQ)",
            deps.config.preparing_timeout.as_secs()
        );
        crate::lifecycle::fail_job(deps, &job.job_id, "PreparingTimeout", &reason).await?;
        summary.failed_stuck += 1;
    } else if job.status == JobStatus::Pausing && age(&job.status_time) > timeout / 4 {
        // A worker that sees the pause settles it; when none is left to (nothing queued
        // reaches one, nothing still runs that long after the pause), the sweep does.
        if deps.store.settle_pause(&job.job_id).await?.is_ok() {
            summary.settled_pauses += 1;
        }
    } else if job.status == JobStatus::New && age(&job.status_time) > timeout / 10 {
        // Still `New`: its plan message may be lost, or only waiting behind others.
        replan(deps, job, summary).await?;
    }
    Ok(())
}

/// Whether a planned job has counted no chunk (nor changed status) for
/// [`crate::Config::stall_timeout`], longer than the work queues keep a message: the chunks it
/// still waits for can no longer come.
fn stalled(deps: &Deps, job: &Job, age: &impl Fn(&str) -> time::Duration) -> bool {
    let limit = time::Duration::try_from(deps.config.stall_timeout).unwrap_or(time::Duration::MAX);
    let since_progress = job
        .progress_time
        .as_deref()
        .map_or(time::Duration::MAX, age);
    // A repair that failed the job and then died before counting: its status is fresh, but
    // it is stalled all the same (judged by its progress alone, or it would wait once more).
    let repairing = job.status == JobStatus::Failing
        && job
            .failure_reasons
            .iter()
            .any(|f| f.failure_code == CHUNKS_LOST);
    let since_status = if repairing {
        time::Duration::MAX
    } else {
        age(&job.status_time)
    };
    job.planned && !job.reconciled() && since_status.min(since_progress) > limit
}

/// The failure code of a job whose missing chunks outlived the work queues' retention.
pub const CHUNKS_LOST: &str = "ChunksLost";

/// Ends a stalled job: `Active` → `Failing` with `ChunksLost`, then every chunk number without
/// a chunk record is counted, its tasks as not run (all the missing rows on the first), so the
/// counts reconcile and the finalizer ends it `Failed`. A chunk that turns up after all finds
/// its number counted and runs nothing.
async fn account_lost_chunks(
    deps: &Deps,
    job_id: &str,
    age: &impl Fn(&str) -> time::Duration,
    summary: &mut SweepSummary,
) -> Result<()> {
    // The list is eventually consistent: judge by the job as it stands.
    let job = deps.store.require(job_id).await?;
    if !stalled(deps, &job, age) {
        return Ok(());
    }
    let lost_rows = job
        .total_tasks
        .saturating_sub(job.succeeded + job.failed + job.not_run);
    let lost_chunks = job.chunks_total.saturating_sub(job.chunks_done);
    if job.status == JobStatus::Active {
        let reason = format!(
            "{lost_rows} tasks in {lost_chunks} chunks were never counted: no chunk was counted for {} s, longer than the work queues keep a message, so they were lost; they are counted as not run",
            deps.config.stall_timeout.as_secs()
        );
        let change = StatusChange::default().failure(CHUNKS_LOST, reason);
        let failing = deps
            .store
            .try_transition(job_id, &[JobStatus::Active], JobStatus::Failing, change)
            .await?;
        if failing.is_err() {
            // It moved meanwhile: the next sweep looks again.
            return Ok(());
        }
    }
    let mut counted = std::collections::BTreeSet::new();
    let mut cursor = None;
    loop {
        let (records, next) = deps.store.chunk_page(job_id, cursor).await?;
        counted.extend(records.iter().map(|r| r.chunk));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let mut left = lost_rows;
    for chunk in (0..job.chunks_total).filter(|c| !counted.contains(c)) {
        let counts = crate::adapters::ChunkCounts {
            not_run: left,
            ..Default::default()
        };
        if deps.store.count_chunk(job_id, chunk, counts, None).await? {
            left = 0;
        }
    }
    tracing::warn!(
        job_id,
        lost_rows,
        lost_chunks,
        "sweep: a stalled job's lost chunks counted as not run"
    );
    summary.stalled += 1;
    crate::lifecycle::maybe_finalize(deps, job_id).await
}

/// Re-queues a job's plan message, at most once per quarter of the preparing timeout: a plan
/// message that is only slow to be read is not joined by another one on every sweep (each
/// would start a planner), and a lost one is replaced.
async fn replan(deps: &Deps, job: &Job, summary: &mut SweepSummary) -> Result<()> {
    if !deps
        .store
        .claim_repair(
            &job.job_id,
            crate::adapters::dynamo::Repair::Plan,
            deps.config.preparing_timeout / 4,
        )
        .await?
    {
        return Ok(());
    }
    deps.queues
        .send_plan(&crate::chunk::PlanMessage {
            job_id: job.job_id.clone(),
        })
        .await?;
    summary.replanned += 1;
    Ok(())
}

/// Queues again the parked chunks of every job that is no longer paused (a job that is gone
/// has its parked chunks deleted).
async fn unpark_stray(deps: &Deps) -> Result<u64> {
    let mut queued = 0;
    for job_id in crate::parking::parked_jobs(deps).await? {
        let job = deps.store.get(&job_id).await?;
        match job {
            Some(job) if matches!(job.status, JobStatus::Pausing | JobStatus::Paused) => {}
            Some(job) => queued += crate::parking::unpark(deps, &job_id, job.priority).await?,
            None => crate::parking::discard(deps, &job_id).await?,
        }
    }
    Ok(queued)
}

/// Accounts every chunk waiting in the work queues' dead-letter queues as failed tasks, then
/// deletes it. A message that is not a chunk stays (the DLQ alarm tells an operator).
async fn drain_dead_letters(deps: &Deps) -> Result<u64> {
    let mut accounted = 0;
    for dlq in &deps.config.work_dlq_urls {
        // Bounded: a sweep handles at most 100 batches per queue; the next sweep goes on.
        for _ in 0..100 {
            let messages = deps.queues.receive_dead_letters(dlq).await?;
            if messages.is_empty() {
                break;
            }
            for (body, receipt) in messages {
                match crate::chunk::Chunk::from_body(&body) {
                    Ok(chunk) => {
                        let cause = format!(
                            "the chunk's message was dead-lettered after {} deliveries",
                            deps.config.max_receives
                        );
                        match crate::worker::account_failed_chunk(deps, &chunk, &cause).await {
                            // Another delivery is running it: left for a later sweep.
                            Err(Error::ChunkBusy { .. }) => continue,
                            r => r?,
                        };
                        deps.queues.delete(dlq, &receipt).await?;
                        accounted += 1;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, dlq, "a dead letter that is not a chunk stays for an operator");
                    }
                }
            }
        }
    }
    Ok(accounted)
}
