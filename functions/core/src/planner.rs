//! Planning a job: stream its manifest, cut chunks, queue them, count the rows — across as
//! many invocations as the manifest needs.
//!
//! One invocation reads for at most its time budget ([`Config::planner_budget`], and never
//! past the Lambda deadline), then stops at the next chunk boundary, saves a [`Checkpoint`]
//! (the manifest position of the first row not queued, the next chunk number, the running
//! total) in the job store and re-enqueues a plan message that carries only the job id. The
//! next invocation reads the checkpoint and resumes there — a ranged GetObject for a CSV, the
//! same data file for an inventory report, `StartAfter` for a generator's listing.
//!
//! Running a plan message twice is harmless. A generator's chunks are defined (written to
//! the stack bucket, first writer wins) before they are queued, and a planner run again
//! queues the definitions it finds instead of listing the bucket again ([`ChunkDefinition`]).
//! A manifest file's chunk boundaries are a pure function of the manifest: an invocation starts at a chunk boundary and stops only where the chunker cuts a
//! full chunk or at a generator's scan boundary (every `generator_scan_span` listed keys from
//! the invocation's start, so a selective filter still reaches one), so every chunk number
//! always holds the same rows, and a chunk sent twice is
//! counted once by the worker. Checkpoints are written conditionally on the one read, so two
//! planners racing from one checkpoint cannot both go on, and totals are written with `SET`.
//!
//! [`Config::planner_budget`]: crate::Config::planner_budget

use crate::adapters::dynamo::StatusChange;
use crate::chunk::{Chunk, Chunker, PlanMessage};
use crate::job::{Job, JobStatus};
use crate::lifecycle::{fail_job, finalize_if_reconciled, maybe_finalize};
use crate::manifest::generator::ManifestOutput;
use crate::manifest::{ManifestError, ManifestSource, Position, Resume};
use crate::{Config, Deps, Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

/// Chunk messages queued per `SendMessageBatch` round, and rounds in flight at once.
pub const CHUNKS_PER_ROUND: usize = 10;
pub const ROUNDS_IN_FLIGHT: usize = 4;

/// Time kept back before a Lambda deadline to flush sends and save the checkpoint.
const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// Whether the work queues hold [`Config::planner_max_backlog`] chunk messages or more.
async fn backlog_full(deps: &Deps) -> Result<bool> {
    let max = deps.config.planner_max_backlog;
    Ok(max > 0 && deps.queues.work_backlog().await? >= max)
}

/// When a planner invocation should stop reading: after its budget, and in good time before
/// the Lambda deadline when one is known (`remaining`: the invocation's time left).
pub fn stop_time(config: &Config, remaining: Option<Duration>) -> Instant {
    let mut budget = config.planner_budget;
    if let Some(left) = remaining {
        let margin = DEADLINE_MARGIN.min(left / 4);
        budget = budget.min(left.saturating_sub(margin));
    }
    Instant::now() + budget
}

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

async fn read_definition(deps: &Deps, job_id: &str, chunk: u64) -> Result<Option<ChunkDefinition>> {
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
async fn define(deps: &Deps, def: &ChunkDefinition) -> Result<bool> {
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
async fn forget_definitions(deps: &Deps, job_id: &str, from: u64, to: u64) {
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

/// What one planner invocation did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanSummary {
    /// Rows read (queued or counted) so far, by this and earlier invocations.
    pub tasks: u64,
    /// Chunks queued so far.
    pub chunks: u64,
    /// The invocation stopped part-way and re-enqueued itself.
    pub continued: bool,
    /// The most rows ever buffered between the manifest reader and the planner.
    pub max_buffered_rows: usize,
    /// The most tasks the planner held at once (open chunk, rounds waiting and in flight).
    pub max_tasks_held: usize,
}

/// Plans one job, reading its manifest until `deadline` at most. Errors that retrying can fix
/// are returned (the plan message is then retried by SQS); a bad manifest fails the job with
/// a reason and returns `Ok`.
#[instrument(skip(deps, deadline), fields(job_id = %job_id))]
pub async fn plan_job(deps: &Deps, job_id: &str, deadline: Instant) -> Result<PlanSummary> {
    plan_attempt(deps, job_id, deadline, false).await
}

/// [`plan_job`] for one delivery of a plan message. A transient manifest error (throttling,
/// 5xx, a reset connection) is returned, so SQS retries planning from the checkpoint, unless
/// this is the message's `last_delivery`: then it fails the job like any unreadable manifest.
pub async fn plan_attempt(
    deps: &Deps,
    job_id: &str,
    deadline: Instant,
    last_delivery: bool,
) -> Result<PlanSummary> {
    let job = deps.store.require(job_id).await?;
    match job.status {
        JobStatus::New => {
            let started = deps
                .store
                .try_transition(
                    job_id,
                    &[JobStatus::New],
                    JobStatus::Preparing,
                    StatusChange::default(),
                )
                .await?;
            if let Err(actual) = started {
                info!(%actual, "job left New before planning started");
                return Ok(PlanSummary::default());
            }
        }
        // Continuing, or a planner that died part-way: resume from the checkpoint.
        JobStatus::Preparing => {}
        // Confirmed by the user: plan for real.
        JobStatus::Ready => {}
        JobStatus::Active if !job.planned => {}
        // Cancelled or failing while planning: close planning with what was queued (below).
        JobStatus::Cancelling | JobStatus::Failing if !job.planned => {}
        // Paused while planning: the checkpoint waits; resume queues planning again.
        JobStatus::Pausing | JobStatus::Paused if !job.planned => {
            info!(status = %job.status, "paused while planning; resume continues it");
            pause_settled(deps, job_id, job.status).await?;
            return Ok(PlanSummary::default());
        }
        other => {
            info!(status = %other, "nothing to plan");
            return Ok(PlanSummary::default());
        }
    }
    let phase = if job.request.confirmation_required
        && matches!(job.status, JobStatus::New | JobStatus::Preparing)
    {
        Phase::Count
    } else {
        Phase::Plan
    };
    if phase == Phase::Plan && job.status == JobStatus::Active && backlog_full(deps).await? {
        // A continuation meeting full work queues reads nothing and looks again later.
        deps.queues
            .send_plan_after(
                &PlanMessage {
                    job_id: job_id.into(),
                },
                deps.config.planner_backoff,
            )
            .await?;
        info!(
            backoff_secs = deps.config.planner_backoff.as_secs(),
            "work queues full; planning waits"
        );
        return Ok(PlanSummary {
            continued: true,
            ..Default::default()
        });
    }
    let source = match (&job.request.manifest, &job.request.manifest_generator) {
        (Some(m), _) => ManifestSource::Manifest(m),
        (None, Some(g)) => ManifestSource::Generator(g.s3(), deps.config.generator_scan_span),
        (None, None) => {
            fail_job(deps, job_id, "ManifestInvalid", "the job has no Manifest").await?;
            return Ok(PlanSummary::default());
        }
    };
    let plan = deps.store.plan_state(job_id).await?;
    let sent = (plan.sent_through, plan.sent_rows);
    let saved = plan.saved;
    let seq = saved.as_ref().map(|(seq, _)| *seq);
    // A count's checkpoint does not carry over into planning for real.
    let checkpoint = saved.map(|(_, cp)| cp).filter(|cp| cp.phase == phase);
    let resume = checkpoint
        .as_ref()
        .map(|cp| Resume {
            at: cp.at.clone(),
            row: cp.row,
            etag: cp.etag.clone(),
        })
        .or_else(|| confirmed_pin(&job, phase))
        .or_else(|| start_pinned(&job, plan.pinned_etag.as_deref()));
    let mut first_chunk = checkpoint.as_ref().map_or(0, |cp| cp.next_chunk);
    let mut first_row = checkpoint.as_ref().map_or(0, |cp| cp.row);
    let mut resume = resume;
    // A generator's chunks defined by an earlier planner (it may have queued them): queued
    // again as defined, and the listing goes on after the last.
    let defined = matches!(source, ManifestSource::Generator(..)) && phase == Phase::Plan;
    let invocation_first_chunk = first_chunk;
    let mut replayed: Vec<Chunk> = Vec::new();
    let mut listing_done = false;
    if defined {
        while let Some(def) = read_definition(deps, job_id, first_chunk).await? {
            first_chunk += 1;
            first_row = def.next_row;
            let etag = resume.as_ref().map(|r| r.etag.clone()).unwrap_or_default();
            match def.next {
                Some(at) => {
                    resume = Some(Resume {
                        at,
                        row: def.next_row,
                        etag,
                    })
                }
                None => listing_done = true,
            }
            replayed.push(def.chunk);
            if listing_done {
                break;
            }
        }
        if !replayed.is_empty() {
            info!(
                from = invocation_first_chunk,
                to = first_chunk,
                "queuing again the chunks an earlier planner defined"
            );
            for batch in replayed.chunks(CHUNKS_PER_ROUND) {
                let last = batch.last().expect("non-empty");
                let rows = last.tasks.last().map_or(0, |t| t.row + 1);
                deps.store.record_sent(job_id, last.chunk + 1, rows).await?;
                deps.queues.send_chunks(batch, job.priority).await?;
            }
            if matches!(job.status, JobStatus::Preparing | JobStatus::Ready) {
                activate(deps, &job).await?;
            }
        }
    }
    // An ending job's plan closes at the highest chunk that may be queued: none past the
    // checkpoint, or those an earlier invocation sent after it (cut again from the checkpoint
    // and sent again, identical, so that every chunk below the close is counted).
    let close_at = if matches!(job.status, JobStatus::Cancelling | JobStatus::Failing) {
        let sent = plan.sent_through;
        if sent <= first_chunk {
            let etag = checkpoint.map_or_else(
                || job.manifest_etag.clone().unwrap_or_default(),
                |cp| cp.etag,
            );
            if defined {
                forget_definitions(deps, job_id, invocation_first_chunk, first_chunk).await;
            }
            return close_planning(deps, job_id, first_row, first_chunk, &etag).await;
        }
        info!(
            from = first_chunk,
            to = sent,
            "closing planning: queuing the in-doubt chunks again"
        );
        Some(sent)
    } else {
        None
    };
    let chunk_size = checkpoint
        .as_ref()
        .map_or(deps.config.chunk_size, |cp| cp.chunk_size);
    if let Some(cp) = &checkpoint {
        info!(
            row = cp.row,
            chunk = cp.next_chunk,
            continuations = cp.continuations,
            "resuming planning"
        );
    }

    let scan_span = checkpoint
        .as_ref()
        .and_then(|cp| cp.scan_span)
        .unwrap_or(deps.config.generator_scan_span);
    let source = match source {
        ManifestSource::Generator(g, _) => ManifestSource::Generator(g, scan_span),
        other => other,
    };
    let mut stream =
        match crate::manifest::open(&deps.objects, &deps.config, source, resume.as_ref()).await {
            Ok(s) => s,
            Err(e) if e.is_transient() && !last_delivery => {
                warn!(error = %e, "manifest not readable for now; planning is retried");
                return Err(e.into());
            }
            Err(e) => {
                abort(deps, &job, phase, (first_row, first_chunk), sent, "", e).await?;
                return Ok(PlanSummary::default());
            }
        };
    let etag = checkpoint
        .as_ref()
        .map_or_else(|| stream.etag.clone(), |cp| cp.etag.clone());
    if resume.is_none() && !stream.etag.is_empty() {
        // The first read of the manifest: pin it. Another planner of this job may have pinned
        // a different one first (the manifest was replaced between the two reads).
        let pinned = deps.store.pin_manifest(job_id, &stream.etag).await?;
        if pinned != stream.etag {
            let e = ManifestError::EtagMismatch {
                expected: pinned,
                actual: stream.etag.clone(),
            };
            abort(deps, &job, phase, (first_row, first_chunk), sent, "", e).await?;
            return Ok(PlanSummary::default());
        }
    }
    let mut output = match (phase, &job.request.manifest_generator) {
        (Phase::Plan, Some(g)) if g.s3().enable_manifest_output => g
            .s3()
            .manifest_output_location
            .as_ref()
            .and_then(|l| ManifestOutput::new(l, job_id)),
        _ => None,
    };

    let mut chunker = Chunker::new(job_id, chunk_size, first_chunk);
    let mut round: Vec<Chunk> = Vec::new();
    let mut in_flight: JoinSet<Result<usize>> = JoinSet::new();
    let mut in_flight_tasks = 0usize;
    let mut open_tasks = 0usize;
    let mut round_tasks = 0usize;
    let mut max_held = 0usize;
    let mut tasks = first_row;
    let mut activated = job.status == JobStatus::Active
        || (!replayed.is_empty() && matches!(job.status, JobStatus::Preparing | JobStatus::Ready));
    // Another planner defined a chunk this one cut: it plans the job, this one stops.
    let mut superseded = false;
    let mut stopping = false;
    // Stopped because the work queues are full: the continuation waits before it reads.
    let mut backlogged = false;
    // Set when the job was paused, cancelled or failed while this invocation read.
    let mut interrupted: Option<JobStatus> = None;
    let mut resume_at: Option<(Position, u64)> = None;
    let mut stream_error: Option<ManifestError> = None;
    let mut closing_reached = false;

    // The generated manifest lists the replayed chunks too, as if cut again.
    if let Some(out) = output.as_mut() {
        for chunk in &replayed {
            if let Err(e) = add_to_output(deps, job_id, out, chunk).await {
                stream_error = Some(e);
                listing_done = true;
                break;
            }
        }
    }
    'read: loop {
        if listing_done {
            break;
        }
        let batch = match stream.next_batch().await {
            Some(Ok(batch)) => batch,
            Some(Err(e)) => {
                stream_error = Some(e);
                break;
            }
            None => break,
        };
        if Instant::now() >= deadline {
            stopping = true;
        }
        for item in batch {
            // A row opens the next chunk when the open one is full; a scan boundary ends the
            // open one (if it has rows) and is a place to stop even if it has none. Either
            // way the next invocation may start at `item.at`, with row number `tasks` (the
            // rows before it are all in chunks cut).
            let is_row = item.task.is_some();
            let (cut, boundary) = match item.task {
                Some(task) => {
                    debug_assert_eq!(task.row, tasks);
                    open_tasks += 1;
                    let cut = chunker.push(task);
                    if cut.is_some() {
                        open_tasks = 1;
                    }
                    let boundary = cut.is_some();
                    (cut, boundary)
                }
                None => {
                    open_tasks = 0;
                    (chunker.finish(), true)
                }
            };
            if let Some(mut full) = cut {
                if defined {
                    // Defined before it is queued: a planner run again queues this one.
                    let def = ChunkDefinition {
                        chunk: full,
                        next: Some(item.at.clone()),
                        next_row: tasks,
                    };
                    if !define(deps, &def).await? {
                        info!(
                            chunk = def.chunk.chunk,
                            "another planner defined this chunk; stopping"
                        );
                        superseded = true;
                        break 'read;
                    }
                    full = def.chunk;
                }
                round_tasks += full.tasks.len();
                if let Some(out) = output.as_mut()
                    && let Err(e) = add_to_output(deps, job_id, out, &full).await
                {
                    // The chunk is sent with its round; planning then ends with the error
                    // (the row just read, in the open chunk, was not sent).
                    round.push(full);
                    tasks += u64::from(is_row);
                    stream_error = Some(e);
                    break 'read;
                }
                let closed = close_at == Some(chunker.next_chunk());
                round.push(full);
                if closed {
                    // The plan of an ending job closes here: the rows from this one on are
                    // not part of the job.
                    closing_reached = true;
                    break 'read;
                }
            }
            if stopping && boundary {
                // The next invocation starts here (the open chunk, if any, was not sent).
                resume_at = Some((item.at, tasks));
                break 'read;
            }
            tasks += u64::from(is_row);
            max_held = max_held.max(open_tasks + round_tasks + in_flight_tasks);
            if round.len() >= CHUNKS_PER_ROUND {
                // Once a round: has the job been paused, cancelled or failed meanwhile? Then
                // stop at the next chunk boundary instead of queuing on.
                if phase == Phase::Plan && interrupted.is_none() && close_at.is_none() {
                    let now = deps.store.status(job_id).await?;
                    if matches!(
                        now,
                        JobStatus::Pausing
                            | JobStatus::Paused
                            | JobStatus::Cancelling
                            | JobStatus::Failing
                    ) {
                        info!(status = %now, "job changed while planning; stopping");
                        interrupted = Some(now);
                        stopping = true;
                    }
                }
                if phase == Phase::Plan && !stopping && backlog_full(deps).await? {
                    info!("work queues full; stopping at the next chunk boundary");
                    backlogged = true;
                    stopping = true;
                }
                let batch = std::mem::take(&mut round);
                round_tasks = 0;
                let sent = send_round(
                    deps,
                    &job,
                    phase,
                    batch,
                    &mut activated,
                    &mut in_flight,
                    &mut in_flight_tasks,
                )
                .await?;
                in_flight_tasks += sent;
            }
        }
    }
    if resume_at.is_none()
        && !closing_reached
        && !superseded
        && stream_error.is_none()
        && let Some(last) = chunker.finish()
    {
        let last = if defined {
            let def = ChunkDefinition {
                chunk: last,
                next: None,
                next_row: tasks,
            };
            if define(deps, &def).await? {
                Some(def.chunk)
            } else {
                superseded = true;
                None
            }
        } else {
            Some(last)
        };
        let Some(last) = last else {
            info!("another planner defined the last chunk; stopping");
            while let Some(sent) = in_flight.join_next().await {
                sent??;
            }
            return Ok(PlanSummary::default());
        };
        if let Some(out) = output.as_mut()
            && let Err(e) = out.add_chunk(&last)
        {
            stream_error = Some(output_error(out.bucket(), e));
        }
        round.push(last);
    }
    if !round.is_empty() {
        let batch = std::mem::take(&mut round);
        send_round(
            deps,
            &job,
            phase,
            batch,
            &mut activated,
            &mut in_flight,
            &mut in_flight_tasks,
        )
        .await?;
    }
    while let Some(sent) = in_flight.join_next().await {
        sent??;
    }
    if superseded {
        // What this one queued was defined by it; the other planner goes on from there.
        return Ok(PlanSummary::default());
    }
    if stream_error.is_none()
        && let Some(out) = output.as_mut()
        && let Err(e) = roll_output(deps, job_id, out).await
    {
        // Every chunk is sent: none is open.
        open_tasks = 0;
        stream_error = Some(e);
    }
    let chunks = chunker.next_chunk();
    let summary = |tasks, chunks, continued| PlanSummary {
        tasks,
        chunks,
        continued,
        max_buffered_rows: stream.max_buffered_rows(),
        max_tasks_held: max_held,
    };

    if let Some((at, row)) = resume_at {
        // Stopped at a chunk boundary (the time budget, or the job changed): checkpoint, and
        // go on in a new invocation. The open chunk (from `at` on) was not sent; it gets
        // number `chunks`.
        let next_chunk = chunks;
        let checkpoint = Checkpoint {
            phase,
            at,
            row,
            next_chunk,
            etag,
            chunk_size,
            continuations: checkpoint.as_ref().map_or(0, |c| c.continuations) + 1,
            scan_span: Some(scan_span),
            saved_at: Some(crate::time::now_iso()),
        };
        let planned_chunks = if phase == Phase::Plan { next_chunk } else { 0 };
        if !deps
            .store
            .save_checkpoint(job_id, seq, &checkpoint, row, planned_chunks)
            .await?
        {
            info!("another planner moved this job on; stopping");
            return Ok(summary(row, next_chunk, false));
        }
        // The checkpoint covers them: planning never goes back before it.
        if defined {
            forget_definitions(deps, job_id, invocation_first_chunk, next_chunk).await;
        }
        match interrupted {
            Some(JobStatus::Cancelling | JobStatus::Failing) => {
                // Every queued chunk is sent: planning closes here.
                return close_planning(deps, job_id, row, next_chunk, &checkpoint.etag).await;
            }
            Some(status) => {
                // Paused: resume sends the plan message that continues from the checkpoint.
                pause_settled(deps, job_id, status).await?;
                return Ok(summary(row, next_chunk, false));
            }
            None => {}
        }
        let message = PlanMessage {
            job_id: job_id.into(),
        };
        if backlogged {
            deps.queues
                .send_plan_after(&message, deps.config.planner_backoff)
                .await?;
        } else {
            deps.queues.send_plan(&message).await?;
        }
        info!(
            backlogged,
            rows = row,
            chunks = next_chunk,
            continuations = checkpoint.continuations,
            "time budget reached; planning continues in a new invocation"
        );
        return Ok(summary(row, next_chunk, true));
    }

    if let Some(e) = stream_error.take_if(|e| e.is_transient() && !last_delivery) {
        // Retried from the checkpoint: the chunks sent since are sent again, identical, and
        // counted once.
        warn!(error = %e, "manifest stream broke; planning is retried");
        return Err(e.into());
    }
    if let Some(e) = stream_error {
        // The open chunk was not sent: only the rows of queued chunks count as planned.
        let planned = tasks - open_tasks as u64;
        warn!(error = %e, planned, chunks, "manifest stream failed");
        abort(deps, &job, phase, (planned, chunks), sent, &etag, e).await?;
        return Ok(summary(planned, chunks, false));
    }
    if tasks == 0 {
        let e = ManifestError::Empty;
        fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
        return Ok(PlanSummary::default());
    }
    if phase == Phase::Count {
        deps.store.set_total(job_id, tasks, &etag).await?;
        let suspended = deps
            .store
            .try_transition(
                job_id,
                &[JobStatus::Preparing],
                JobStatus::Suspended,
                StatusChange::default(),
            )
            .await?;
        // Cancelled (or failed) during the count: nothing was queued, so planning closes
        // with no chunk and the job ends now, not when the sweep re-plans it.
        if let Err(JobStatus::Cancelling | JobStatus::Failing) = suspended {
            return close_planning(deps, job_id, 0, 0, &etag).await;
        }
        info!(tasks, "counted; awaiting confirmation");
        return Ok(summary(tasks, 0, false));
    }
    if let (Some(out), Some(g)) = (&output, &job.request.manifest_generator) {
        let recorded = deps.store.output_files(job_id).await?;
        let created = crate::time::parse(&job.creation_time)
            .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        let source = crate::job::spec::parse_bucket_arn(&g.s3().source_bucket).unwrap_or_default();
        let key = match out
            .finish(&deps.objects, &source, created, &recorded, chunks)
            .await
        {
            Ok(key) => key,
            Err(e) => {
                let e = output_error(out.bucket(), e);
                if e.is_transient() && !last_delivery {
                    return Err(e.into());
                }
                abort(deps, &job, phase, (tasks, chunks), sent, &etag, e).await?;
                return Ok(summary(tasks, chunks, false));
            }
        };
        info!(bucket = out.bucket(), key, "generated manifest written");
    }
    let planned = deps
        .store
        .finish_planning(job_id, tasks, chunks, &etag)
        .await?;
    if defined {
        forget_definitions(deps, job_id, invocation_first_chunk, chunks).await;
    }
    info!(tasks, chunks, "planned");
    finalize_if_reconciled(deps, &planned).await?;
    Ok(summary(tasks, chunks, false))
}

/// Adds a cut chunk to the generated manifest, writing (and recording) a data file when one
/// is full.
async fn add_to_output(
    deps: &Deps,
    job_id: &str,
    out: &mut ManifestOutput,
    chunk: &Chunk,
) -> std::result::Result<(), ManifestError> {
    let full = out
        .add_chunk(chunk)
        .map_err(|e| output_error(out.bucket(), e))?;
    if full {
        roll_output(deps, job_id, out).await?;
    }
    Ok(())
}

/// Writes the generated manifest's open data file, if any, and records it.
async fn roll_output(
    deps: &Deps,
    job_id: &str,
    out: &mut ManifestOutput,
) -> std::result::Result<(), ManifestError> {
    let bucket = out.bucket().to_string();
    if let Some(file) = out
        .roll(&deps.objects)
        .await
        .map_err(|e| output_error(&bucket, e))?
    {
        deps.store
            .put_output_file(job_id, &file)
            .await
            .map_err(|e| output_error(&bucket, e))?;
    }
    Ok(())
}

/// A failed write of the generated manifest: transient when retrying can help.
fn output_error(bucket: &str, e: Error) -> ManifestError {
    ManifestError::OutputWrite {
        bucket: bucket.to_string(),
        transient: e.is_retryable(),
        reason: e.to_string(),
    }
}

/// A confirmed job runs the manifest that was counted: planning starts at the top, pinned to
/// the ETag recorded by the count, so a manifest replaced while `Suspended` is refused
/// (`ManifestETagMismatch`) rather than run in place of the one confirmed.
fn confirmed_pin(job: &Job, phase: Phase) -> Option<Resume> {
    let counted = job.manifest_etag.as_deref().filter(|e| !e.is_empty())?;
    if phase != Phase::Plan || !job.request.confirmation_required {
        return None;
    }
    from_the_start(job, counted)
}

/// A manifest already read once by this job's planning (pinned) is read from the start again
/// only if its ETag is still the pinned one: a replaced manifest is refused
/// (`ManifestETagMismatch`), never cut into different chunks.
fn start_pinned(job: &Job, pinned: Option<&str>) -> Option<Resume> {
    from_the_start(job, pinned.filter(|e| !e.is_empty())?)
}

/// Reading a job's manifest object from its first row, only while its ETag is `etag`.
fn from_the_start(job: &Job, etag: &str) -> Option<Resume> {
    let manifest = job.request.manifest.as_ref()?;
    let at = match manifest.spec.format {
        crate::job::spec::ManifestFormat::BatchOperationsCsv => Position::Csv { offset: 0 },
        crate::job::spec::ManifestFormat::InventoryReportCsv => {
            Position::Inventory { file: 0, record: 0 }
        }
    };
    Some(Resume {
        at,
        row: 0,
        etag: etag.to_string(),
    })
}

/// Closes planning of a job that was cancelled or failed before it was planned: the `chunks`
/// queued (holding `rows` rows; the rows after them are not part of the job, as with AWS's
/// cancel) are the job's, and it ends once they are counted.
async fn close_planning(
    deps: &Deps,
    job_id: &str,
    rows: u64,
    chunks: u64,
    etag: &str,
) -> Result<PlanSummary> {
    info!(rows, chunks, "closing planning of an ending job");
    let planned = deps
        .store
        .finish_planning(job_id, rows, chunks, etag)
        .await?;
    finalize_if_reconciled(deps, &planned).await?;
    Ok(PlanSummary {
        tasks: rows,
        chunks,
        ..Default::default()
    })
}

/// A planner that stopped for a pause: with nothing left running, `Pausing` is `Paused`.
async fn pause_settled(deps: &Deps, job_id: &str, status: JobStatus) -> Result<()> {
    if status == JobStatus::Pausing {
        let _moved = deps.store.settle_pause(job_id).await?;
    }
    Ok(())
}

/// Queues one round of chunks (the first inline, so the job is `Active` once a chunk is
/// queued; later ones with a few rounds in flight). Counting queues nothing. Returns the
/// tasks now in flight.
async fn send_round(
    deps: &Deps,
    job: &Job,
    phase: Phase,
    batch: Vec<Chunk>,
    activated: &mut bool,
    in_flight: &mut JoinSet<Result<usize>>,
    in_flight_tasks: &mut usize,
) -> Result<usize> {
    if phase == Phase::Count {
        return Ok(0);
    }
    let n: usize = batch.iter().map(|c| c.tasks.len()).sum();
    if let Some(last) = batch.last() {
        let rows = last.tasks.last().map_or(0, |t| t.row + 1);
        deps.store
            .record_sent(&job.job_id, last.chunk + 1, rows)
            .await?;
    }
    if !*activated {
        deps.queues.send_chunks(&batch, job.priority).await?;
        activate(deps, job).await?;
        *activated = true;
        return Ok(0);
    }
    while in_flight.len() >= ROUNDS_IN_FLIGHT {
        let done = in_flight.join_next().await.expect("non-empty")??;
        *in_flight_tasks -= done;
    }
    let queues = deps.queues.clone();
    let priority = job.priority;
    in_flight.spawn(async move { queues.send_chunks(&batch, priority).await.map(|()| n) });
    Ok(n)
}

/// The manifest could not be read (any more). With nothing queued the job fails at once;
/// otherwise what was queued is recorded as planned and the job fails through `Failing`,
/// so what ran is still counted and reported.
async fn abort(
    deps: &Deps,
    job: &Job,
    phase: Phase,
    (tasks, chunks): (u64, u64),
    (sent_chunks, sent_rows): (u64, u64),
    etag: &str,
    e: ManifestError,
) -> Result<()> {
    let job_id = job.job_id.as_str();
    // What an earlier invocation may have queued beyond this one's (it sent past its last
    // checkpoint, then died) is the job's too: the workers will count it.
    let (tasks, chunks) = if sent_chunks > chunks {
        (sent_rows, sent_chunks)
    } else {
        (tasks, chunks)
    };
    if phase == Phase::Count || chunks == 0 {
        return fail_job(deps, job_id, e.failure_code(), &e.to_string()).await;
    }
    deps.store
        .finish_planning(job_id, tasks, chunks, etag)
        .await?;
    let change = StatusChange::default().failure(e.failure_code(), e.to_string());
    // Already moved on (cancelled, or another planner failed it): it ends as it is.
    let _moved = deps
        .store
        .try_transition(
            job_id,
            &[
                JobStatus::Preparing,
                JobStatus::Ready,
                JobStatus::Active,
                JobStatus::Pausing,
                JobStatus::Paused,
            ],
            JobStatus::Failing,
            change,
        )
        .await?;
    // Failed during a pause: the chunks parked meanwhile are counted as not run.
    crate::parking::unpark(deps, job_id, job.priority).await?;
    maybe_finalize(deps, job_id).await
}

async fn activate(deps: &Deps, job: &Job) -> Result<()> {
    // Already moved on (cancelled meanwhile, or a concurrent planner): workers decide.
    let _moved = deps
        .store
        .try_transition(
            &job.job_id,
            &[JobStatus::Preparing, JobStatus::Ready],
            JobStatus::Active,
            StatusChange::default(),
        )
        .await?;
    Ok(())
}
