//! The job store: one DynamoDB table, single-table design.
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | job (the counted item) | `JOB#<id>` | `JOB` | status, counters, plan totals (and `plan_continuations`), stamps, `operation` and `description` (for ListJobs); `gsi1pk = JOBS`, `gsi1sk = <created>#<id>`; `open = OPEN` while not terminal (and, with job events, until its events are published); `outbox`, `events_sent`, `last_event_status` (job events); `expires_at` (TTL) 90 days after it ends |
//! | job request | `JOB#<id>` | `JOB#REQUEST` | `request` (the CreateJob JSON, up to 64 KiB), `tags`, `report_summary` (JSON, written by the finalizer before the job ends): read with the job, never written by a count |
//! | chunk record | `JOB#<id>` | `CHUNK#<n, 12 digits>` | the chunk's counts and its result file |
//! | chunk claim | `JOB#<id>` | `CLAIM#<n, 12 digits>` | `owner`, `lease_until` (epoch ms): the one delivery that may run the chunk's tasks; `expires_at` (TTL) |
//! | partial chunk | `JOB#<id>` | `PART#<n, 12 digits>` | `done` (the tasks that ran, by index), their `succeeded`/`failed` and `result_key` (their rows): what a delivery cut short by its deadline kept |
//! | planner checkpoint | `JOB#<id>` | `PLAN` | `seq`, `checkpoint` (JSON): where planning resumes; `sent_through`, `sent_rows`: chunks before it (and their rows) may be queued |
//! | report progress | `JOB#<id>` | `REPORT` | `seq`, `progress` (JSON): the report files written so far, for a finalizer that continues |
//! | generated manifest file | `JOB#<id>` | `OUTFILE#<first chunk, 12 digits>` | `last_chunk`, `key`, `size`, `md5` |
//!
//! Every item but the job and its request serves the run only: once the job has ended, the
//! finalizer deletes them and the result files they point to ([`JobStore::working_records_page`]).
//!
//! Exactly-once accounting rests on one transaction per chunk: a conditional put of the chunk
//! record (`attribute_not_exists`) together with `ADD` to the job's counters. A redelivered
//! chunk fails the condition, so nothing is counted twice; a worker that dies before the
//! transaction counted nothing, so the redelivery counts it once.

use crate::checkpoint::Checkpoint;
use crate::job::{
    Actor, Audited, CreateJobRequest, FailureReason, Job, JobStatus, JobSummary, StatusEvent,
};
use crate::manifest::generator::OutputFile;
use crate::{Error, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput, builders::TransactWriteItemsFluentBuilder,
};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Where a page stopped (DynamoDB's `LastEvaluatedKey`, kept opaque): of job summaries — the
/// ListJobs `NextToken` is its [`PageKey::to_token`] — or of a job's records; no DynamoDB
/// type leaves the adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct PageKey(Item);

impl PageKey {
    /// The key as a URL-safe token (base64 of its string attributes).
    pub fn to_token(&self) -> String {
        use base64::Engine;
        let strings: HashMap<&str, &str> = self
            .0
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
            .collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&strings).unwrap_or_default())
    }

    /// The key a token from [`PageKey::to_token`] stands for; `None` for anything else (a
    /// key of neither the ListJobs index nor the open-jobs index).
    pub fn from_token(token: &str) -> Option<PageKey> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let strings: HashMap<String, String> = serde_json::from_slice(&bytes).ok()?;
        let fits = |expected: [&str; 4]| {
            strings.len() == expected.len() && expected.iter().all(|k| strings.contains_key(*k))
        };
        if !fits(["pk", "sk", "gsi1pk", "gsi1sk"]) && !fits(["pk", "sk", "open", "gsi1sk"]) {
            return None;
        }
        Some(PageKey(
            strings
                .into_iter()
                .map(|(k, v)| (k, AttributeValue::S(v)))
                .collect(),
        ))
    }
}

/// The ListJobs index: every job, newest first (`gsi1pk = JOBS`, `gsi1sk`), projecting only
/// what a `JobListDescriptor` shows ([`SUMMARY_ATTRIBUTES`]).
pub const JOBS_INDEX: &str = "jobs";
/// The open-jobs index: sparse (`open`, `gsi1sk`), holding the jobs not yet terminal (and
/// ended ones whose events are not all published), with the same projection: what the sweep and a ListJobs of open statuses read.
pub const OPEN_INDEX: &str = "open";
/// The job item's attributes both indexes project (besides their keys).
pub const SUMMARY_ATTRIBUTES: [&str; 10] = [
    "job_id",
    "status",
    "priority",
    "creation_time",
    "termination_date",
    "total_tasks",
    "succeeded",
    "failed",
    "operation",
    "description",
];
/// The sort key of a job's request item; it sorts right after `JOB`, so one query by prefix
/// reads both.
const REQUEST_SK: &str = "JOB#REQUEST";

#[derive(Clone, Debug)]
pub struct JobStore {
    client: Client,
    table: String,
    /// Job events: with a bus, every status write records its change in the job's outbox and
    /// publishes it ([`super::events`]).
    events: Option<std::sync::Arc<EventSink>>,
    /// Publishes the bus refused so far (their events stay in the outboxes), shared by every
    /// clone of this store: the sweep reports it ([`crate::finalizer::SweepSummary`]).
    unpublished: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Where the store's stamps, leases and expiries take "now" from.
    clock: crate::time::Clock,
    /// Where its retry delays are drawn from.
    ids: crate::ids::Ids,
}

/// Where job events go, and what an event names besides the job.
#[derive(Clone, Debug)]
pub struct EventSink {
    pub events: super::events::Events,
    /// For the job ARN.
    pub region: String,
    /// For the job ARN of a job whose request named no account.
    pub account: Option<String>,
    /// The stack bucket: where a report without a bucket is written.
    pub bucket: String,
}

/// What one chunk contributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub succeeded: u64,
    pub failed: u64,
    pub not_run: u64,
}

/// An item of a job that served its run only (see [`JobStore::working_records_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkingRecord {
    sk: String,
    /// The stack-bucket file it points to (a chunk's or a partial chunk's result rows).
    pub file: Option<String>,
}

/// A repair the sweep makes at most once per interval ([`JobStore::claim_repair`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    Plan,
    Finalize,
}

/// What the job's `PLAN` item holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanState {
    /// The last checkpoint and its sequence number, if planning has stopped part-way before.
    pub saved: Option<(u64, Checkpoint)>,
    /// Every chunk below this number may be queued ([`JobStore::record_sent`]).
    pub sent_through: u64,
    /// The rows those chunks hold.
    pub sent_rows: u64,
    /// The manifest's ETag as its first read saw it ([`JobStore::pin_manifest`]).
    pub pinned_etag: Option<String>,
}

/// A counted chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    pub chunk: u64,
    pub counts: ChunkCounts,
    /// Key in the stack bucket of the chunk's result rows (absent when nothing ran).
    pub result_key: Option<String>,
}

fn job_pk(id: &str) -> AttributeValue {
    AttributeValue::S(format!("JOB#{id}"))
}

fn chunk_sk(chunk: u64) -> String {
    format!("CHUNK#{chunk:012}")
}

fn part_sk(chunk: u64) -> String {
    format!("PART#{chunk:012}")
}

/// What deliveries of a chunk cut short by their deadline ran and kept: the next delivery runs
/// only the other tasks, and the count, when it comes, covers both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partial {
    /// Indices (in the chunk's `tasks`) of the tasks that ran.
    pub done: std::collections::BTreeSet<usize>,
    /// Of those, how many succeeded and failed.
    pub succeeded: u64,
    pub failed: u64,
    /// Key in the stack bucket of their result rows.
    pub result_key: String,
}

/// `0-3,5,9-10`: a set of task indices as ranges.
fn index_ranges(set: &std::collections::BTreeSet<usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(first) = it.next() {
        let mut last = first;
        while it.peek() == Some(&(last + 1)) {
            last += 1;
            it.next();
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    out.join(",")
}

fn parse_index_ranges(text: &str) -> Option<std::collections::BTreeSet<usize>> {
    let mut set = std::collections::BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        if b < a || b - a > 1_000_000 {
            return None;
        }
        set.extend(a..=b);
    }
    Some(set)
}

fn claim_sk(chunk: u64) -> String {
    format!("CLAIM#{chunk:012}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether an SDK error is DynamoDB's "the condition did not hold".
fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    err: &aws_sdk_dynamodb::error::SdkError<E, crate::error::HttpResponse>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

type TransactionError =
    aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, crate::error::HttpResponse>;

/// The reason codes of a cancelled transaction, one per item (empty for any other error).
fn cancellation_codes(err: &TransactionError) -> Vec<&str> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a cancelled transaction failed on its first item's condition.
fn first_condition_failed(err: &TransactionError) -> bool {
    cancellation_codes(err).first() == Some(&"ConditionalCheckFailed")
}

/// Whether a cancelled transaction failed on any item's condition.
fn any_condition_failed(err: &TransactionError) -> bool {
    cancellation_codes(err).contains(&"ConditionalCheckFailed")
}

/// Retries a write that DynamoDB refused with `TransactionConflictException` (the item is in
/// a transaction still running: the write did not happen), which the SDK's standard
/// classifiers leave alone. Installed on the DynamoDB client, so every status change,
/// checkpoint mark and settle is tried again, with the standard backoff and attempt limit,
/// instead of failing its caller (a 500 from the API, a plan or chunk left to SQS's
/// visibility timeout).
#[derive(Debug)]
pub struct ConflictRetry;

impl aws_sdk_dynamodb::config::retry::ClassifyRetry for ConflictRetry {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_dynamodb::config::interceptors::InterceptorContext,
    ) -> aws_sdk_dynamodb::config::retry::RetryAction {
        use aws_sdk_dynamodb::config::retry::RetryAction;
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        use aws_sdk_dynamodb::operation::{
            delete_item::DeleteItemError, get_item::GetItemError, put_item::PutItemError,
            update_item::UpdateItemError,
        };
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = error
            .downcast_ref::<UpdateItemError>()
            .and_then(|e| e.code())
            .or_else(|| error.downcast_ref::<PutItemError>().and_then(|e| e.code()))
            .or_else(|| {
                error
                    .downcast_ref::<DeleteItemError>()
                    .and_then(|e| e.code())
            })
            .or_else(|| error.downcast_ref::<GetItemError>().and_then(|e| e.code()));
        if code == Some("TransactionConflictException") {
            RetryAction::transient_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "batchops TransactionConflictException"
    }
}

/// Tries of a transaction that DynamoDB cancels for contention or throttling.
const TRANSACTION_TRIES: u32 = 6;

/// Whether DynamoDB cancelled a transaction for a reason that trying again fixes: another
/// transaction on one of its items (`TransactionConflict`) or throttling (`ThrottlingError`),
/// with no condition failed. The SDK does not retry these (`TransactionCanceledException` is
/// not a retryable code).
fn cancelled_for_contention(err: &TransactionError) -> bool {
    let codes = cancellation_codes(err);
    !codes.contains(&"ConditionalCheckFailed")
        && codes
            .iter()
            .any(|c| matches!(*c, "TransactionConflict" | "ThrottlingError"))
}

/// Sends a transaction, trying it again (bounded, full-jitter backoff from 20 ms) while
/// DynamoDB cancels it for contention or throttling, so that a contended commit is not left to
/// the queue's visibility timeout (which would run a chunk's tasks again).
async fn send_transaction(
    ids: &crate::ids::Ids,
    tx: TransactWriteItemsFluentBuilder,
) -> std::result::Result<TransactWriteItemsOutput, TransactionError> {
    let mut attempt = 0;
    loop {
        let result = tx.clone().send().await;
        match &result {
            Err(e) if cancelled_for_contention(e) && attempt + 1 < TRANSACTION_TRIES => {
                let wait = (ids.fraction() * ((20u64 << attempt) + 1) as f64) as u64;
                tracing::info!(
                    attempt,
                    wait_ms = wait,
                    "transaction cancelled for contention; trying again"
                );
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                attempt += 1;
            }
            _ => return result,
        }
    }
}

/// An outbox entry as stored: its JSON.
fn event_value(event: &StatusEvent) -> Result<AttributeValue> {
    Ok(s(serde_json::to_string(event).map_err(Error::Message)?))
}

impl Job {
    /// The job's two items: the counted one (status, counters, what ListJobs shows) and the
    /// request item (the CreateJob request and the tags), so that counting a chunk or
    /// changing a status writes a small item whatever the request's size.
    fn to_items(&self, expires_at: u64) -> Result<(Item, Item)> {
        let request = serde_json::to_string(&self.request).map_err(Error::Message)?;
        let mut request_item = Item::from([
            ("pk".into(), job_pk(&self.job_id)),
            ("sk".into(), s(REQUEST_SK)),
            ("request".into(), s(request)),
            (
                "tags".into(),
                s(serde_json::to_string(&self.tags).map_err(Error::Message)?),
            ),
        ]);
        let mut item = Item::from([
            ("pk".into(), job_pk(&self.job_id)),
            ("sk".into(), s("JOB")),
            ("job_id".into(), s(&self.job_id)),
            ("status".into(), s(self.status.as_str())),
            (
                "priority".into(),
                AttributeValue::N(self.priority.to_string()),
            ),
            ("creation_time".into(), s(&self.creation_time)),
            ("total_tasks".into(), n(self.total_tasks)),
            ("succeeded".into(), n(self.succeeded)),
            ("failed".into(), n(self.failed)),
            ("not_run".into(), n(self.not_run)),
            ("chunks_total".into(), n(self.chunks_total)),
            ("chunks_done".into(), n(self.chunks_done)),
            ("planned".into(), AttributeValue::Bool(self.planned)),
            ("gsi1pk".into(), s("JOBS")),
            (
                "gsi1sk".into(),
                s(format!("{}#{}", self.creation_time, self.job_id)),
            ),
        ]);
        if let Some(op) = &self.request.operation {
            item.insert("operation".into(), s(op.name()));
        }
        if let Some(d) = &self.request.description {
            item.insert("description".into(), s(d));
        }
        if !self.status.is_terminal() {
            item.insert("open".into(), s("OPEN"));
        }
        for (name, value) in [
            ("termination_date", &self.termination_date),
            ("status_update_reason", &self.status_update_reason),
            ("manifest_etag", &self.manifest_etag),
            ("report_date", &self.report_date),
            ("active_since", &self.active_since),
            ("status_time", &Some(self.status_time.clone())),
            ("progress_time", &self.progress_time),
        ] {
            if let Some(v) = value {
                item.insert(name.into(), s(v));
            }
        }
        if !self.failure_reasons.is_empty() {
            item.insert(
                "failure_reasons".into(),
                s(serde_json::to_string(&self.failure_reasons).map_err(Error::Message)?),
            );
        }
        if self.status.is_terminal() {
            // Created ended (a refused intake object): it expires like any ended job.
            item.insert("expires_at".into(), n(expires_at));
            request_item.insert("expires_at".into(), n(expires_at));
        }
        for (action, entry) in &self.audit {
            item.insert(
                audit_attribute(*action),
                s(serde_json::to_string(entry).map_err(Error::Message)?),
            );
        }
        Ok((item, request_item))
    }

    /// A job from its counted item and its request item (a job stored before the two were
    /// split carries its request, and tags, in the counted item).
    fn from_items(item: &Item, request_item: Option<&Item>) -> Result<Job> {
        let job_id =
            get_s(item, "job_id").ok_or_else(|| Error::Record("job without job_id".into()))?;
        let status = get_s(item, "status")
            .and_then(|st| JobStatus::parse(&st))
            .ok_or_else(|| Error::Record(format!("job {job_id}: bad status")))?;
        let holder = request_item.unwrap_or(item);
        let request: CreateJobRequest =
            serde_json::from_str(&get_s(holder, "request").unwrap_or_default())
                .map_err(|e| Error::Record(format!("job {job_id}: bad request: {e}")))?;
        let failure_reasons: Vec<FailureReason> = match get_s(item, "failure_reasons") {
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| Error::Record(format!("job {job_id}: bad failure_reasons: {e}")))?,
            None => Vec::new(),
        };
        let tags = match get_s(holder, "tags") {
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| Error::Record(format!("job {job_id}: bad tags: {e}")))?,
            None => request.tags.clone(),
        };
        let priority = item
            .get("priority")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(request.priority);
        Ok(Job {
            status,
            priority,
            tags,
            request,
            creation_time: get_s(item, "creation_time").unwrap_or_default(),
            termination_date: get_s(item, "termination_date"),
            failure_reasons,
            status_update_reason: get_s(item, "status_update_reason"),
            total_tasks: get_n(item, "total_tasks"),
            succeeded: get_n(item, "succeeded"),
            failed: get_n(item, "failed"),
            not_run: get_n(item, "not_run"),
            chunks_total: get_n(item, "chunks_total"),
            chunks_done: get_n(item, "chunks_done"),
            plan_continuations: get_n(item, "plan_continuations"),
            planned: item
                .get("planned")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            manifest_etag: get_s(item, "manifest_etag"),
            report_date: get_s(item, "report_date"),
            active_since: get_s(item, "active_since"),
            status_time: get_s(item, "status_time").unwrap_or_default(),
            progress_time: get_s(item, "progress_time"),
            audit: Audited::ALL
                .into_iter()
                .filter_map(|a| {
                    let entry = get_s(item, &audit_attribute(a))?;
                    Some((a, serde_json::from_str(&entry).ok()?))
                })
                .collect(),
            report_summary: request_item
                .and_then(|i| get_s(i, "report_summary"))
                .and_then(|j| serde_json::from_str(&j).ok()),
            pending_events: item
                .get("outbox")
                .and_then(|v| v.as_l().ok())
                .map_or(0, Vec::len),
            job_id,
        })
    }
}

impl JobSummary {
    /// A summary from an index item (or a job item).
    fn from_item(item: &Item) -> Result<JobSummary> {
        let job_id =
            get_s(item, "job_id").ok_or_else(|| Error::Record("job without job_id".into()))?;
        let status = get_s(item, "status")
            .and_then(|st| JobStatus::parse(&st))
            .ok_or_else(|| Error::Record(format!("job {job_id}: bad status")))?;
        Ok(JobSummary {
            status,
            priority: item
                .get("priority")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            creation_time: get_s(item, "creation_time").unwrap_or_default(),
            termination_date: get_s(item, "termination_date"),
            total_tasks: get_n(item, "total_tasks"),
            succeeded: get_n(item, "succeeded"),
            failed: get_n(item, "failed"),
            operation: get_s(item, "operation"),
            description: get_s(item, "description"),
            job_id,
        })
    }
}

/// How long an ended job stays describable, as in Amazon S3 Batch Operations (90 days).
pub const ENDED_JOB_RETENTION_SECS: u64 = 90 * 24 * 3600;

/// The job item's attribute for one audited action (`audit_created`, …).
fn audit_attribute(action: Audited) -> String {
    format!("audit_{}", action.as_str().to_ascii_lowercase())
}

/// What a status change records besides the status. The stamps that follow from the move
/// itself are derived by [`JobStore::transition`]: `status_time` always; the first move to
/// `Active` stamps `ActiveSince`; a move to a terminal status stamps `TerminationDate`; a move
/// to `Completing` fixes `ReportCreationDate` (once: the first clock wins).
#[derive(Clone, Debug, Default)]
pub struct StatusChange {
    /// The caller's `StatusUpdateReason`.
    pub reason: Option<String>,
    /// The job's `FailureReasons` after the change (failing and failed jobs); `None` keeps
    /// what is stored.
    pub failures: Option<Vec<FailureReason>>,
    /// Who asked for the change, recorded in the job's `Audit` (stamped when it is written).
    pub audit: Option<(Audited, Actor)>,
}

impl StatusChange {
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a `FailureReasons` entry.
    pub fn failure(mut self, code: &str, reason: impl Into<String>) -> Self {
        self.failures.get_or_insert_default().push(FailureReason {
            failure_code: code.into(),
            failure_reason: reason.into(),
        });
        self
    }

    /// Records `actor` as the one who did `action`.
    pub fn by(mut self, action: Audited, actor: &Actor) -> Self {
        self.audit = Some((action, actor.clone()));
        self
    }

    /// Keeps the reasons the job already has ahead of those added.
    pub fn failures_before(mut self, existing: &[FailureReason]) -> Self {
        let added = self.failures.take().unwrap_or_default();
        self.failures = Some(existing.iter().cloned().chain(added).collect());
        self
    }
}

impl JobStore {
    pub fn new(client: Client, table: String) -> Self {
        Self {
            client,
            table,
            events: None,
            unpublished: Default::default(),
            clock: crate::time::Clock::system(),
            ids: crate::ids::Ids::random(),
        }
    }

    /// The same store, telling time by `clock` and drawing retry delays from `ids`.
    pub fn with_time(mut self, clock: crate::time::Clock, ids: crate::ids::Ids) -> Self {
        self.clock = clock;
        self.ids = ids;
        self
    }

    /// The job item's `expires_at` (the table's TTL attribute, epoch seconds) for a job
    /// ending now.
    fn expires_at_from_now(&self) -> u64 {
        self.clock.unix_secs().max(0) as u64 + ENDED_JOB_RETENTION_SECS
    }

    /// How many times the bus refused (or did not answer) a publish, since this store was
    /// made: each time a job's events stayed in its outbox for a later write or the sweep.
    pub fn events_unpublished(&self) -> u64 {
        self.unpublished.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The same store, recording and publishing job events to `sink`.
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.events = Some(std::sync::Arc::new(sink));
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Stores a new job (its two items, in one transaction); fails if the id exists.
    pub async fn create(&self, job: &Job) -> Result<()> {
        let (put_job, put_request) = self.job_puts(job)?;
        send_transaction(
            &self.ids,
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put_job).build())
                .transact_items(TransactWriteItem::builder().put(put_request).build()),
        )
        .await
        .map_err(|e| Error::dynamo("TransactWriteItems", e))?;
        self.publish_events(&job.job_id).await;
        Ok(())
    }

    /// The conditional puts of a new job's two items (with events, the job's first one in
    /// its outbox; a job created ended stays in the open-jobs index until it is published).
    fn job_puts(&self, job: &Job) -> Result<(Put, Put)> {
        let (mut item, request_item) = job.to_items(self.expires_at_from_now())?;
        if self.events.is_some() {
            let event = StatusEvent {
                status: job.status,
                at: job.status_time.clone(),
                reason: job.status_update_reason.clone(),
            };
            item.insert(
                "outbox".into(),
                AttributeValue::L(vec![event_value(&event)?]),
            );
            item.insert("open".into(), s("OPEN"));
        }
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| Error::Record(e.to_string()))
        };
        Ok((put(item)?, put(request_item)?))
    }

    /// Stores a new job together with its `ClientRequestToken` record, atomically. When the
    /// token is already taken, returns the job id and request digest stored with it instead.
    pub async fn create_with_token(
        &self,
        job: &Job,
        token: &str,
        digest: &str,
    ) -> Result<Option<(String, String)>> {
        let token_item = Item::from([
            ("pk".into(), s(format!("TOKEN#{token}"))),
            ("sk".into(), s("TOKEN")),
            ("job_id".into(), s(&job.job_id)),
            ("digest".into(), s(digest)),
        ]);
        let put_token = Put::builder()
            .table_name(&self.table)
            .set_item(Some(token_item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::Record(e.to_string()))?;
        let (put_job, put_request) = self.job_puts(job)?;
        let result = send_transaction(
            &self.ids,
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put_token).build())
                .transact_items(TransactWriteItem::builder().put(put_job).build())
                .transact_items(TransactWriteItem::builder().put(put_request).build()),
        )
        .await;
        match result {
            Ok(_) => {
                self.publish_events(&job.job_id).await;
                Ok(None)
            }
            Err(e) if first_condition_failed(&e) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(format!("TOKEN#{token}")))
                    .key("sk", s("TOKEN"))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| Error::dynamo("GetItem", e))?;
                let item = out
                    .item()
                    .ok_or_else(|| Error::Record(format!("token {token} vanished")))?;
                Ok(Some((
                    get_s(item, "job_id").unwrap_or_default(),
                    get_s(item, "digest").unwrap_or_default(),
                )))
            }
            Err(e) => Err(Error::dynamo("TransactWriteItems", e)),
        }
    }

    /// Sets a job's priority; `false` if there is no such job.
    pub async fn set_priority(&self, job_id: &str, priority: i64) -> Result<bool> {
        self.set_attribute(job_id, "priority", AttributeValue::N(priority.to_string()))
            .await
    }

    /// Replaces a job's tags; `false` if there is no such job.
    pub async fn set_tags(&self, job_id: &str, tags: &[crate::job::spec::Tag]) -> Result<bool> {
        let json = serde_json::to_string(tags).map_err(Error::Message)?;
        // On the request item (a job stored before the split keeps them on its job item).
        if self
            .set_item_attribute(job_id, REQUEST_SK, "tags", s(json.clone()))
            .await?
        {
            return Ok(true);
        }
        self.set_attribute(job_id, "tags", s(json)).await
    }

    /// Records what a job's report holds, on its request item (read with the job, and kept
    /// when its working records are cleaned up).
    pub async fn set_report_summary(
        &self,
        job_id: &str,
        summary: &crate::report::ReportSummary,
    ) -> Result<bool> {
        let json = serde_json::to_string(summary).map_err(Error::Message)?;
        self.set_item_attribute(job_id, REQUEST_SK, "report_summary", s(json))
            .await
    }

    /// Records the manifest's row count (a job awaiting confirmation shows its total).
    pub async fn set_total(&self, job_id: &str, total_tasks: u64, etag: &str) -> Result<bool> {
        self.set_attribute(job_id, "total_tasks", n(total_tasks))
            .await?;
        self.set_attribute(job_id, "manifest_etag", s(etag)).await
    }

    async fn set_attribute(&self, job_id: &str, name: &str, value: AttributeValue) -> Result<bool> {
        self.set_item_attribute(job_id, "JOB", name, value).await
    }

    /// Sets one attribute of the job's item `sk`; `false` if that item does not exist.
    async fn set_item_attribute(
        &self,
        job_id: &str,
        sk: &str,
        name: &str,
        value: AttributeValue,
    ) -> Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s(sk))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#a", name)
            .expression_attribute_values(":v", value)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(Error::dynamo("UpdateItem", e)),
        }
    }

    /// Reads a job (its two items, one strongly consistent query).
    pub async fn get(&self, job_id: &str) -> Result<Option<Job>> {
        let out = self.query_job_items(job_id, "JOB", None).await?;
        let items = out.items();
        let Some(item) = items
            .iter()
            .find(|i| get_s(i, "sk").as_deref() == Some("JOB"))
        else {
            return Ok(None);
        };
        let request = items
            .iter()
            .find(|i| get_s(i, "sk").as_deref() == Some(REQUEST_SK));
        Job::from_items(item, request).map(Some)
    }

    /// Gives an ended job's request item the job's expiry (a job stored before the split has
    /// none: nothing to do).
    async fn expire_request(&self, job_id: &str) -> Result<()> {
        self.set_item_attribute(
            job_id,
            REQUEST_SK,
            "expires_at",
            n(self.expires_at_from_now()),
        )
        .await
        .map(drop)
    }

    /// A job from its counted item as an update returned it, with its request item read.
    async fn with_request(&self, job_id: &str, item: &Item) -> Result<Job> {
        let request = self.read_item(job_id, REQUEST_SK).await?;
        Job::from_items(item, request.as_ref())
    }

    pub async fn require(&self, job_id: &str) -> Result<Job> {
        self.get(job_id)
            .await?
            .ok_or_else(|| Error::JobNotFound(job_id.into()))
    }

    /// A job's status alone (a strongly consistent read of one attribute, not of the whole
    /// request): what the planner and workers poll while they run.
    pub async fn status(&self, job_id: &str) -> Result<JobStatus> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .consistent_read(true)
            .projection_expression("#status")
            .expression_attribute_names("#status", "status")
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem", e))?;
        let item = out
            .item()
            .ok_or_else(|| Error::JobNotFound(job_id.into()))?;
        get_s(item, "status")
            .and_then(|st| JobStatus::parse(&st))
            .ok_or_else(|| Error::Record(format!("job {job_id}: bad status")))
    }

    /// Moves a job from one of `from` to `to`, atomically, with `change` and the stamps the
    /// move implies (see [`StatusChange`]). The caller must have checked the transition with
    /// [`JobStatus::can_become`]. When the job is no longer in any of `from`, returns
    /// [`Error::StatusConflict`] with its actual status.
    pub async fn transition(
        &self,
        job_id: &str,
        from: &[JobStatus],
        to: JobStatus,
        change: StatusChange,
    ) -> Result<Job> {
        debug_assert!(from.iter().all(|f| f.can_become(to)), "{from:?} -> {to}");
        let now = self.clock.now_iso();
        let mut values: Item = HashMap::new();
        let mut names: HashMap<String, String> =
            HashMap::from([("#status".into(), "status".into())]);
        let placeholders: Vec<String> = from
            .iter()
            .enumerate()
            .map(|(i, st)| {
                values.insert(format!(":from{i}"), s(st.as_str()));
                format!(":from{i}")
            })
            .collect();
        values.insert(":to".into(), s(to.as_str()));
        values.insert(":now".into(), s(&now));
        let mut sets = vec![
            "#status = :to".to_string(),
            "status_time = :now".to_string(),
        ];
        if to == JobStatus::Active {
            sets.push("active_since = if_not_exists(active_since, :now)".into());
        }
        if to == JobStatus::Completing {
            sets.push("report_date = if_not_exists(report_date, :now)".into());
        }
        if to.is_terminal() {
            sets.push("termination_date = if_not_exists(termination_date, :now)".into());
            values.insert(":expires".into(), n(self.expires_at_from_now()));
            sets.push("expires_at = :expires".into());
        }
        if let Some(reason) = &change.reason {
            values.insert(":reason".into(), s(reason));
            sets.push("status_update_reason = :reason".into());
        }
        if let Some((action, actor)) = change.audit {
            let entry = actor.entry(&now);
            names.insert("#audit".into(), audit_attribute(action));
            values.insert(
                ":audit".into(),
                s(serde_json::to_string(&entry).map_err(Error::Message)?),
            );
            sets.push("#audit = :audit".into());
        }
        if self.events.is_some() {
            let event = StatusEvent {
                status: to,
                at: now.clone(),
                reason: change.reason.clone(),
            };
            values.insert(":ev".into(), AttributeValue::L(vec![event_value(&event)?]));
            values.insert(":nil".into(), AttributeValue::L(vec![]));
            sets.push("outbox = list_append(if_not_exists(outbox, :nil), :ev)".into());
        }
        if let Some(reasons) = change.failures {
            names.insert("#fr".into(), "failure_reasons".into());
            values.insert(
                ":fr".into(),
                s(serde_json::to_string(&reasons).map_err(Error::Message)?),
            );
            sets.push("#fr = :fr".into());
        }
        // An ended job leaves the open-jobs index (with events, once they are published).
        let leaves = to.is_terminal() && self.events.is_none();
        let removes = if leaves { " REMOVE #open" } else { "" };
        if leaves {
            names.insert("#open".into(), "open".into());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression(format!("SET {}{removes}", sets.join(", ")))
            .condition_expression(format!("#status IN ({})", placeholders.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                if to.is_terminal() {
                    self.expire_request(job_id).await?;
                }
                let item = out.attributes.unwrap_or_default();
                let job = self.with_request(job_id, &item).await?;
                if self.events.is_some() {
                    self.settle_with(job_id, Some((&item, &job))).await;
                }
                Ok(job)
            }
            Err(e) if is_condition_failure(&e) => {
                let actual = self
                    .get(job_id)
                    .await?
                    .ok_or_else(|| Error::JobNotFound(job_id.into()))?;
                Err(Error::StatusConflict {
                    job_id: job_id.into(),
                    actual: actual.status,
                    expected: from.to_vec(),
                })
            }
            Err(e) => Err(Error::dynamo("UpdateItem", e)),
        }
    }

    /// Publishes the job's outbox, in order ([`super::events`]); returns how many events went
    /// out. Never fails: what is not published stays for the next status write or the sweep
    /// (logged and counted: [`JobStore::events_unpublished`]). An ended job whose outbox is empty
    /// leaves the open-jobs index here.
    /// With events off this does nothing (the sweep's [`JobStore::settle_events`] still
    /// takes an ended job out of the open-jobs index).
    pub async fn publish_events(&self, job_id: &str) -> usize {
        if self.events.is_none() {
            return 0;
        }
        self.settle_events(job_id).await.unwrap_or(0)
    }

    /// [`JobStore::publish_events`] for the sweep: `None` when the bus failed (the sweep then
    /// publishes no more this run, so a hanging bus cannot eat its time); with events off, an
    /// ended job still leaves the open-jobs index.
    pub async fn settle_events(&self, job_id: &str) -> Option<usize> {
        self.settle_with(job_id, None).await
    }

    /// [`JobStore::settle_events`], the first try on `known`: the job item a status write
    /// just returned and the job built from it (no read again).
    async fn settle_with(&self, job_id: &str, mut known: Option<(&Item, &Job)>) -> Option<usize> {
        for _ in 0..3 {
            match self.publish_once(job_id, known.take()).await {
                Ok(Some(n)) => return Some(n),
                // Another writer moved the outbox on: read it again.
                Ok(None) => {}
                Err(e) => {
                    self.unpublished
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(job_id, error = %e, "job events not published yet; they stay in the job's outbox");
                    return None;
                }
            }
        }
        tracing::info!(
            job_id,
            "job events: the outbox kept changing; the next change or the sweep publishes it"
        );
        Some(0)
    }

    /// One read, publish and removal: `None` when the outbox changed meanwhile.
    async fn publish_once(
        &self,
        job_id: &str,
        known: Option<(&Item, &Job)>,
    ) -> Result<Option<usize>> {
        let read;
        let (item, known_job) = match known {
            Some((item, job)) => (item, Some(job)),
            None => match self.read_item(job_id, "JOB").await? {
                Some(i) => {
                    read = i;
                    (&read, None)
                }
                None => return Ok(Some(0)),
            },
        };
        let stored = item
            .get("outbox")
            .and_then(|v| v.as_l().ok())
            .map_or(&[][..], Vec::as_slice);
        // Only this store writes entries; one it cannot read is dropped (logged), not kept
        // to block the others for ever.
        let outbox: Vec<StatusEvent> = stored
            .iter()
            .filter_map(|v| {
                let entry = v.as_s().ok().and_then(|j| serde_json::from_str(j).ok());
                if entry.is_none() {
                    tracing::error!(job_id, ?v, "job events: an unreadable outbox entry dropped");
                }
                entry
            })
            .collect();
        let status = get_s(item, "status").and_then(|st| JobStatus::parse(&st));
        let open = item.contains_key("open");
        let Some(sink) = &self.events else {
            // Events were turned off with some still recorded: an ended job still leaves the
            // open-jobs index.
            if open && status.is_some_and(|st| st.is_terminal()) {
                self.leave_open_index(job_id).await?;
            }
            return Ok(Some(0));
        };
        if stored.is_empty() {
            if open && status.is_some_and(|st| st.is_terminal()) {
                self.leave_open_index(job_id).await?;
            }
            return Ok(Some(0));
        }
        let sent = get_n(item, "events_sent");
        let last = get_s(item, "last_event_status").and_then(|st| JobStatus::parse(&st));
        let loaded;
        let job = match known_job {
            Some(j) => j,
            None => {
                loaded = self.with_request(job_id, item).await?;
                &loaded
            }
        };
        let arn = job.arn(&sink.region, sink.account.as_deref());
        let details: Vec<(Option<String>, serde_json::Value)> = outbox
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                let previous = if i == 0 {
                    last
                } else {
                    Some(outbox[i - 1].status)
                };
                let detail =
                    job.event_detail(ev, sent + i as u64 + 1, previous, arn.clone(), &sink.bucket);
                (arn.clone(), detail)
            })
            .collect();
        let accepted = sink.events.put(&details).await.map_err(Error::Events)?;
        if accepted == 0 && !outbox.is_empty() {
            return Ok(Some(0));
        }
        let rest: Vec<AttributeValue> = outbox[accepted..]
            .iter()
            .map(event_value)
            .collect::<Result<_>>()?;
        let ended = rest.is_empty() && status.is_some_and(|st| st.is_terminal());
        let update = format!(
            "SET outbox = :rest, events_sent = :sent_now, last_event_status = :last{}",
            if ended { " REMOVE #open" } else { "" }
        );
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .condition_expression(
                "size(outbox) = :len AND (events_sent = :sent OR attribute_not_exists(events_sent))",
            )
            .expression_attribute_values(":rest", AttributeValue::L(rest))
            .expression_attribute_values(":len", n(stored.len() as u64))
            .expression_attribute_values(":sent", n(sent))
            .expression_attribute_values(":sent_now", n(sent + accepted as u64))
            .expression_attribute_values(
                ":last",
                s(accepted
                    .checked_sub(1)
                    .map_or_else(|| last.map_or("", |l| l.as_str()), |i| outbox[i].status.as_str())),
            );
        if ended {
            req = req.expression_attribute_names("#open", "open");
        }
        match req.update_expression(update).send().await {
            Ok(_) => Ok(Some(accepted)),
            // Published twice (by this and another publisher): documented; the other one
            // moved the outbox on.
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(Error::dynamo("UpdateItem", e)),
        }
    }

    async fn leave_open_index(&self, job_id: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression("REMOVE #open")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#open", "open")
            .send()
            .await
            .map_err(|e| Error::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// [`JobStore::transition`] for a stage that tolerates losing a race: `Ok(Ok(job))` when
    /// the job moved, `Ok(Err(actual))` when another actor had moved it first (logged).
    pub async fn try_transition(
        &self,
        job_id: &str,
        from: &[JobStatus],
        to: JobStatus,
        change: StatusChange,
    ) -> Result<std::result::Result<Job, JobStatus>> {
        match self.transition(job_id, from, to, change).await {
            Ok(job) => Ok(Ok(job)),
            Err(Error::StatusConflict { actual, .. }) => {
                tracing::info!(job_id, %actual, %to, "job had moved on; transition skipped");
                Ok(Err(actual))
            }
            Err(e) => Err(e),
        }
    }

    /// `Pausing → Paused`, once nothing of the job runs any more (a lost race is fine).
    pub async fn settle_pause(&self, job_id: &str) -> Result<std::result::Result<Job, JobStatus>> {
        self.try_transition(
            job_id,
            &[JobStatus::Pausing],
            JobStatus::Paused,
            StatusChange::default(),
        )
        .await
    }

    /// Records the end of planning: the manifest's row and chunk totals, and its ETag.
    /// Idempotent (`SET`), so a re-run planner writes the same numbers.
    pub async fn finish_planning(
        &self,
        job_id: &str,
        total_tasks: u64,
        chunks_total: u64,
        etag: &str,
    ) -> Result<Job> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression(
                "SET total_tasks = :t, chunks_total = :c, planned = :p, manifest_etag = :e, \
                 progress_time = :now",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(self.clock.now_iso()))
            .expression_attribute_values(":t", n(total_tasks))
            .expression_attribute_values(":c", n(chunks_total))
            .expression_attribute_values(":p", AttributeValue::Bool(true))
            .expression_attribute_values(":e", s(etag))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| Error::dynamo("UpdateItem", e))?;
        self.with_request(job_id, out.attributes().unwrap_or(&HashMap::new()))
            .await
    }

    /// One of a job's items (`sk`), with a strongly consistent read.
    async fn read_item(&self, job_id: &str, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem", e))?;
        Ok(out.item)
    }

    /// The planner's saved checkpoint and its sequence number, if planning has stopped
    /// part-way before.
    pub async fn get_checkpoint(&self, job_id: &str) -> Result<Option<(u64, Checkpoint)>> {
        Ok(self.plan_state(job_id).await?.saved)
    }

    /// The job's `PLAN` item, read once: the checkpoint (with its sequence number) and the
    /// [`JobStore::record_sent`] high-water mark.
    pub async fn plan_state(&self, job_id: &str) -> Result<PlanState> {
        let Some(item) = self.read_item(job_id, "PLAN").await? else {
            return Ok(PlanState::default());
        };
        let item = &item;
        // The item can hold only `sent_through` (a first invocation that sent and died).
        let saved = match get_s(item, "checkpoint") {
            None => None,
            Some(json) => Some((
                get_n(item, "seq"),
                serde_json::from_str(&json)
                    .map_err(|e| Error::Record(format!("job {job_id}: bad checkpoint: {e}")))?,
            )),
        };
        Ok(PlanState {
            saved,
            sent_through: get_n(item, "sent_through"),
            sent_rows: get_n(item, "sent_rows"),
            pinned_etag: get_s(item, "pinned_etag"),
        })
    }

    /// Records, before a planner sends the chunks below `chunks` (holding the rows below
    /// `rows`), that they may be queued: the high-water mark a closing or failing planner must
    /// honour (chunks sent after the last checkpoint are on the queue already). Only raised.
    pub async fn record_sent(&self, job_id: &str, chunks: u64, rows: u64) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("PLAN"))
            .update_expression("SET sent_through = :n, sent_rows = :r")
            .condition_expression("attribute_not_exists(sent_through) OR sent_through < :n")
            .expression_attribute_values(":n", n(chunks))
            .expression_attribute_values(":r", n(rows))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(Error::dynamo("UpdateItem", e)),
        }
    }

    /// Pins the manifest a job's planning read first: records `etag` on the `PLAN` item unless
    /// an ETag is pinned already, and returns the pinned one. Every later read of the manifest
    /// (a retried or continued plan) must see that ETag, so chunk N always holds the same rows
    /// even when the request named no `Location.ETag`.
    pub async fn pin_manifest(&self, job_id: &str, etag: &str) -> Result<String> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("PLAN"))
            .update_expression("SET pinned_etag = if_not_exists(pinned_etag, :e)")
            .expression_attribute_values(":e", s(etag))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| Error::dynamo("UpdateItem", e))?;
        Ok(out
            .attributes()
            .and_then(|a| get_s(a, "pinned_etag"))
            .unwrap_or_else(|| etag.to_string()))
    }

    /// Claims the right to repair a job (`Repair::Plan`: re-queue its plan message;
    /// `Repair::Finalize`: queue its finalization): `true` at most once per `every` and
    /// repair (a conditional write of the claim time on the job), so a sweep that suspects a
    /// lost message sends one, not one on every run, and two sweeps never both send.
    pub async fn claim_repair(
        &self,
        job_id: &str,
        repair: Repair,
        every: std::time::Duration,
    ) -> Result<bool> {
        let attribute = match repair {
            Repair::Plan => "replan_claimed_ms",
            Repair::Finalize => "finalize_claimed_ms",
        };
        let now = self.clock.unix_ms();
        let cutoff = now - every.as_millis() as i128;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression("SET #claim = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#claim) OR #claim < :cutoff)",
            )
            .expression_attribute_names("#claim", attribute)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":cutoff", AttributeValue::N(cutoff.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(Error::dynamo("UpdateItem", e)),
        }
    }

    /// Saves a checkpoint, in one transaction with the job's running totals, only if the
    /// stored checkpoint is still `prev_seq` (none: absent) and the job is not yet planned.
    /// Returns `false`, changing nothing, when another planner got there first: two planners
    /// of one job (a redelivered plan message) then cannot both carry on.
    pub async fn save_checkpoint(
        &self,
        job_id: &str,
        prev_seq: Option<u64>,
        checkpoint: &Checkpoint,
        total_tasks: u64,
        chunks_total: u64,
    ) -> Result<bool> {
        let json = serde_json::to_string(checkpoint).map_err(Error::Message)?;
        let seq = prev_seq.map_or(1, |p| p + 1);
        // An update, not a put: the item's `sent_through` mark stays.
        let mut save = Update::builder()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("PLAN"))
            .update_expression("SET #seq = :seq, #cp = :cp")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#cp", "checkpoint")
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":cp", s(json));
        save = match prev_seq {
            None => save.condition_expression("attribute_not_exists(#seq)"),
            Some(p) => save
                .condition_expression("#seq = :prev")
                .expression_attribute_values(":prev", n(p)),
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression("SET total_tasks = :t, chunks_total = :c, plan_continuations = :k")
            .condition_expression("attribute_exists(pk) AND planned <> :yes")
            .expression_attribute_values(":t", n(total_tasks))
            .expression_attribute_values(":c", n(chunks_total))
            .expression_attribute_values(":k", n(checkpoint.continuations))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .build()
            .map_err(|e| Error::Record(e.to_string()))?;
        let result = send_transaction(
            &self.ids,
            self.client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .update(save.build().map_err(|e| Error::Record(e.to_string()))?)
                        .build(),
                )
                .transact_items(TransactWriteItem::builder().update(update).build()),
        )
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if any_condition_failed(&e) => Ok(false),
            Err(e) => Err(Error::dynamo("TransactWriteItems", e)),
        }
    }

    /// Records a written data file of a generated manifest (a rewrite of the same first
    /// chunk replaces it).
    pub async fn put_output_file(&self, job_id: &str, file: &OutputFile) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", job_pk(job_id))
            .item("sk", s(format!("OUTFILE#{:012}", file.first_chunk)))
            .item("first_chunk", n(file.first_chunk))
            .item("last_chunk", n(file.last_chunk))
            .item("key", s(&file.key))
            .item("size", n(file.size))
            .item("md5", s(&file.md5))
            .send()
            .await
            .map_err(|e| Error::dynamo("PutItem", e))?;
        Ok(())
    }

    /// Every recorded data file of a job's generated manifest, by first chunk.
    pub async fn output_files(&self, job_id: &str) -> Result<Vec<OutputFile>> {
        let mut files = Vec::new();
        let mut cursor = None;
        loop {
            let out = self.query_job_items(job_id, "OUTFILE#", cursor).await?;
            files.extend(out.items().iter().map(|item| OutputFile {
                first_chunk: get_n(item, "first_chunk"),
                last_chunk: get_n(item, "last_chunk"),
                key: get_s(item, "key").unwrap_or_default(),
                size: get_n(item, "size"),
                md5: get_s(item, "md5").unwrap_or_default(),
            }));
            cursor = out.last_evaluated_key().cloned();
            if cursor.is_none() {
                return Ok(files);
            }
        }
    }

    /// Fixes the job's `ReportCreationDate` once (the first caller's clock wins) and returns it.
    pub async fn fix_report_date(&self, job_id: &str) -> Result<String> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression("SET report_date = if_not_exists(report_date, :now)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(self.clock.now_iso()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| Error::dynamo("UpdateItem", e))?;
        out.attributes()
            .and_then(|a| get_s(a, "report_date"))
            .ok_or_else(|| Error::Record(format!("job {job_id}: no report_date after setting it")))
    }

    /// Whether the chunk has been counted already.
    pub async fn chunk_counted(&self, job_id: &str, chunk: u64) -> Result<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s(chunk_sk(chunk)))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem", e))?;
        Ok(out.item().is_some())
    }

    /// Claims chunk `chunk` for the delivery `owner` for `lease`: only the holder of a live
    /// claim runs the chunk's tasks, so two deliveries of one message at the same moment (SQS
    /// is at-least-once) do not both run them. A conditional put that succeeds when no claim
    /// exists, the claim has lapsed, or `owner` holds it. Returns `None` when `owner` now holds
    /// it, or how long another's claim has left. The chunk record stays the exactly-once
    /// arbiter of the counts; the claim only keeps work from running twice.
    pub async fn claim_chunk(
        &self,
        job_id: &str,
        chunk: u64,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<std::time::Duration>> {
        let now = self.clock.unix_ms();
        let until = now + lease.as_millis() as i128;
        // Kept a day past its lease, then removed by the table's TTL.
        let expires_at = until / 1000 + 86_400;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", job_pk(job_id))
            .item("sk", s(claim_sk(chunk)))
            .item("owner", s(owner))
            .item("lease_until", AttributeValue::N(until.to_string()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression(
                "attribute_not_exists(pk) OR lease_until < :now OR #owner = :owner",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":owner", s(owner))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if is_condition_failure(&e) => {
                let held_until = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item(),
                        _ => None,
                    })
                    .map(|item| i128::from(get_n(item, "lease_until")))
                    .unwrap_or(until);
                let left = (held_until - now).clamp(0, i128::from(u32::MAX));
                Ok(Some(std::time::Duration::from_millis(left as u64)))
            }
            Err(e) => Err(Error::dynamo("PutItem", e)),
        }
    }

    /// Gives up `owner`'s claim on a chunk (a delivery that failed or deferred it), so the
    /// next delivery need not wait for the lease to lapse. A claim `owner` does not hold is
    /// left alone.
    pub async fn release_chunk(&self, job_id: &str, chunk: u64, owner: &str) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s(claim_sk(chunk)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(Error::dynamo("DeleteItem", e)),
        }
    }

    /// What earlier deliveries of a chunk, cut short by their deadline, ran and kept.
    pub async fn chunk_partial(&self, job_id: &str, chunk: u64) -> Result<Option<Partial>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s(part_sk(chunk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::dynamo("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let done =
            parse_index_ranges(&get_s(item, "done").unwrap_or_default()).ok_or_else(|| {
                Error::Record(format!(
                    "job {job_id} chunk {chunk}: unreadable partial record"
                ))
            })?;
        Ok(Some(Partial {
            done,
            succeeded: get_n(item, "succeeded"),
            failed: get_n(item, "failed"),
            result_key: get_s(item, "result_key").unwrap_or_default(),
        }))
    }

    /// Records what a delivery cut short by its deadline ran (everything earlier deliveries
    /// kept included). Written by the holder of the chunk's claim only.
    pub async fn save_partial(&self, job_id: &str, chunk: u64, partial: &Partial) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", job_pk(job_id))
            .item("sk", s(part_sk(chunk)))
            .item("done", s(index_ranges(&partial.done)))
            .item("succeeded", n(partial.succeeded))
            .item("failed", n(partial.failed))
            .item("result_key", s(&partial.result_key))
            .send()
            .await
            .map_err(|e| Error::dynamo("PutItem", e))?;
        Ok(())
    }

    /// Removes a chunk's partial record once the chunk is counted.
    pub async fn drop_partial(&self, job_id: &str, chunk: u64) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s(part_sk(chunk)))
            .send()
            .await
            .map_err(|e| Error::dynamo("DeleteItem", e))?;
        Ok(())
    }

    /// Counts a chunk exactly once: one transaction puts the chunk record (only if absent)
    /// and adds its counts to the job. Returns `false`, changing nothing, when the chunk was
    /// already counted (a redelivery), or is not part of the job: the job has ended (or is
    /// writing its report), or its plan is closed below this chunk's number (a stale
    /// planner's late send). So no count changes once a job is terminal, and none ever goes
    /// past the plan's totals.
    pub async fn count_chunk(
        &self,
        job_id: &str,
        chunk: u64,
        counts: ChunkCounts,
        result_key: Option<&str>,
    ) -> Result<bool> {
        let mut record = Item::from([
            ("pk".into(), job_pk(job_id)),
            ("sk".into(), s(chunk_sk(chunk))),
            ("chunk".into(), n(chunk)),
            ("succeeded".into(), n(counts.succeeded)),
            ("failed".into(), n(counts.failed)),
            ("not_run".into(), n(counts.not_run)),
        ]);
        if let Some(k) = result_key {
            record.insert("result_key".into(), s(k));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::Record(e.to_string()))?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", job_pk(job_id))
            .key("sk", s("JOB"))
            .update_expression(
                "ADD succeeded :s, failed :f, not_run :n, chunks_done :one SET progress_time = :now",
            )
            .expression_attribute_values(":now", s(self.clock.now_iso()))
            .condition_expression(
                "attribute_exists(pk) AND NOT (#status IN (:completing, :complete, :cancelled, \
                 :failed)) AND (planned <> :yes OR chunks_total > :chunk)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completing", s(JobStatus::Completing.as_str()))
            .expression_attribute_values(":complete", s(JobStatus::Complete.as_str()))
            .expression_attribute_values(":cancelled", s(JobStatus::Cancelled.as_str()))
            .expression_attribute_values(":failed", s(JobStatus::Failed.as_str()))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":chunk", n(chunk))
            .expression_attribute_values(":s", n(counts.succeeded))
            .expression_attribute_values(":f", n(counts.failed))
            .expression_attribute_values(":n", n(counts.not_run))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| Error::Record(e.to_string()))?;
        let result = send_transaction(
            &self.ids,
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(update).build()),
        )
        .await;
        match result {
            Ok(_) => Ok(true),
            // The chunk record exists (a duplicate), or the job refuses the count.
            Err(e) if any_condition_failed(&e) => {
                if !first_condition_failed(&e) {
                    tracing::warn!(
                        job_id,
                        chunk,
                        "chunk not counted: its job has ended or its plan closed below it"
                    );
                }
                Ok(false)
            }
            Err(e) => Err(Error::dynamo("TransactWriteItems", e)),
        }
    }

    /// One page of job summaries, newest first, optionally only those in `statuses`. The
    /// cursor is DynamoDB's `LastEvaluatedKey`. A filter of open statuses only reads the
    /// open-jobs index (as many items as there are open jobs, not every job kept); any other
    /// reads the ListJobs index. Both project only the summary, never a request.
    pub async fn list_page(
        &self,
        statuses: Option<&[JobStatus]>,
        limit: i32,
        cursor: Option<PageKey>,
    ) -> Result<(Vec<JobSummary>, Option<PageKey>)> {
        let statuses = statuses.filter(|s| !s.is_empty());
        let open_only = statuses.is_some_and(|st| st.iter().all(|s| !s.is_terminal()));
        let mut q = self.index_query(open_only, limit, cursor);
        if let Some(statuses) = statuses {
            let names: Vec<String> = (0..statuses.len()).map(|i| format!(":st{i}")).collect();
            q = q
                .filter_expression(format!("#status IN ({})", names.join(", ")))
                .expression_attribute_names("#status", "status");
            for (name, st) in names.iter().zip(statuses) {
                q = q.expression_attribute_values(name, s(st.as_str()));
            }
        }
        let out = q.send().await.map_err(|e| Error::dynamo("Query", e))?;
        let jobs = out
            .items()
            .iter()
            .map(JobSummary::from_item)
            .collect::<Result<Vec<_>>>()?;
        Ok((jobs, out.last_evaluated_key().cloned().map(PageKey)))
    }

    /// One page of the jobs not yet terminal (the open-jobs index; also ended ones whose events
    /// are not all published), newest first: what the sweep looks at, however many ended jobs the table keeps.
    pub async fn open_jobs_page(
        &self,
        limit: i32,
        cursor: Option<PageKey>,
    ) -> Result<(Vec<JobSummary>, Option<PageKey>)> {
        let out = self
            .index_query(true, limit, cursor)
            .send()
            .await
            .map_err(|e| Error::dynamo("Query", e))?;
        let jobs = out
            .items()
            .iter()
            .map(JobSummary::from_item)
            .collect::<Result<Vec<_>>>()?;
        Ok((jobs, out.last_evaluated_key().cloned().map(PageKey)))
    }

    /// A newest-first query of the open-jobs index (`open`) or of the ListJobs index.
    fn index_query(
        &self,
        open: bool,
        limit: i32,
        cursor: Option<PageKey>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let (index, key, value) = if open {
            (OPEN_INDEX, "#key = :key", "OPEN")
        } else {
            (JOBS_INDEX, "#key = :key", "JOBS")
        };
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(key)
            .expression_attribute_names("#key", if open { "open" } else { "gsi1pk" })
            .expression_attribute_values(":key", s(value))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(cursor.map(|k| k.0))
    }

    /// One page (strongly consistent) of a job's items whose sort key starts with `prefix`.
    async fn query_job_items(
        &self,
        job_id: &str,
        prefix: &str,
        cursor: Option<Item>,
    ) -> Result<aws_sdk_dynamodb::operation::query::QueryOutput> {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", job_pk(job_id))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .set_exclusive_start_key(cursor)
            .send()
            .await
            .map_err(|e| Error::dynamo("Query", e))
    }

    /// One page of a job's working records: every item of the job but the job and its request
    /// (chunk records, claims, partial chunks, the plan checkpoint, the report's progress),
    /// each with the stack-bucket file it points to, if any.
    pub async fn working_records_page(
        &self,
        job_id: &str,
        cursor: Option<PageKey>,
    ) -> Result<(Vec<WorkingRecord>, Option<PageKey>)> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", job_pk(job_id))
            .projection_expression("sk, result_key")
            .consistent_read(true)
            .set_exclusive_start_key(cursor.map(|k| k.0))
            .send()
            .await
            .map_err(|e| Error::dynamo("Query", e))?;
        let records = out
            .items()
            .iter()
            .filter_map(|item| {
                let sk = get_s(item, "sk")?;
                (sk != "JOB" && sk != REQUEST_SK).then(|| WorkingRecord {
                    file: get_s(item, "result_key").filter(|k| !k.is_empty()),
                    sk,
                })
            })
            .collect();
        Ok((records, out.last_evaluated_key().cloned().map(PageKey)))
    }

    /// Deletes working records of a job, 25 to a `BatchWriteItem`, retrying what DynamoDB
    /// leaves unprocessed (throttling) a bounded number of times.
    pub async fn delete_working_records(
        &self,
        job_id: &str,
        records: &[WorkingRecord],
    ) -> Result<()> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        for batch in records.chunks(25) {
            let mut requests = batch
                .iter()
                .map(|r| {
                    DeleteRequest::builder()
                        .key("pk", job_pk(job_id))
                        .key("sk", s(&r.sk))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| Error::Record(e.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut tries = 0u32;
            while !requests.is_empty() {
                tries += 1;
                if tries > 8 {
                    return Err(Error::Dynamo {
                        op: "BatchWriteItem",
                        source: format!(
                            "{} deletes still unprocessed after {} tries",
                            requests.len(),
                            tries - 1
                        )
                        .into(),
                        retryable: true,
                    });
                }
                if tries > 1 {
                    let ms = 50u64 << (tries - 2).min(5);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.clone(), requests)
                    .send()
                    .await
                    .map_err(|e| Error::dynamo("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Where a job's report assembly stands, with its sequence number (none: not started).
    pub async fn report_progress(
        &self,
        job_id: &str,
    ) -> Result<Option<(u64, crate::report::ReportProgress)>> {
        let Some(item) = self.read_item(job_id, "REPORT").await? else {
            return Ok(None);
        };
        let json = get_s(&item, "progress").unwrap_or_default();
        let progress = serde_json::from_str(&json)
            .map_err(|e| Error::Record(format!("job {job_id}: bad report progress: {e}")))?;
        Ok(Some((get_n(&item, "seq"), progress)))
    }

    /// Saves report progress only if the stored one is still `prev_seq` (none: absent), so two
    /// finalizers of one job cannot both go on. Returns `false` when another got there first.
    pub async fn save_report_progress(
        &self,
        job_id: &str,
        prev_seq: Option<u64>,
        progress: &crate::report::ReportProgress,
    ) -> Result<bool> {
        let json = serde_json::to_string(progress).map_err(Error::Message)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", job_pk(job_id))
            .item("sk", s("REPORT"))
            .item("seq", n(prev_seq.map_or(1, |p| p + 1)))
            .item("progress", s(json));
        put = match prev_seq {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(p) => put
                .condition_expression("seq = :prev")
                .expression_attribute_values(":prev", n(p)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(Error::dynamo("PutItem", e)),
        }
    }

    /// The cursor that makes [`JobStore::chunk_page`] start after chunk `chunk`.
    pub fn chunk_cursor(job_id: &str, chunk: u64) -> PageKey {
        PageKey(Item::from([
            ("pk".to_string(), job_pk(job_id)),
            ("sk".to_string(), s(chunk_sk(chunk))),
        ]))
    }

    /// One page of a job's chunk records, in chunk order. Pass the returned cursor back to
    /// get the next page; `None` means the last page.
    pub async fn chunk_page(
        &self,
        job_id: &str,
        cursor: Option<PageKey>,
    ) -> Result<(Vec<ChunkRecord>, Option<PageKey>)> {
        let out = self
            .query_job_items(job_id, "CHUNK#", cursor.map(|k| k.0))
            .await?;
        let records = out
            .items()
            .iter()
            .map(|item| ChunkRecord {
                chunk: get_n(item, "chunk"),
                counts: ChunkCounts {
                    succeeded: get_n(item, "succeeded"),
                    failed: get_n(item, "failed"),
                    not_run: get_n(item, "not_run"),
                },
                result_key: get_s(item, "result_key"),
            })
            .collect();
        Ok((records, out.last_evaluated_key().cloned().map(PageKey)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_junk_is_refused() {
        for names in [
            ["pk", "sk", "gsi1pk", "gsi1sk"],
            ["pk", "sk", "open", "gsi1sk"],
        ] {
            let key = PageKey(
                names
                    .iter()
                    .map(|k| (k.to_string(), s(format!("v-{k}"))))
                    .collect(),
            );
            assert_eq!(PageKey::from_token(&key.to_token()), Some(key));
        }
        assert_eq!(PageKey::from_token("not base64 !"), None);
        use base64::Engine;
        let one = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{\"pk\":\"x\"}");
        assert_eq!(PageKey::from_token(&one), None);
    }

    #[test]
    fn job_item_round_trips() {
        let request: CreateJobRequest = serde_json::from_value(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "a", "Value": "b"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820"},
                         "Location": {"ObjectArn": "arn:aws:s3:::bkt/m.csv"}},
            "Report": {"Enabled": false}
        }))
        .unwrap();
        let mut job = Job::new("id-1".into(), request, "2026-01-01T00:00:00.000Z".into())
            .created_by(&Actor::intake(Some("AWS:AIDAEXAMPLE".into())));
        job.audit.insert(
            Audited::Paused,
            Actor::api(Some("arn:aws:iam::1:user/a".into())).entry("2026-01-03T00:00:00.000Z"),
        );
        job.succeeded = 7;
        job.failure_reasons.push(FailureReason {
            failure_code: "X".into(),
            failure_reason: "y".into(),
        });
        job.report_date = Some("2026-01-02T00:00:00.000Z".into());
        let (item, request_item) = job.to_items(0).unwrap();
        assert_eq!(Job::from_items(&item, Some(&request_item)).unwrap(), job);
        assert_eq!(
            get_s(&item, "gsi1sk").unwrap(),
            "2026-01-01T00:00:00.000Z#id-1"
        );
        // The counted item holds no request; an open job is in the open-jobs index.
        assert!(!item.contains_key("request") && !item.contains_key("tags"));
        assert_eq!(get_s(&item, "open").as_deref(), Some("OPEN"));
        assert_eq!(
            get_s(&item, "operation").as_deref(),
            Some("S3PutObjectTagging")
        );
        // A job stored before the split carries its request in its one item.
        let mut legacy = item.clone();
        legacy.extend(request_item);
        legacy.insert("sk".into(), s("JOB"));
        assert_eq!(Job::from_items(&legacy, None).unwrap(), job);
        let summary = JobSummary::from_item(&item).unwrap();
        assert_eq!(summary.operation.as_deref(), Some("S3PutObjectTagging"));
        assert_eq!(summary.succeeded, 7);
    }

    #[test]
    fn task_index_ranges_round_trip() {
        let set: std::collections::BTreeSet<usize> = [0, 1, 2, 3, 5, 9, 10, 42].into();
        assert_eq!(index_ranges(&set), "0-3,5,9-10,42");
        assert_eq!(parse_index_ranges("0-3,5,9-10,42"), Some(set));
        assert_eq!(parse_index_ranges(""), Some(Default::default()));
        assert_eq!(parse_index_ranges("3-1"), None);
        assert_eq!(parse_index_ranges("x"), None);
    }

    #[test]
    fn chunk_keys_sort_numerically() {
        assert!(chunk_sk(9) < chunk_sk(10));
        assert!(chunk_sk(99_999) < chunk_sk(100_000));
    }
}
