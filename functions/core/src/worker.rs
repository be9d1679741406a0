//! Running one chunk: its tasks concurrently, its rows to the stack bucket, its counts into
//! the job exactly once.

use crate::adapters::ChunkCounts;
use crate::adapters::dynamo::StatusChange;
use crate::chunk::{Chunk, Task};
use crate::job::Job;
use crate::job::JobStatus;
use crate::lifecycle::{finalize_if_reconciled, maybe_finalize};
use crate::ops::{Mode, MultipartSettings, OpContext, Outcome, RetryPolicy, run_task};
use crate::report::chunk_rows;
use crate::{Deps, Error, Result};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
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
    /// The job is paused: the chunk was parked, to be queued again when the pause ends.
    Deferred,
    /// The delivery's deadline came first: what ran is kept (the chunk's partial record) and
    /// the chunk was queued again (on the work queue for `priority`) for the rest.
    Continued { priority: i64 },
}

/// Time kept, at most, between cutting off running tasks and the Lambda deadline: for writing
/// what ran and queuing the rest.
const RECORD_MARGIN: Duration = Duration::from_secs(10);

/// When a delivery with `deadline` starts no more tasks, and when it cuts off those running.
fn cutoffs(deps: &Deps, deadline: Option<Instant>) -> (Option<Instant>, Option<Instant>) {
    let Some(d) = deadline else {
        return (None, None);
    };
    let (last_start, cut_off) = cutoffs_at(deps.config.worker_margin, Instant::now(), d);
    (Some(last_start), Some(cut_off))
}

/// [`cutoffs`] at `now`: the margin is kept before the deadline, unless the invocation is
/// shorter than the margin (a function with a short timeout), when a quarter of it is.
fn cutoffs_at(margin: Duration, now: Instant, deadline: Instant) -> (Instant, Instant) {
    let left = deadline.saturating_duration_since(now);
    let margin = if margin < left { margin } else { left / 4 };
    let record = RECORD_MARGIN.min(margin / 2);
    (deadline - margin, deadline - record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_margin_fits_the_invocation() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // A 900-s invocation keeps the 60-s margin; running tasks are cut 10 s before the end.
        assert_eq!(
            cutoffs_at(s(60), now, now + s(900)),
            (now + s(840), now + s(890))
        );
        // A 30-s invocation (shorter than the margin) keeps a quarter of it.
        assert_eq!(
            cutoffs_at(s(60), now, now + s(30)),
            (
                now + Duration::from_millis(22_500),
                now + Duration::from_millis(26_250)
            )
        );
    }
}

/// The stack-bucket key of one attempt's result rows. Each attempt writes its own object; the
/// chunk record names the one whose counts were committed, so rows and counts always agree.
pub fn result_key(ids: &crate::ids::Ids, job_id: &str, chunk: u64) -> String {
    format!("results/{job_id}/{chunk:012}/{}.csv", ids.uuid())
}

pub async fn process_chunk(deps: &Deps, chunk: &Chunk) -> Result<ChunkResult> {
    process_delivery(deps, chunk, false).await
}

pub async fn process_delivery(
    deps: &Deps,
    chunk: &Chunk,
    last_delivery: bool,
) -> Result<ChunkResult> {
    process_delivery_until(deps, chunk, last_delivery, None).await
}

/// [`process_chunk`] for one delivery of a chunk message. On the `last_delivery` (the next
/// failure would dead-letter it), a chunk whose tasks ran but whose rows or count could not be
/// committed is accounted with the outcomes it got (see [`account_outcomes`]), not as failures.
///
/// With a `deadline` (the Lambda invocation's), no task starts within
/// [`Config::worker_margin`](crate::Config::worker_margin) of it and running ones are cut off
/// shortly before it: the outcomes so far are kept in the chunk's partial record and the chunk
/// is queued again, to run only the tasks left ([`ChunkResult::Continued`]). A delivery that
/// got no task done in time fails instead, so a task that can never finish in one invocation
/// reaches the last delivery and is reported failed rather than queued for ever.
#[instrument(skip(deps, chunk), fields(job_id = %chunk.job_id, chunk = chunk.chunk, tasks = chunk.tasks.len()))]
pub async fn process_delivery_until(
    deps: &Deps,
    chunk: &Chunk,
    last_delivery: bool,
    deadline: Option<Instant>,
) -> Result<ChunkResult> {
    let job_id = chunk.job_id.as_str();
    if deps.store.chunk_counted(job_id, chunk.chunk).await? {
        info!("duplicate delivery; already counted");
        return Ok(ChunkResult::Duplicate);
    }
    // Boxed: the task-running future is large, and held inline it overflows a thread's stack.
    let result = claimed(
        deps,
        chunk,
        Box::pin(run_claimed(deps, chunk, last_delivery, deadline)),
    )
    .await?;
    if let ChunkResult::Continued { priority } = result {
        // Sent once the claim is given up, so the next delivery can take it at once.
        deps.queues
            .send_chunks(std::slice::from_ref(chunk), priority)
            .await?;
        info!("deadline near: what ran is kept; the rest of the chunk queued again");
    }
    Ok(result)
}

/// Runs `work` holding the chunk's claim ([`claim`]), and gives the claim up afterwards,
/// whatever came of it. `work` is skipped (a duplicate) when the chunk was counted between the
/// caller's first check and the claim (by a delivery whose claim then lapsed).
async fn claimed(
    deps: &Deps,
    chunk: &Chunk,
    work: impl std::future::Future<Output = Result<ChunkResult>>,
) -> Result<ChunkResult> {
    let owner = deps.ids.uuid();
    claim(deps, chunk, &owner).await?;
    let result = match deps.store.chunk_counted(&chunk.job_id, chunk.chunk).await {
        Ok(true) => {
            info!("duplicate delivery; already counted");
            Ok(ChunkResult::Duplicate)
        }
        Ok(false) => work.await,
        Err(e) => Err(e),
    };
    release(deps, chunk, &owner).await;
    result
}

/// Gives the delivery's claim up, whatever came of it: counted, the chunk record answers every
/// later delivery (and one that read "not counted" just before finds it once it claims); not
/// counted, the next delivery need not wait for the lease to lapse.
async fn release(deps: &Deps, chunk: &Chunk, owner: &str) {
    if let Err(e) = deps
        .store
        .release_chunk(&chunk.job_id, chunk.chunk, owner)
        .await
    {
        warn!(error = %e, "could not release the chunk's claim; it lapses with its lease");
    }
}

/// Claims the chunk for this delivery ([`crate::adapters::dynamo::JobStore::claim_chunk`]):
/// while another delivery holds a live claim, this one runs nothing and fails with
/// [`Error::ChunkBusy`], to be delivered again once that claim has lapsed — by which time the
/// other has counted the chunk (this one is then a duplicate) or died (this one runs it).
async fn claim(deps: &Deps, chunk: &Chunk, owner: &str) -> Result<()> {
    let job_id = chunk.job_id.as_str();
    if let Some(left) = deps
        .store
        .claim_chunk(job_id, chunk.chunk, owner, deps.config.chunk_lease)
        .await?
    {
        info!(
            lease_left_ms = left.as_millis() as u64,
            "another delivery holds the chunk; running nothing"
        );
        return Err(Error::ChunkBusy {
            job_id: job_id.into(),
            chunk: chunk.chunk,
            retry_after_secs: left.as_secs().saturating_add(1).min(u64::from(u32::MAX)) as u32,
        });
    }
    Ok(())
}

/// What became of one task in a delivery.
enum Ran {
    Done(Outcome),
    /// Not started: the job is ending (counted as not run).
    Stopped,
    /// Not started, or cut off, because the delivery's deadline is near: for the next one.
    Later,
}

/// [`process_delivery_until`] once this delivery holds the chunk's claim.
async fn run_claimed(
    deps: &Deps,
    chunk: &Chunk,
    last_delivery: bool,
    deadline: Option<Instant>,
) -> Result<ChunkResult> {
    let job_id = chunk.job_id.as_str();
    let job = deps.store.require(job_id).await?;
    if let Some(result) = unrunnable(deps, chunk, &job).await? {
        return Ok(result);
    }
    if !matches!(
        job.status,
        JobStatus::Preparing | JobStatus::Ready | JobStatus::Active
    ) {
        return Err(Error::StatusConflict {
            job_id: job_id.into(),
            actual: job.status,
            expected: vec![JobStatus::Preparing, JobStatus::Ready, JobStatus::Active],
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
    // What earlier deliveries cut short by their deadline ran: not run again.
    let kept = kept_rows(deps, chunk).await?;
    let (task_s3, task_lambda) = deps.task_clients(job.request.role_arn.as_deref()).await;
    let cleanup = crate::ops::Cleanup::default();
    let ctx = OpContext {
        s3: &task_s3,
        lambda: &task_lambda,
        job_id,
        multipart: MultipartSettings {
            threshold: deps.config.multipart_threshold,
            part_size: deps.config.multipart_part_size,
        },
        cleanup: &cleanup,
        ids: &deps.ids,
    };
    let mode = if job.request.dry_run {
        Mode::DryRun(op)
    } else {
        Mode::Run(op)
    };
    let (last_start, cut_off) = cutoffs(deps, deadline);
    // While the chunk runs, watch the job: once it is cancelled or failing, no further task
    // starts (those are counted as not run).
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_status(deps.clone(), job_id.to_string(), stop.clone()));
    // The stack's settings may have changed since the job was created: what it no longer
    // allows is refused task by task.
    // So is a job naming the stack's own bucket where no job may (a copy target, a generator
    // source): the API refuses it, and this holds whatever created the job.
    let refused = deps
        .config
        .job_refusal(Some(op), job.request.role_arn.as_deref())
        .or_else(|| job.request.stack_bucket_refusal(&deps.config.bucket));
    let done_before = kept.as_ref().map(|k| &k.partial.done);
    // Futures are built up front (not in a stream closure) so the handler future is `Send`.
    let runs: Vec<_> = chunk
        .tasks
        .iter()
        .enumerate()
        .filter(|(i, _)| !done_before.is_some_and(|d| d.contains(i)))
        .map(|(i, task)| {
            let stop = stop.clone();
            let ctx = &ctx;
            // A manifest row naming a bucket outside the stack's allow-list, or the stack's own
            // bucket (other jobs' results), is refused here, whatever the IAM policy would say.
            let denied = if task.invalid.is_some() {
                None
            } else if let Some((field, reason)) = &refused {
                Some(format!("{field}: {reason}"))
            } else if task.bucket == deps.config.bucket {
                Some(format!(
                    "bucket {} is this stack's own bucket, which holds other jobs' results: no job may touch objects there",
                    task.bucket
                ))
            } else if !deps.config.bucket_allowed(&task.bucket) {
                Some(format!(
                    "bucket {} is not in this stack's allowed buckets",
                    task.bucket
                ))
            } else {
                None
            };
            async move {
                let ran = if stop.load(Ordering::Relaxed) {
                    Ran::Stopped
                } else if last_start.is_some_and(|t| Instant::now() >= t) {
                    Ran::Later
                } else if let Some(reason) = denied {
                    Ran::Done(Outcome::failure(403, "AccessDenied", reason))
                } else {
                    let run = run_task(ctx, mode, task, policy);
                    match cut_off {
                        Some(t) => tokio::time::timeout_at(t, run)
                            .await
                            .map_or(Ran::Later, Ran::Done),
                        None => Ran::Done(run.await),
                    }
                };
                (i, ran)
            }
        })
        .collect();
    let ran: Vec<(usize, Ran)> = futures::stream::iter(runs)
        .buffered(deps.config.task_concurrency.max(1))
        .collect()
        .await;
    watcher.abort();
    // Multipart uploads of tasks cut off are aborted before anything is recorded.
    cleanup.finish().await;
    // Once the job is ending, what is left is not run, not left for later.
    let ending = stop.load(Ordering::Relaxed);
    let mut now = NewRows::default();
    let mut later = 0usize;
    for (i, r) in ran {
        match r {
            Ran::Done(o) => now.push(i, chunk.tasks[i].clone(), o),
            Ran::Later if !ending => later += 1,
            Ran::Later | Ran::Stopped => {}
        }
    }
    if later > 0 {
        if now.indices.is_empty() {
            return Err(Error::Deadline {
                job_id: job_id.into(),
                chunk: chunk.chunk,
            });
        }
        keep_partial(deps, chunk, kept, &now).await?;
        info!(
            ran = now.indices.len(),
            left = later,
            "deadline near; chunk continues"
        );
        return Ok(ChunkResult::Continued {
            priority: job.priority,
        });
    }
    let (rows, counts) = merged(chunk, kept.as_ref(), &now)?;
    let committed = match commit_rows(deps, chunk, rows, counts).await {
        Ok(committed) => committed,
        Err(e) if last_delivery => {
            // The tasks ran; only recording them failed. Keep what they did.
            let cause = format!("recording the chunk failed: {e}");
            let (rows, counts) = merged(chunk, kept.as_ref(), &now)?;
            return account(deps, chunk, rows, counts, &cause).await;
        }
        Err(e) => return Err(e),
    };
    if !committed {
        // Another delivery of this chunk won the race: its rows are the ones reported.
        warn!("chunk counted concurrently by another delivery; discarding this attempt");
        return Ok(ChunkResult::Duplicate);
    }
    forget_partial(deps, chunk, kept.as_ref()).await;
    info!(
        succeeded = counts.succeeded,
        failed = counts.failed,
        not_run = counts.not_run,
        "chunk counted"
    );
    after_count(deps, job_id).await?;
    Ok(ChunkResult::Counted(counts))
}

/// What earlier deliveries kept: their record and their rows.
struct KeptRows {
    partial: crate::adapters::dynamo::Partial,
    rows: Vec<u8>,
}

/// The chunk's partial record and rows, if earlier deliveries cut short by their deadline
/// left one.
async fn kept_rows(deps: &Deps, chunk: &Chunk) -> Result<Option<KeptRows>> {
    let Some(partial) = deps.store.chunk_partial(&chunk.job_id, chunk.chunk).await? else {
        return Ok(None);
    };
    let rows = deps
        .objects
        .get_bytes(&deps.config.bucket, &partial.result_key)
        .await?;
    Ok(Some(KeptRows { partial, rows }))
}

/// The tasks this delivery ran, with their outcomes.
#[derive(Default)]
struct NewRows {
    indices: Vec<usize>,
    tasks: Vec<Task>,
    outcomes: Vec<Outcome>,
}

impl NewRows {
    fn push(&mut self, index: usize, task: Task, outcome: Outcome) {
        self.indices.push(index);
        self.tasks.push(task);
        self.outcomes.push(outcome);
    }
}

/// The rows and counts of a chunk from what earlier deliveries kept and this one ran; every
/// other task of the chunk counts as not run.
fn merged(chunk: &Chunk, kept: Option<&KeptRows>, now: &NewRows) -> Result<(Vec<u8>, ChunkCounts)> {
    let mut rows = kept.map(|k| k.rows.clone()).unwrap_or_default();
    rows.extend(chunk_rows(&now.tasks, &now.outcomes)?);
    let succeeded = now.outcomes.iter().filter(|o| o.succeeded).count() as u64;
    let mut counts = ChunkCounts {
        succeeded,
        failed: now.outcomes.len() as u64 - succeeded,
        not_run: 0,
    };
    if let Some(k) = kept {
        counts.succeeded += k.partial.succeeded;
        counts.failed += k.partial.failed;
    }
    counts.not_run = (chunk.tasks.len() as u64).saturating_sub(counts.succeeded + counts.failed);
    Ok((rows, counts))
}

/// Saves what ran so far (with what earlier deliveries kept) as the chunk's partial record:
/// the rows first, then the record naming them.
async fn keep_partial(
    deps: &Deps,
    chunk: &Chunk,
    kept: Option<KeptRows>,
    now: &NewRows,
) -> Result<()> {
    let (rows, counts) = merged(chunk, kept.as_ref(), now)?;
    let key = result_key(&deps.ids, &chunk.job_id, chunk.chunk);
    deps.objects
        .put_bytes(&deps.config.bucket, &key, rows, "text/csv")
        .await?;
    let mut done = kept
        .as_ref()
        .map(|k| k.partial.done.clone())
        .unwrap_or_default();
    done.extend(now.indices.iter().copied());
    let partial = crate::adapters::dynamo::Partial {
        done,
        succeeded: counts.succeeded,
        failed: counts.failed,
        result_key: key,
    };
    deps.store
        .save_partial(&chunk.job_id, chunk.chunk, &partial)
        .await?;
    if let Some(k) = kept
        && let Err(e) = deps
            .objects
            .delete(&deps.config.bucket, &k.partial.result_key)
            .await
    {
        warn!(error = %e, "could not delete an earlier partial's rows");
    }
    Ok(())
}

/// Once the chunk is counted, its partial record and rows are no longer needed.
async fn forget_partial(deps: &Deps, chunk: &Chunk, kept: Option<&KeptRows>) {
    let Some(KeptRows { partial: p, .. }) = kept else {
        return;
    };
    if let Err(e) = deps.store.drop_partial(&chunk.job_id, chunk.chunk).await {
        warn!(error = %e, "could not remove the chunk's partial record");
    }
    if let Err(e) = deps
        .objects
        .delete(&deps.config.bucket, &p.result_key)
        .await
    {
        warn!(error = %e, "could not delete the chunk's partial rows");
    }
}

/// A chunk that must not run now because its job is ending (counted as not run) or paused
/// (deferred). `None`: its status does not stop it.
async fn unrunnable(deps: &Deps, chunk: &Chunk, job: &Job) -> Result<Option<ChunkResult>> {
    let job_id = chunk.job_id.as_str();
    if matches!(job.status, JobStatus::Completing | JobStatus::Complete) {
        // Every chunk of the job was counted before it could end: this one is a stray (a
        // late send of a stale planner) and not part of it.
        info!(status = %job.status, "job has ended; stray chunk dropped");
        return Ok(Some(ChunkResult::Dropped));
    }
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
        return Ok(Some(ChunkResult::Dropped));
    }
    if matches!(job.status, JobStatus::Pausing | JobStatus::Paused) {
        // Not run, not lost: parked off the queue until the pause ends (see
        // [`crate::parking`]), and this delivery is acknowledged, so it never reaches the DLQ.
        crate::parking::park(deps, chunk, job.priority).await?;
        if job.status == JobStatus::Pausing {
            let _moved = deps.store.settle_pause(job_id).await?;
        }
        info!("job is paused; chunk parked");
        return Ok(Some(ChunkResult::Deferred));
    }
    Ok(None)
}

/// Accounts a chunk that will not be delivered again (its last delivery failed, or it was
/// dead-lettered) with `rows` and `counts` — the outcomes of the tasks that ran, the rest not
/// run — so that no work is lost silently.
async fn account(
    deps: &Deps,
    chunk: &Chunk,
    rows: Vec<u8>,
    counts: ChunkCounts,
    cause: &str,
) -> Result<ChunkResult> {
    if !commit_rows(deps, chunk, rows, counts).await? {
        return Ok(ChunkResult::Duplicate);
    }
    warn!(
        cause,
        succeeded = counts.succeeded,
        failed = counts.failed,
        not_run = counts.not_run,
        "chunk accounted on its last chance"
    );
    after_count(deps, &chunk.job_id).await?;
    Ok(ChunkResult::Counted(counts))
}

/// Writes a chunk's result rows to the stack bucket, then counts the chunk exactly once.
/// Returns `false` (and removes the rows written) when another delivery counted it first.
async fn commit_rows(
    deps: &Deps,
    chunk: &Chunk,
    rows: Vec<u8>,
    counts: ChunkCounts,
) -> Result<bool> {
    let key = result_key(&deps.ids, &chunk.job_id, chunk.chunk);
    deps.objects
        .put_bytes(&deps.config.bucket, &key, rows, "text/csv")
        .await?;
    let counted = deps
        .store
        .count_chunk(&chunk.job_id, chunk.chunk, counts, Some(&key))
        .await?;
    if !counted && let Err(e) = deps.objects.delete(&deps.config.bucket, &key).await {
        warn!(error = %e, key, "could not delete the losing attempt's rows");
    }
    Ok(counted)
}

/// After a chunk is counted: one read of the job serves the failure threshold and the
/// "was that the last chunk?" check.
async fn after_count(deps: &Deps, job_id: &str) -> Result<()> {
    let job = deps.store.require(job_id).await?;
    if job.status == JobStatus::Pausing && job.reconciled() {
        // The last chunk of a pausing job: nothing is left running.
        let _moved = deps.store.settle_pause(job_id).await?;
        return Ok(());
    }
    let job = check_failure_threshold(deps, job).await?;
    finalize_if_reconciled(deps, &job).await
}

/// Polls the job's status every `status_check_interval` and raises `stop` once it ends.
async fn watch_status(deps: Deps, job_id: String, stop: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(deps.config.status_check_interval).await;
        match deps.store.status(&job_id).await {
            Ok(status) if status.drops_work() => {
                info!(%status, "job is ending; starting no further task");
                stop.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not read the job's status"),
        }
    }
}

/// Fails the job (`Active` → `Failing`) once its failure threshold is crossed; returns the
/// job as it now stands.
async fn check_failure_threshold(deps: &Deps, job: Job) -> Result<Job> {
    let threshold = job.request.failure_threshold();
    let run = job.succeeded + job.failed;
    if job.status != JobStatus::Active || !threshold.exceeded(run, job.failed) {
        return Ok(job);
    }
    let reason = format!(
        "{} of {run} tasks failed, more than the failure threshold of {}% (checked once {} tasks have run)",
        job.failed, threshold.percent, threshold.min_tasks
    );
    let change = StatusChange::default().failure("TaskFailureThresholdExceeded", reason);
    match deps
        .store
        .try_transition(
            &job.job_id,
            &[JobStatus::Active],
            JobStatus::Failing,
            change,
        )
        .await?
    {
        Ok(failing) => {
            warn!("failure threshold exceeded; job failing");
            Ok(failing)
        }
        Err(_) => deps.store.require(&job.job_id).await,
    }
}

/// Accounts a chunk that cannot be run — it failed on every delivery, or it was dead-lettered
/// — so that no work is lost silently: each task becomes a failed report row carrying `cause`,
/// and the chunk is counted (once, like any other) so the job still reconciles and completes.
#[instrument(skip(deps, chunk), fields(job_id = %chunk.job_id, chunk = chunk.chunk))]
pub async fn account_failed_chunk(deps: &Deps, chunk: &Chunk, cause: &str) -> Result<ChunkResult> {
    let job_id = chunk.job_id.as_str();
    if deps.store.chunk_counted(job_id, chunk.chunk).await? {
        return Ok(ChunkResult::Duplicate);
    }
    // A delivery still running the chunk may yet count it: not failed while its claim lives.
    let work = async {
        // A chunk of an ending job is not run, and one of a paused job waits: neither failed.
        if let Some(job) = deps.store.get(job_id).await?
            && let Some(result) = unrunnable(deps, chunk, &job).await?
        {
            return Ok(result);
        }
        // What earlier deliveries cut short by their deadline ran is kept; the rest failed.
        let kept = kept_rows(deps, chunk).await?;
        let mut now = NewRows::default();
        for (i, task) in chunk.tasks.iter().enumerate() {
            if !kept.as_ref().is_some_and(|k| k.partial.done.contains(&i)) {
                now.push(
                    i,
                    task.clone(),
                    Outcome::failure(500, "InternalError", cause),
                );
            }
        }
        let (rows, counts) = merged(chunk, kept.as_ref(), &now)?;
        let result = account(deps, chunk, rows, counts, cause).await?;
        if matches!(result, ChunkResult::Counted(_)) {
            forget_partial(deps, chunk, kept.as_ref()).await;
        }
        Ok(result)
    };
    claimed(deps, chunk, Box::pin(work)).await
}
