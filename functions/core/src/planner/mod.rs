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
//! ## An invocation, phase by phase
//! [`plan_attempt`] decides from the job's status whether to plan at all ([`Entry`]) and what
//! for ([`Phase`]), then drives one [`Planning`] through its phases:
//! 1. **start** ([`Start`], pure): where reading starts — the checkpoint of this phase, or the
//!    top of a pinned manifest — and where an ending job's plan closes ([`Close`]);
//! 2. **replay**: a generator's chunks an earlier planner defined are queued again as defined;
//! 3. **open** and **pin** the manifest (its first read pins its ETag);
//! 4. **read** ([`reading::Reading`], pure bookkeeping): cut chunks, define them (a
//!    generator's), send them in rounds, and stop at a chunk boundary past the deadline, when
//!    the job is paused, cancelled or failed, or when the work queues are full;
//! 5. **conclude** on how reading [`End`]ed: save a checkpoint and continue, retry, abort
//!    (fail the job, keeping what was queued), or record the totals (and suspend a count).
//!
//! [`Config::planner_budget`]: crate::Config::planner_budget

mod definitions;
mod reading;

pub use crate::checkpoint::{Checkpoint, Phase};
pub use definitions::{ChunkDefinition, DEFINITIONS_PREFIX};

use crate::adapters::dynamo::{PlanState, StatusChange};
use crate::chunk::{Chunk, PlanMessage};
use crate::job::{Job, JobStatus};
use crate::lifecycle::{fail_job, finalize_if_reconciled, maybe_finalize};
use crate::manifest::generator::ManifestOutput;
use crate::manifest::{ManifestError, ManifestSource, ManifestStream, Position, Resume};
use crate::{Config, Deps, Error, Result};
use definitions::{define, forget_definitions, read_definition};
use reading::Reading;
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

/// What a plan message does with the job, by the status it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `New`: planning starts (`New → Preparing`).
    Start,
    /// Planning goes on: a continuation, a planner that died part-way, a confirmed job, or an
    /// ending job whose plan is closed with what was queued.
    Resume,
    /// Paused while planning: the checkpoint waits (resume queues planning again), and a
    /// `Pausing` job with nothing running is `Paused`.
    Paused(JobStatus),
    /// Planned already, or ended: nothing to do.
    Nothing,
}

impl Entry {
    pub fn of(job: &Job) -> Entry {
        match job.status {
            JobStatus::New => Entry::Start,
            JobStatus::Preparing | JobStatus::Ready => Entry::Resume,
            JobStatus::Active | JobStatus::Cancelling | JobStatus::Failing if !job.planned => {
                Entry::Resume
            }
            s @ (JobStatus::Pausing | JobStatus::Paused) if !job.planned => Entry::Paused(s),
            _ => Entry::Nothing,
        }
    }
}

impl Phase {
    /// What a job in this status reads its manifest for: a job that must be confirmed is
    /// counted before it is confirmed, planned for real after.
    pub fn of(job: &Job) -> Phase {
        if job.request.confirmation_required
            && matches!(job.status, JobStatus::New | JobStatus::Preparing)
        {
            Phase::Count
        } else {
            Phase::Plan
        }
    }
}

/// Where an ending (`Cancelling`/`Failing`) job's plan closes: at the highest chunk that may
/// be queued — none past the checkpoint, or those an earlier invocation sent after it (cut
/// again from the checkpoint and sent again, identical, so that every chunk below the close
/// is counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The job is not ending: its plan closes when the manifest ends.
    No,
    /// Nothing was sent past where reading starts: the plan closes there, now.
    Now,
    /// The plan closes once the chunks below this one are cut again and sent.
    At(u64),
}

/// Where an invocation starts reading, from the job and its `PLAN` item (pure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The checkpoint of this phase reading resumes from (a count's does not carry over into
    /// planning for real), and the version it was read at.
    pub checkpoint: Option<Checkpoint>,
    pub seq: Option<u64>,
    /// Where reading starts in the manifest (none: its top, not yet pinned).
    pub resume: Option<Resume>,
    /// The chunk and row reading starts at.
    pub chunk: u64,
    pub row: u64,
    /// The chunk this invocation started at, before replaying definitions.
    pub first_chunk: u64,
    /// `(chunks, rows)`: every chunk below `chunks` may have been queued (the sent mark).
    pub sent: (u64, u64),
    /// A generator's listing ended with a replayed definition.
    pub listing_done: bool,
    pub chunk_size: usize,
    pub scan_span: u64,
}

impl Start {
    pub fn new(job: &Job, phase: Phase, plan: PlanState, config: &Config) -> Start {
        let seq = plan.saved.as_ref().map(|(seq, _)| *seq);
        let checkpoint = plan.saved.map(|(_, cp)| cp).filter(|cp| cp.phase == phase);
        let resume = checkpoint
            .as_ref()
            .map(Checkpoint::resume)
            .or_else(|| confirmed_pin(job, phase))
            .or_else(|| start_pinned(job, plan.pinned_etag.as_deref()));
        let chunk = checkpoint.as_ref().map_or(0, |cp| cp.next_chunk);
        Start {
            seq,
            resume,
            chunk,
            row: checkpoint.as_ref().map_or(0, |cp| cp.row),
            first_chunk: chunk,
            sent: (plan.sent_through, plan.sent_rows),
            listing_done: false,
            chunk_size: checkpoint
                .as_ref()
                .map_or(config.chunk_size, |cp| cp.chunk_size),
            scan_span: checkpoint
                .as_ref()
                .and_then(|cp| cp.scan_span)
                .unwrap_or(config.generator_scan_span),
            checkpoint,
        }
    }

    /// Reading starts after a chunk an earlier planner defined: the listing goes on where it
    /// says (or has ended).
    pub fn replayed(&mut self, def: &ChunkDefinition) {
        self.chunk += 1;
        self.row = def.next_row;
        let etag = self
            .resume
            .as_ref()
            .map(|r| r.etag.clone())
            .unwrap_or_default();
        match &def.next {
            Some(at) => {
                self.resume = Some(Resume {
                    at: at.clone(),
                    row: def.next_row,
                    etag,
                })
            }
            None => self.listing_done = true,
        }
    }

    pub fn close(&self, status: JobStatus) -> Close {
        if !matches!(status, JobStatus::Cancelling | JobStatus::Failing) {
            Close::No
        } else if self.sent.0 <= self.chunk {
            Close::Now
        } else {
            Close::At(self.sent.0)
        }
    }

    /// The ETag planning is pinned to, by the checkpoint or else by `otherwise`.
    fn etag_or(&self, otherwise: impl FnOnce() -> String) -> String {
        self.checkpoint
            .as_ref()
            .map_or_else(otherwise, |cp| cp.etag.clone())
    }

    /// The checkpoint that continues from `at` (row `row`, chunk `next_chunk`).
    pub fn next_checkpoint(
        &self,
        phase: Phase,
        (at, row): (Position, u64),
        next_chunk: u64,
        etag: String,
        saved_at: String,
    ) -> Checkpoint {
        Checkpoint {
            phase,
            at,
            row,
            next_chunk,
            etag,
            chunk_size: self.chunk_size,
            continuations: self.checkpoint.as_ref().map_or(0, |c| c.continuations) + 1,
            scan_span: Some(self.scan_span),
            saved_at: Some(saved_at),
        }
    }
}

/// How the reading phase ended.
#[derive(Debug)]
enum End {
    /// The manifest ended: the open chunk is the last.
    Ended,
    /// An ending job's plan closed at the chunk it was sent through.
    Closed,
    /// Stopped at a chunk boundary (deadline, job changed, queues full): the next invocation
    /// starts at this item, with this row number.
    Stopped(Position, u64),
    /// Another planner defined a chunk this one cut: it plans the job, this one stops.
    Superseded,
    /// The manifest (or the generated manifest's write) failed.
    Broke(ManifestError),
}

/// Why reading stopped early, besides its deadline.
#[derive(Clone, Copy, Debug, Default)]
struct Stops {
    /// The job was paused, cancelled or failed meanwhile (its status then).
    interrupted: Option<JobStatus>,
    /// The work queues are full: the continuation waits before it reads.
    backlogged: bool,
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
    match Entry::of(&job) {
        Entry::Start => {
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
        Entry::Resume => {}
        Entry::Paused(status) => {
            info!(%status, "paused while planning; resume continues it");
            pause_settled(deps, job_id, status).await?;
            return Ok(PlanSummary::default());
        }
        Entry::Nothing => {
            info!(status = %job.status, "nothing to plan");
            return Ok(PlanSummary::default());
        }
    }
    let phase = Phase::of(&job);
    if phase == Phase::Plan && job.status == JobStatus::Active && backlog_full(deps).await? {
        // A continuation meeting full work queues reads nothing and looks again later.
        let message = PlanMessage {
            job_id: job_id.into(),
        };
        deps.queues
            .send_plan_after(&message, deps.config.planner_backoff)
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
    if job.request.manifest.is_none() && job.request.manifest_generator.is_none() {
        fail_job(deps, job_id, "ManifestInvalid", "the job has no Manifest").await?;
        return Ok(PlanSummary::default());
    }
    let plan = deps.store.plan_state(job_id).await?;
    let start = Start::new(&job, phase, plan, &deps.config);
    let mut planning = Planning {
        deps,
        defined: job.request.manifest.is_none() && phase == Phase::Plan,
        job,
        phase,
        last_delivery,
        start,
        replayed: Vec::new(),
        sending: Sending::default(),
        output: None,
    };
    planning.replay().await?;
    let close_at = match planning.start.close(planning.job.status) {
        Close::No => None,
        Close::Now => return planning.close_now().await,
        Close::At(sent) => {
            info!(
                from = planning.start.chunk,
                to = sent,
                "closing planning: queuing the in-doubt chunks again"
            );
            Some(sent)
        }
    };
    if let Some(cp) = &planning.start.checkpoint {
        info!(
            row = cp.row,
            chunk = cp.next_chunk,
            continuations = cp.continuations,
            "resuming planning"
        );
    }
    let Some(mut stream) = planning.open().await? else {
        return Ok(PlanSummary::default());
    };
    let etag = planning.start.etag_or(|| stream.etag.clone());
    if !planning.pin(&stream).await? {
        return Ok(PlanSummary::default());
    }
    let mut reading = Reading::new(
        &planning.job.job_id,
        planning.start.chunk_size,
        planning.start.chunk,
        planning.start.row,
        close_at,
    );
    let (end, stops) = planning.read(&mut stream, &mut reading, deadline).await?;
    let summary = |tasks, chunks, continued| PlanSummary {
        tasks,
        chunks,
        continued,
        max_buffered_rows: stream.max_buffered_rows(),
        max_tasks_held: reading.max_held(),
    };
    let chunks = reading.chunks();
    match end {
        End::Superseded => Ok(PlanSummary::default()),
        End::Stopped(at, row) => {
            let continued = planning.continue_at((at, row), chunks, etag, stops).await?;
            Ok(summary(row, chunks, continued))
        }
        End::Broke(e) if e.is_transient() && !planning.last_delivery => {
            // Retried from the checkpoint: the chunks sent since are sent again, identical,
            // and counted once.
            warn!(error = %e, "manifest stream broke; planning is retried");
            Err(e.into())
        }
        End::Broke(e) => {
            // The open chunk was not sent: only the rows of queued chunks count as planned.
            let planned = reading.rows_cut();
            warn!(error = %e, planned, chunks, "manifest stream failed");
            planning.abort((planned, chunks), &etag, e).await?;
            Ok(summary(planned, chunks, false))
        }
        End::Ended | End::Closed => {
            let read = (reading.rows(), chunks);
            planning
                .conclude(read, &etag, |t, c| summary(t, c, false))
                .await
        }
    }
}

/// The chunks being sent: the first round inline (so the job is `Active` once a chunk is
/// queued), later ones a few rounds at once.
#[derive(Default)]
struct Sending {
    /// The job is `Active` (or was made so by this invocation).
    activated: bool,
    in_flight: JoinSet<Result<usize>>,
    /// The tasks in the rounds in flight.
    tasks: usize,
}

impl Sending {
    /// Waits for every round in flight.
    async fn drain(&mut self) -> Result<()> {
        while let Some(sent) = self.in_flight.join_next().await {
            self.tasks -= sent??;
        }
        Ok(())
    }
}

/// One planner invocation of one job (see the module's phases).
struct Planning<'a> {
    deps: &'a Deps,
    job: Job,
    phase: Phase,
    last_delivery: bool,
    start: Start,
    /// A generator's plan: each chunk is defined before it is queued.
    defined: bool,
    /// The chunks an earlier planner defined, queued again.
    replayed: Vec<Chunk>,
    sending: Sending,
    /// The manifest a generator job writes (if it asked for one), as it is written.
    output: Option<ManifestOutput>,
}

impl Planning<'_> {
    fn job_id(&self) -> &str {
        &self.job.job_id
    }

    fn source(&self) -> ManifestSource<'_> {
        match (
            &self.job.request.manifest,
            &self.job.request.manifest_generator,
        ) {
            (Some(m), _) => ManifestSource::Manifest(m),
            (None, Some(g)) => ManifestSource::Generator(g.s3(), self.start.scan_span),
            (None, None) => unreachable!("plan_attempt fails a job with no manifest first"),
        }
    }

    /// Phase 2: queues again the chunks an earlier planner defined (it may have queued them),
    /// so the listing goes on after the last.
    async fn replay(&mut self) -> Result<()> {
        let deps = self.deps;
        self.sending.activated = self.job.status == JobStatus::Active;
        if !self.defined {
            return Ok(());
        }
        while let Some(def) = read_definition(deps, self.job_id(), self.start.chunk).await? {
            self.start.replayed(&def);
            self.replayed.push(def.chunk);
            if self.start.listing_done {
                break;
            }
        }
        if self.replayed.is_empty() {
            return Ok(());
        }
        info!(
            from = self.start.first_chunk,
            to = self.start.chunk,
            "queuing again the chunks an earlier planner defined"
        );
        for batch in self.replayed.chunks(CHUNKS_PER_ROUND) {
            let last = batch.last().expect("non-empty");
            let rows = last.tasks.last().map_or(0, |t| t.row + 1);
            deps.store
                .record_sent(&self.job.job_id, last.chunk + 1, rows)
                .await?;
            deps.queues.send_chunks(batch, self.job.priority).await?;
        }
        if matches!(self.job.status, JobStatus::Preparing | JobStatus::Ready) {
            activate(deps, &self.job).await?;
            self.sending.activated = true;
        }
        Ok(())
    }

    /// An ending job with nothing queued past where reading starts: its plan closes there.
    async fn close_now(&self) -> Result<PlanSummary> {
        let etag = self
            .start
            .etag_or(|| self.job.manifest_etag.clone().unwrap_or_default());
        if self.defined {
            self.forget_definitions(self.start.chunk).await;
        }
        close_planning(
            self.deps,
            self.job_id(),
            self.start.row,
            self.start.chunk,
            &etag,
        )
        .await
    }

    /// Phase 3: opens the manifest where reading starts. `None` when it cannot be read and
    /// the job was failed for it.
    async fn open(&self) -> Result<Option<ManifestStream>> {
        let deps = self.deps;
        let opened = crate::manifest::open(
            &deps.objects,
            &deps.config,
            self.source(),
            self.start.resume.as_ref(),
        )
        .await;
        match opened {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_transient() && !self.last_delivery => {
                warn!(error = %e, "manifest not readable for now; planning is retried");
                Err(e.into())
            }
            Err(e) => {
                let at = (self.start.row, self.start.chunk);
                self.abort(at, "", e).await?;
                Ok(None)
            }
        }
    }

    /// The first read of the manifest pins its ETag. Another planner of this job may have
    /// pinned a different one first (the manifest was replaced between the two reads): then
    /// the job fails (`false`).
    async fn pin(&self, stream: &ManifestStream) -> Result<bool> {
        if self.start.resume.is_some() || stream.etag.is_empty() {
            return Ok(true);
        }
        let pinned = self
            .deps
            .store
            .pin_manifest(self.job_id(), &stream.etag)
            .await?;
        if pinned == stream.etag {
            return Ok(true);
        }
        let e = ManifestError::EtagMismatch {
            expected: pinned,
            actual: stream.etag.clone(),
        };
        self.abort((self.start.row, self.start.chunk), "", e)
            .await?;
        Ok(false)
    }

    /// The generated manifest a generator job writes, if it asked for one.
    fn output(&self) -> Option<ManifestOutput> {
        let g = self.job.request.manifest_generator.as_ref()?.s3();
        if self.phase != Phase::Plan || !g.enable_manifest_output {
            return None;
        }
        ManifestOutput::new(g.manifest_output_location.as_ref()?, &self.job.job_id)
    }

    /// Phase 4: reads the manifest, cutting, defining and sending chunks, until it ends or
    /// reading stops at a chunk boundary. Every chunk cut is sent before this returns (but
    /// when another planner defined the last one: it goes on from there).
    async fn read(
        &mut self,
        stream: &mut ManifestStream,
        reading: &mut Reading,
        deadline: Instant,
    ) -> Result<(End, Stops)> {
        self.output = self.output();
        let mut stops = Stops::default();
        let mut end = self
            .read_items(stream, reading, deadline, &mut stops)
            .await?;
        if matches!(end, End::Ended) {
            match self.cut_last(reading).await? {
                Some(last) => end = last,
                None => {
                    info!("another planner defined the last chunk; stopping");
                    self.sending.drain().await?;
                    return Ok((End::Superseded, stops));
                }
            }
        }
        let batch = reading.take_round();
        if !batch.is_empty() {
            self.send_round(batch).await?;
        }
        self.sending.drain().await?;
        if matches!(end, End::Superseded | End::Broke(_)) {
            return Ok((end, stops));
        }
        let deps = self.deps;
        if let Some(out) = self.output.as_mut()
            && let Err(e) = roll_output(deps, &self.job.job_id, out).await
        {
            // Every chunk is sent: none is open.
            reading.all_sent();
            if !matches!(end, End::Stopped(..)) {
                end = End::Broke(e);
            }
        }
        Ok((end, stops))
    }

    /// Reads items until the manifest ends, a chunk boundary past a stop, or a failure.
    async fn read_items(
        &mut self,
        stream: &mut ManifestStream,
        reading: &mut Reading,
        deadline: Instant,
        stops: &mut Stops,
    ) -> Result<End> {
        let deps = self.deps;
        // The generated manifest lists the replayed chunks too, as if cut again.
        if let Some(out) = self.output.as_mut() {
            for chunk in &self.replayed {
                if let Err(e) = add_to_output(deps, &self.job.job_id, out, chunk).await {
                    return Ok(End::Broke(e));
                }
            }
        }
        if self.start.listing_done {
            return Ok(End::Ended);
        }
        let mut stopping = false;
        loop {
            let batch = match stream.next_batch().await {
                Some(Ok(batch)) => batch,
                Some(Err(e)) => return Ok(End::Broke(e)),
                None => return Ok(End::Ended),
            };
            if Instant::now() >= deadline {
                stopping = true;
            }
            for item in batch {
                let is_row = item.task.is_some();
                let taken = reading.take(item.task);
                if let Some(mut full) = taken.cut {
                    if self.defined {
                        // Defined before it is queued: a planner run again queues this one.
                        let def = ChunkDefinition {
                            chunk: full,
                            next: Some(item.at.clone()),
                            next_row: reading.rows(),
                        };
                        if !define(deps, &def).await? {
                            info!(
                                chunk = def.chunk.chunk,
                                "another planner defined this chunk; stopping"
                            );
                            return Ok(End::Superseded);
                        }
                        full = def.chunk;
                    }
                    if let Some(out) = self.output.as_mut()
                        && let Err(e) = add_to_output(deps, &self.job.job_id, out, &full).await
                    {
                        // The chunk is sent with its round; planning then ends with the error
                        // (the row just read, in the open chunk, was not sent).
                        reading.keep(full);
                        reading.advance(is_row);
                        return Ok(End::Broke(e));
                    }
                    if reading.keep(full) {
                        // The plan of an ending job closes here: the rows from this one on
                        // are not part of the job.
                        return Ok(End::Closed);
                    }
                }
                if stopping && taken.boundary {
                    // The next invocation starts here (the open chunk, if any, was not sent).
                    return Ok(End::Stopped(item.at, reading.rows()));
                }
                reading.advance(is_row);
                reading.note_held(self.sending.tasks);
                if reading.round_full() {
                    stopping |= self.look_again(reading, stops, stopping).await?;
                    let batch = reading.take_round();
                    self.send_round(batch).await?;
                }
            }
        }
    }

    /// Once a round: has the job been paused, cancelled or failed meanwhile, or are the work
    /// queues full? Then reading stops at the next chunk boundary instead of queuing on.
    async fn look_again(
        &self,
        reading: &Reading,
        stops: &mut Stops,
        stopping: bool,
    ) -> Result<bool> {
        if self.phase != Phase::Plan {
            return Ok(false);
        }
        let mut stop = false;
        if stops.interrupted.is_none() && !reading.closing() {
            let now = self.deps.store.status(self.job_id()).await?;
            if matches!(
                now,
                JobStatus::Pausing | JobStatus::Paused | JobStatus::Cancelling | JobStatus::Failing
            ) {
                info!(status = %now, "job changed while planning; stopping");
                stops.interrupted = Some(now);
                stop = true;
            }
        }
        if !stopping && !stop && backlog_full(self.deps).await? {
            info!("work queues full; stopping at the next chunk boundary");
            stops.backlogged = true;
            stop = true;
        }
        Ok(stop)
    }

    /// The manifest ended: cuts the open chunk, the last (a generator's defined first). `None`
    /// when another planner defined it.
    async fn cut_last(&mut self, reading: &mut Reading) -> Result<Option<End>> {
        let Some(last) = reading.finish() else {
            return Ok(Some(End::Ended));
        };
        let last = if self.defined {
            let def = ChunkDefinition {
                chunk: last,
                next: None,
                next_row: reading.rows(),
            };
            if !define(self.deps, &def).await? {
                return Ok(None);
            }
            def.chunk
        } else {
            last
        };
        let mut end = End::Ended;
        if let Some(out) = self.output.as_mut()
            && let Err(e) = out.add_chunk(&last)
        {
            end = End::Broke(output_error(out.bucket(), e));
        }
        reading.keep(last);
        Ok(Some(end))
    }

    /// Queues one round of chunks (the first inline, so the job is `Active` once a chunk is
    /// queued; later ones with a few rounds in flight). Counting queues nothing.
    async fn send_round(&mut self, batch: Vec<Chunk>) -> Result<()> {
        if self.phase == Phase::Count {
            return Ok(());
        }
        let deps = self.deps;
        let n: usize = batch.iter().map(|c| c.tasks.len()).sum();
        if let Some(last) = batch.last() {
            let rows = last.tasks.last().map_or(0, |t| t.row + 1);
            deps.store
                .record_sent(&self.job.job_id, last.chunk + 1, rows)
                .await?;
        }
        if !self.sending.activated {
            deps.queues.send_chunks(&batch, self.job.priority).await?;
            activate(deps, &self.job).await?;
            self.sending.activated = true;
            return Ok(());
        }
        while self.sending.in_flight.len() >= ROUNDS_IN_FLIGHT {
            let done = self
                .sending
                .in_flight
                .join_next()
                .await
                .expect("non-empty")??;
            self.sending.tasks -= done;
        }
        let queues = deps.queues.clone();
        let priority = self.job.priority;
        self.sending
            .in_flight
            .spawn(async move { queues.send_chunks(&batch, priority).await.map(|()| n) });
        self.sending.tasks += n;
        Ok(())
    }

    /// Phase 5, stopped at a chunk boundary: saves the checkpoint and goes on in a new
    /// invocation (`true`), unless the job was paused, cancelled or failed meanwhile, or
    /// another planner moved it on. The open chunk (from `at` on) was not sent; it gets
    /// number `next_chunk`.
    async fn continue_at(
        &self,
        (at, row): (Position, u64),
        next_chunk: u64,
        etag: String,
        stops: Stops,
    ) -> Result<bool> {
        let deps = self.deps;
        let job_id = self.job_id();
        let checkpoint = self.start.next_checkpoint(
            self.phase,
            (at, row),
            next_chunk,
            etag,
            deps.clock.now_iso(),
        );
        let planned_chunks = if self.phase == Phase::Plan {
            next_chunk
        } else {
            0
        };
        if !deps
            .store
            .save_checkpoint(job_id, self.start.seq, &checkpoint, row, planned_chunks)
            .await?
        {
            info!("another planner moved this job on; stopping");
            return Ok(false);
        }
        // The checkpoint covers them: planning never goes back before it.
        if self.defined {
            self.forget_definitions(next_chunk).await;
        }
        match stops.interrupted {
            Some(JobStatus::Cancelling | JobStatus::Failing) => {
                // Every queued chunk is sent: planning closes here.
                close_planning(deps, job_id, row, next_chunk, &checkpoint.etag).await?;
                return Ok(false);
            }
            Some(status) => {
                // Paused: resume sends the plan message that continues from the checkpoint.
                pause_settled(deps, job_id, status).await?;
                return Ok(false);
            }
            None => {}
        }
        let message = PlanMessage {
            job_id: job_id.into(),
        };
        if stops.backlogged {
            deps.queues
                .send_plan_after(&message, deps.config.planner_backoff)
                .await?;
        } else {
            deps.queues.send_plan(&message).await?;
        }
        info!(
            backlogged = stops.backlogged,
            rows = row,
            chunks = next_chunk,
            continuations = checkpoint.continuations,
            "time budget reached; planning continues in a new invocation"
        );
        Ok(true)
    }

    /// Phase 5, the manifest read to its end (or an ending job's plan closed): records the
    /// totals — a count suspends the job for confirmation — writes the generated manifest,
    /// and hands a job whose chunks are all counted to the finalizer. Returns `summary`, or
    /// an empty one when the job failed.
    async fn conclude(
        &self,
        (tasks, chunks): (u64, u64),
        etag: &str,
        summary: impl Fn(u64, u64) -> PlanSummary,
    ) -> Result<PlanSummary> {
        let deps = self.deps;
        let job_id = self.job_id();
        if tasks == 0 {
            let e = ManifestError::Empty;
            fail_job(deps, job_id, e.failure_code(), &e.to_string()).await?;
            return Ok(PlanSummary::default());
        }
        if self.phase == Phase::Count {
            deps.store.set_total(job_id, tasks, etag).await?;
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
                return close_planning(deps, job_id, 0, 0, etag).await;
            }
            info!(tasks, "counted; awaiting confirmation");
            return Ok(summary(tasks, 0));
        }
        if let (Some(out), Some(g)) = (&self.output, &self.job.request.manifest_generator) {
            let recorded = deps.store.output_files(job_id).await?;
            let created = crate::time::parse(&self.job.creation_time)
                .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
            let source =
                crate::job::spec::parse_bucket_arn(&g.s3().source_bucket).unwrap_or_default();
            let key = match out
                .finish(&deps.objects, &source, created, &recorded, chunks)
                .await
            {
                Ok(key) => key,
                Err(e) => {
                    let e = output_error(out.bucket(), e);
                    if e.is_transient() && !self.last_delivery {
                        return Err(e.into());
                    }
                    self.abort((tasks, chunks), etag, e).await?;
                    return Ok(summary(tasks, chunks));
                }
            };
            info!(bucket = out.bucket(), key, "generated manifest written");
        }
        let planned = deps
            .store
            .finish_planning(job_id, tasks, chunks, etag)
            .await?;
        if self.defined {
            self.forget_definitions(chunks).await;
        }
        info!(tasks, chunks, "planned");
        finalize_if_reconciled(deps, &planned).await?;
        Ok(summary(tasks, chunks))
    }

    /// The manifest could not be read (any more). With nothing queued the job fails at once;
    /// otherwise what was queued is recorded as planned and the job fails through `Failing`,
    /// so what ran is still counted and reported.
    async fn abort(&self, planned: (u64, u64), etag: &str, e: ManifestError) -> Result<()> {
        let deps = self.deps;
        let job_id = self.job_id();
        let (tasks, chunks) = planned_extent(planned, self.start.sent);
        if self.phase == Phase::Count || chunks == 0 {
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
        crate::parking::unpark(deps, job_id, self.job.priority).await?;
        maybe_finalize(deps, job_id).await
    }

    /// Deletes the definitions from this invocation's first chunk to `to`.
    async fn forget_definitions(&self, to: u64) {
        forget_definitions(self.deps, self.job_id(), self.start.first_chunk, to).await;
    }
}

/// What a failed job's plan holds: what this invocation queued (`planned`, as `(rows,
/// chunks)`), or what an earlier one may have queued beyond it (`sent`: it sent past its last
/// checkpoint, then died) — the workers will count those too.
fn planned_extent(planned: (u64, u64), (sent_chunks, sent_rows): (u64, u64)) -> (u64, u64) {
    if sent_chunks > planned.1 {
        (sent_rows, sent_chunks)
    } else {
        planned
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::spec::CreateJobRequest;

    fn config() -> Config {
        Config::from_lookup(|k| {
            let v = match k {
                "BATCHOPS_TABLE" => "t",
                "BATCHOPS_BUCKET" => "b",
                "BATCHOPS_PLAN_QUEUE_URL" => "p",
                "BATCHOPS_WORK_QUEUE_URL" => "w",
                "BATCHOPS_FINALIZE_QUEUE_URL" => "f",
                "BATCHOPS_CHUNK_SIZE" => "100",
                _ => return None,
            };
            Some(v.to_string())
        })
        .unwrap()
    }

    fn job(status: JobStatus, confirm: bool) -> Job {
        let request: CreateJobRequest = serde_json::from_value(serde_json::json!({
            "Operation": {"S3DeleteObjectTagging": {}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::src/m.csv", "ETag": "e"}},
            "Report": {"Enabled": false},
            "ConfirmationRequired": confirm,
        }))
        .unwrap();
        let mut job = Job::new("job-1".into(), request, "2026-01-02T03:04:05.000Z".into());
        job.status = status;
        job
    }

    fn checkpoint(phase: Phase, row: u64, next_chunk: u64) -> Checkpoint {
        Checkpoint {
            phase,
            at: Position::Csv { offset: 4096 },
            row,
            next_chunk,
            etag: "pinned".into(),
            chunk_size: 7,
            continuations: 2,
            scan_span: Some(50),
            saved_at: None,
        }
    }

    fn plan(saved: Option<Checkpoint>, sent: (u64, u64), pinned: Option<&str>) -> PlanState {
        PlanState {
            saved: saved.map(|cp| (3, cp)),
            sent_through: sent.0,
            sent_rows: sent.1,
            pinned_etag: pinned.map(str::to_string),
        }
    }

    #[test]
    fn a_plan_message_starts_a_new_job_resumes_an_unplanned_one_and_leaves_a_planned_one() {
        use JobStatus::*;
        assert_eq!(Entry::of(&job(New, false)), Entry::Start);
        for s in [Preparing, Ready, Active, Cancelling, Failing] {
            assert_eq!(Entry::of(&job(s, false)), Entry::Resume, "{s}");
        }
        for s in [Pausing, Paused] {
            assert_eq!(Entry::of(&job(s, false)), Entry::Paused(s), "{s}");
        }
        for s in [Suspended, Completing, Complete, Failed, Cancelled] {
            assert_eq!(Entry::of(&job(s, false)), Entry::Nothing, "{s}");
        }
        let mut planned = job(Active, false);
        planned.planned = true;
        assert_eq!(Entry::of(&planned), Entry::Nothing);
        planned.status = Pausing;
        assert_eq!(Entry::of(&planned), Entry::Nothing, "workers settle it");
    }

    #[test]
    fn a_job_that_must_be_confirmed_is_counted_until_it_is_confirmed() {
        use JobStatus::*;
        assert_eq!(Phase::of(&job(New, true)), Phase::Count);
        assert_eq!(Phase::of(&job(Preparing, true)), Phase::Count);
        assert_eq!(Phase::of(&job(Ready, true)), Phase::Plan);
        assert_eq!(Phase::of(&job(New, false)), Phase::Plan);
        assert_eq!(Phase::of(&job(Preparing, false)), Phase::Plan);
    }

    #[test]
    fn reading_resumes_at_the_checkpoint_of_its_phase_with_the_chunk_size_it_started_with() {
        let j = job(JobStatus::Preparing, false);
        let s = Start::new(
            &j,
            Phase::Plan,
            plan(
                Some(checkpoint(Phase::Plan, 70, 10)),
                (12, 84),
                Some("pinned"),
            ),
            &config(),
        );
        assert_eq!(
            (s.chunk, s.row, s.first_chunk, s.seq),
            (10, 70, 10, Some(3))
        );
        assert_eq!((s.chunk_size, s.scan_span), (7, 50));
        assert_eq!(
            s.resume,
            Some(Resume {
                at: Position::Csv { offset: 4096 },
                row: 70,
                etag: "pinned".into()
            })
        );
        assert_eq!(s.sent, (12, 84));
    }

    #[test]
    fn a_counts_checkpoint_does_not_carry_into_planning_but_its_pin_does() {
        let mut j = job(JobStatus::Ready, true);
        j.manifest_etag = Some("counted".into());
        let s = Start::new(
            &j,
            Phase::Plan,
            plan(Some(checkpoint(Phase::Count, 70, 0)), (0, 0), None),
            &config(),
        );
        assert_eq!(s.checkpoint, None);
        assert_eq!((s.chunk, s.row, s.chunk_size), (0, 0, 100));
        assert_eq!(
            s.seq,
            Some(3),
            "the save is still conditional on the count's checkpoint"
        );
        assert_eq!(
            s.resume,
            Some(Resume {
                at: Position::Csv { offset: 0 },
                row: 0,
                etag: "counted".into()
            })
        );
    }

    #[test]
    fn a_manifest_read_before_is_read_from_the_top_only_with_its_pinned_etag() {
        let j = job(JobStatus::Preparing, false);
        let pinned = Start::new(
            &j,
            Phase::Plan,
            plan(None, (3, 21), Some("first")),
            &config(),
        );
        assert_eq!(
            pinned.resume.map(|r| (r.row, r.etag)),
            Some((0, "first".to_string()))
        );
        let never = Start::new(&j, Phase::Plan, plan(None, (0, 0), None), &config());
        assert_eq!(never.resume, None, "the first read pins it");
    }

    #[test]
    fn a_replayed_definition_moves_the_start_past_it_and_the_last_one_ends_the_listing() {
        let j = job(JobStatus::Preparing, false);
        let mut s = Start::new(
            &j,
            Phase::Plan,
            plan(Some(checkpoint(Phase::Plan, 70, 10)), (0, 0), None),
            &config(),
        );
        let chunk = |n| Chunk {
            job_id: "job-1".into(),
            chunk: n,
            tasks: vec![],
        };
        let next = Position::Csv { offset: 9000 };
        s.replayed(&ChunkDefinition {
            chunk: chunk(10),
            next: Some(next.clone()),
            next_row: 77,
        });
        assert_eq!(
            (s.chunk, s.row, s.listing_done, s.first_chunk),
            (11, 77, false, 10)
        );
        assert_eq!(
            s.resume.as_ref().map(|r| (&r.at, r.row, r.etag.as_str())),
            Some((&next, 77, "pinned"))
        );
        s.replayed(&ChunkDefinition {
            chunk: chunk(11),
            next: None,
            next_row: 80,
        });
        assert_eq!((s.chunk, s.row, s.listing_done), (12, 80, true));
    }

    #[test]
    fn an_ending_jobs_plan_closes_now_or_at_the_chunk_sent_through() {
        let j = job(JobStatus::Preparing, false);
        let at = |sent| {
            Start::new(
                &j,
                Phase::Plan,
                plan(Some(checkpoint(Phase::Plan, 70, 10)), (sent, 0), None),
                &config(),
            )
        };
        assert_eq!(at(14).close(JobStatus::Active), Close::No);
        assert_eq!(at(14).close(JobStatus::Cancelling), Close::At(14));
        assert_eq!(at(10).close(JobStatus::Failing), Close::Now);
        assert_eq!(at(4).close(JobStatus::Cancelling), Close::Now);
    }

    #[test]
    fn a_continuation_keeps_the_chunk_size_and_span_and_counts_itself() {
        let j = job(JobStatus::Active, false);
        let s = Start::new(
            &j,
            Phase::Plan,
            plan(Some(checkpoint(Phase::Plan, 70, 10)), (0, 0), None),
            &config(),
        );
        let next = s.next_checkpoint(
            Phase::Plan,
            (Position::Csv { offset: 1 }, 140),
            20,
            "pinned".into(),
            "2030-01-01T00:00:00.000Z".into(),
        );
        assert_eq!(
            (
                next.row,
                next.next_chunk,
                next.chunk_size,
                next.scan_span,
                next.continuations
            ),
            (140, 20, 7, Some(50), 3)
        );
        assert_eq!(next.saved_at.as_deref(), Some("2030-01-01T00:00:00.000Z"));
        let first = Start::new(&j, Phase::Plan, plan(None, (0, 0), None), &config());
        let cp = first.next_checkpoint(
            Phase::Plan,
            (Position::Csv { offset: 1 }, 100),
            1,
            "e".into(),
            String::new(),
        );
        assert_eq!((cp.continuations, cp.chunk_size), (1, 100));
    }

    #[test]
    fn a_failed_plan_keeps_what_an_earlier_invocation_sent_beyond_this_ones_chunks() {
        assert_eq!(planned_extent((70, 10), (14, 98)), (98, 14));
        assert_eq!(planned_extent((70, 10), (10, 70)), (70, 10));
        assert_eq!(planned_extent((70, 10), (0, 0)), (70, 10));
    }
}
