//! Typed configuration, loaded once per process from the environment. Every default lives here.
//! AWS endpoints are *not* configured here: the SDK reads `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_S3`, `_SQS`, `_DYNAMODB`) itself.

use crate::ops::JobOperation;
use crate::ops::powers::Power;
use crate::{Error, Result};
use std::time::Duration;

/// Runtime settings shared by every function.
#[derive(Clone, Debug)]
pub struct Config {
    /// `BATCHOPS_TABLE`: the single DynamoDB table (jobs, chunk records, tokens).
    pub table: String,
    /// `BATCHOPS_BUCKET`: the stack bucket (intake prefix, per-chunk results, default reports).
    pub bucket: String,
    /// `BATCHOPS_PLAN_QUEUE_URL`: jobs waiting to be planned.
    pub plan_queue_url: String,
    /// `BATCHOPS_WORK_QUEUE_URL`: chunk messages.
    pub work_queue_url: String,
    /// `BATCHOPS_WORK_HIGH_QUEUE_URL` [the work queue]: chunks of jobs whose priority is at
    /// least `high_priority`; workers drain it before the work queue.
    pub work_high_queue_url: String,
    /// `BATCHOPS_HIGH_PRIORITY` [100]: the priority from which a job's chunks go to the high band.
    pub high_priority: i64,
    /// `BATCHOPS_FINALIZE_QUEUE_URL`: jobs whose chunks are all counted.
    pub finalize_queue_url: String,
    /// `BATCHOPS_CHUNK_SIZE` [1000]: most tasks in one chunk message.
    pub chunk_size: usize,
    /// `BATCHOPS_TASK_CONCURRENCY` [32]: tasks in flight per chunk.
    pub task_concurrency: usize,
    /// `BATCHOPS_TASK_MAX_ATTEMPTS` [5]: tries of one task on transient errors.
    pub task_max_attempts: u32,
    /// `BATCHOPS_RETRY_BASE_MS` [100] and `BATCHOPS_RETRY_CAP_MS` [5000]: backoff bounds.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// `BATCHOPS_REPORT_FILE_MAX_BYTES` [64 MiB]: a completion report result file is rolled
    /// over to the next one past this size, so no report is held in memory whole.
    pub report_file_max_bytes: usize,
    /// `BATCHOPS_ALLOWED_BUCKETS` [empty = none]: comma-separated bucket names jobs may touch,
    /// `*` for any (development only).
    pub allowed_buckets: Vec<String>,
    /// `BATCHOPS_STATUS_CHECK_MS` [5000]: how often a running chunk re-reads its job's status.
    pub status_check_interval: Duration,
    /// `BATCHOPS_CHUNK_LEASE_SECS` [900, the Lambda maximum]: how long a delivery's claim on
    /// a chunk lasts, at least as long as one worker invocation may run and shorter than the
    /// work queues' visibility timeout, so a delivery whose worker died is taken over by the
    /// next one.
    pub chunk_lease: Duration,
    /// `BATCHOPS_WORKER_MARGIN_SECS` [60]: a worker starts no task this close to its Lambda
    /// deadline; the tasks still running get until half as close (at most 10 s before it) and
    /// are then cut off. What ran is kept and the rest of the chunk is queued again.
    pub worker_margin: Duration,
    /// `BATCHOPS_MAX_RECEIVES` [5]: the work queues' redrive `maxReceiveCount`; on the last
    /// receive a chunk that still fails is accounted as failed tasks instead of dead-lettered.
    pub max_receives: u32,
    /// `BATCHOPS_PREPARING_TIMEOUT_SECS` [7200]: the sweep fails a job stuck in `Preparing`
    /// this long; a job still `New` after a tenth of it gets its plan message again.
    pub preparing_timeout: Duration,
    /// `BATCHOPS_WORK_DLQ_URLS` [none]: the work queues' dead-letter queues, drained by the
    /// sweep, which accounts each dead chunk's tasks as failed.
    pub work_dlq_urls: Vec<String>,
    /// `BATCHOPS_S3_PATH_STYLE` [false]: path-style S3 addressing, needed by emulators.
    pub s3_force_path_style: bool,
    /// `BATCHOPS_MULTIPART_THRESHOLD_BYTES` [5 GiB]: `S3PutObjectCopy` copies larger objects
    /// part by part (CopyObject's own limit is 5 GiB).
    pub multipart_threshold: u64,
    /// `BATCHOPS_MULTIPART_PART_BYTES` [512 MiB]: part size of a multipart copy, between S3's
    /// 5 MiB minimum and 5 GiB maximum (raised for objects that would need over 10,000 parts).
    pub multipart_part_size: u64,
    /// `BATCHOPS_PLANNER_BUDGET_SECS` [600]: how long one planner invocation reads a manifest
    /// before it checkpoints and re-enqueues itself (within Lambda's 15 minutes; a shorter
    /// Lambda deadline wins). 0: one chunk per invocation.
    /// `BATCHOPS_STALL_SECS` [1296000: 15 days]: a planned job none of whose missing chunks
    /// has been counted for this long has lost them (SQS keeps a message 14 days): the sweep
    /// fails it (`ChunksLost`) and counts the tasks it never ran as not run, so it ends.
    pub stall_timeout: Duration,
    /// `BATCHOPS_PLANNER_MAX_BACKLOG` [100000; 0 = no limit]: while the work queues hold this
    /// many chunk messages (waiting or in flight), a planner queues no more and continues
    /// after [`Config::planner_backoff`], so no chunk waits long enough to pass SQS's 14-day
    /// retention.
    pub planner_max_backlog: u64,
    /// `BATCHOPS_PLANNER_BACKOFF_SECS` [300, at most 900]: how long a planner that met a full
    /// backlog waits before looking again.
    pub planner_backoff: Duration,
    pub planner_budget: Duration,
    /// `BATCHOPS_GENERATOR_SCAN_SPAN` [100000]: a manifest generator's chunk also ends after
    /// this many listed keys (counted from where an invocation's listing starts), full or not,
    /// so that a filter admitting few keys still reaches a checkpoint within the budget (about
    /// 100 ListObjectsV2 pages). Kept in the checkpoint, like the chunk size.
    pub generator_scan_span: u64,
    /// `BATCHOPS_RETRY_VISIBILITY_SECS` [10]: a message whose handler failed is visible again
    /// after this, doubled per delivery (at most 900), instead of the queue's visibility timeout.
    pub retry_visibility_secs: u32,
    /// `BATCHOPS_ALLOWED_OPERATIONS` [empty = every operation]: comma-separated operation names
    /// jobs may run.
    pub allowed_operations: Vec<String>,
    /// The opt-in powers enabled (`BATCHOPS_ALLOW_DELETE`, `_GOVERNANCE_BYPASS`,
    /// `_COMPLIANCE_LOCK`, `_PUBLIC_GRANTS`, each `true` to enable; off by default, on in
    /// `batchops dev` unless set): see [`crate::ops::powers`].
    pub powers: Vec<Power>,
    /// `BATCHOPS_REPORT_RETRY_SECS` [3600]: a report write that fails for now (throttling,
    /// 5xx) is retried while the job has been ending for less than this; past it, the job
    /// ends `Failed` with `ReportWriteFailed` instead of waiting forever.
    pub report_retry_window: Duration,
    /// `BATCHOPS_ROLE_ARN_PATTERN` [none]: when set, every job must name a `RoleArn` matching
    /// it (`*` and `?` wildcards, as in IAM) and its tasks run as that role, assumed by the
    /// worker; unset, the stack's own role acts (the `RoleArn` is recorded only).
    pub role_arn_pattern: Option<String>,
    /// `BATCHOPS_EVENT_BUS` [none; `default` for `batchops dev`]: the EventBridge bus every
    /// status change of a job is published to ("Job Status Change" events); empty: no events.
    pub event_bus: Option<String>,
    /// `BATCHOPS_PRICES` [the built-in table]: a JSON object of [`crate::cost::Prices`]
    /// fields to override, for DescribeJob's `CostEstimate`.
    pub prices: crate::cost::Prices,
    /// `BATCHOPS_ACCOUNT_ID` [none]: the stack's account, for the job ARN in events of jobs
    /// whose request named none (the template sets it).
    pub account_id: Option<String>,
    /// `BATCHOPS_FINALIZER_BUDGET_SECS` [600]: how long one finalizer invocation assembles a
    /// report before it checkpoints and queues itself again (within Lambda's 15 minutes).
    /// 0: one batch of chunk files per invocation (tests use it to span many).
    pub finalizer_budget: Duration,
}

/// Defaults of the multipart copy settings.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 5 * 1024 * 1024 * 1024;
pub const DEFAULT_MULTIPART_PART_SIZE: u64 = 512 * 1024 * 1024;
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The most receives before a work message is dead-lettered (template: `MaxReceiveCount`'s
/// `MaxValue`).
pub const MAX_RECEIVES_BOUND: u64 = 200;

impl Config {
    /// Reads the configuration; an error names the offending variable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::Config(format!("{name} must be set")))
        };
        let at_least = |name: &str, default: u64, min: u64| -> Result<u64> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| *n >= min).ok_or_else(|| {
                    let kind = if min == 0 {
                        "a whole number"
                    } else {
                        "a positive integer"
                    };
                    Error::Config(format!("{name} must be {kind}, got {v:?}"))
                }),
            }
        };
        let number = |name: &str, default: u64| at_least(name, default, 1);
        let chunk_size = number("BATCHOPS_CHUNK_SIZE", 1000)? as usize;
        let list = |name: &str| -> Vec<String> {
            lookup(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let multipart_part_size =
            number("BATCHOPS_MULTIPART_PART_BYTES", DEFAULT_MULTIPART_PART_SIZE)?;
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&multipart_part_size) {
            return Err(Error::Config(format!(
                "BATCHOPS_MULTIPART_PART_BYTES must be between {MIN_PART_SIZE} (5 MiB) and \
                 {MAX_PART_SIZE} (5 GiB), got {multipart_part_size}"
            )));
        }
        let mut powers = Vec::new();
        for power in Power::ALL {
            let (name, _) = power.setting();
            match lookup(name).as_deref().map(str::trim) {
                None | Some("" | "false" | "0") => {}
                Some("true" | "1") => powers.push(power),
                Some(v) => {
                    return Err(Error::Config(format!(
                        "{name} must be true or false, got {v:?}"
                    )));
                }
            }
        }
        let allowed_operations = list("BATCHOPS_ALLOWED_OPERATIONS");
        if let Some(unknown) = allowed_operations
            .iter()
            .find(|o| *o != "*" && !JobOperation::NAMES.contains(&o.as_str()))
        {
            return Err(Error::Config(format!(
                "BATCHOPS_ALLOWED_OPERATIONS names {unknown:?}, which is not an operation (one of {})",
                JobOperation::NAMES.join(", ")
            )));
        }
        Ok(Self {
            allowed_operations,
            powers,
            report_retry_window: Duration::from_secs(at_least(
                "BATCHOPS_REPORT_RETRY_SECS",
                3600,
                0,
            )?),
            event_bus: lookup("BATCHOPS_EVENT_BUS")
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty()),
            prices: crate::cost::Prices::with_overrides(
                &lookup("BATCHOPS_PRICES").unwrap_or_default(),
            )
            .map_err(|e| Error::Config(format!("BATCHOPS_PRICES: {e}")))?,
            account_id: lookup("BATCHOPS_ACCOUNT_ID")
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty()),
            role_arn_pattern: lookup("BATCHOPS_ROLE_ARN_PATTERN")
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
            table: required("BATCHOPS_TABLE")?,
            bucket: required("BATCHOPS_BUCKET")?,
            plan_queue_url: required("BATCHOPS_PLAN_QUEUE_URL")?,
            work_queue_url: required("BATCHOPS_WORK_QUEUE_URL")?,
            work_high_queue_url: lookup("BATCHOPS_WORK_HIGH_QUEUE_URL")
                .filter(|v| !v.is_empty())
                .map_or_else(|| required("BATCHOPS_WORK_QUEUE_URL"), Ok)?,
            high_priority: number("BATCHOPS_HIGH_PRIORITY", 100)? as i64,
            finalize_queue_url: required("BATCHOPS_FINALIZE_QUEUE_URL")?,
            chunk_size,
            task_concurrency: number("BATCHOPS_TASK_CONCURRENCY", 32)? as usize,
            task_max_attempts: number("BATCHOPS_TASK_MAX_ATTEMPTS", 5)? as u32,
            retry_base: Duration::from_millis(number("BATCHOPS_RETRY_BASE_MS", 100)?),
            retry_cap: Duration::from_millis(number("BATCHOPS_RETRY_CAP_MS", 5000)?),
            report_file_max_bytes: number("BATCHOPS_REPORT_FILE_MAX_BYTES", 64 * 1024 * 1024)?
                as usize,
            chunk_lease: Duration::from_secs(at_least("BATCHOPS_CHUNK_LEASE_SECS", 900, 1)?),
            worker_margin: Duration::from_secs(number("BATCHOPS_WORKER_MARGIN_SECS", 60)?),
            // SQS dead-letters a message after this many receives; past ~224 a message would
            // expire first (14 days' retention over 90-minute visibility), lost instead of
            // accounted: the template's MaxReceiveCount has the same bound.
            max_receives: match number("BATCHOPS_MAX_RECEIVES", 5)? {
                n @ 1..=MAX_RECEIVES_BOUND => n as u32,
                n => {
                    return Err(Error::Config(format!(
                        "BATCHOPS_MAX_RECEIVES must be at most {MAX_RECEIVES_BOUND} (a message \
                         received more often expires before it is dead-lettered), got {n}"
                    )));
                }
            },
            preparing_timeout: Duration::from_secs(number(
                "BATCHOPS_PREPARING_TIMEOUT_SECS",
                7200,
            )?),
            work_dlq_urls: list("BATCHOPS_WORK_DLQ_URLS"),
            status_check_interval: Duration::from_millis(number("BATCHOPS_STATUS_CHECK_MS", 5000)?),
            allowed_buckets: list("BATCHOPS_ALLOWED_BUCKETS"),
            s3_force_path_style: matches!(
                lookup("BATCHOPS_S3_PATH_STYLE").as_deref(),
                Some("1" | "true" | "TRUE" | "yes")
            ),
            // 0: one chunk per invocation (every manifest spans many: tests use it).
            planner_budget: Duration::from_secs(at_least("BATCHOPS_PLANNER_BUDGET_SECS", 600, 0)?),
            planner_max_backlog: at_least("BATCHOPS_PLANNER_MAX_BACKLOG", 100_000, 0)?,
            stall_timeout: Duration::from_secs(number("BATCHOPS_STALL_SECS", 15 * 86_400)?),
            planner_backoff: Duration::from_secs(
                number("BATCHOPS_PLANNER_BACKOFF_SECS", 300)?.min(900),
            ),
            generator_scan_span: number("BATCHOPS_GENERATOR_SCAN_SPAN", 100_000)?,
            retry_visibility_secs: number("BATCHOPS_RETRY_VISIBILITY_SECS", 10)?.min(900) as u32,
            finalizer_budget: Duration::from_secs(at_least(
                "BATCHOPS_FINALIZER_BUDGET_SECS",
                600,
                0,
            )?),
            multipart_threshold: number(
                "BATCHOPS_MULTIPART_THRESHOLD_BYTES",
                DEFAULT_MULTIPART_THRESHOLD,
            )?,
            multipart_part_size,
        })
    }

    /// A configuration for the named resources, the other settings read through `lookup`
    /// (the dev runner passes the environment, so every `BATCHOPS_*` tunable works locally).
    /// With no `BATCHOPS_ALLOWED_BUCKETS`, any bucket is allowed.
    #[cfg(any(test, feature = "emulator"))]
    pub fn for_stack_with(
        names: StackNames,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let fixed: [(&str, String); 7] = [
            ("BATCHOPS_WORK_DLQ_URLS", names.work_dlq_urls.join(",")),
            ("BATCHOPS_TABLE", names.table),
            ("BATCHOPS_BUCKET", names.bucket),
            ("BATCHOPS_PLAN_QUEUE_URL", names.plan_queue_url),
            ("BATCHOPS_WORK_QUEUE_URL", names.work_queue_url),
            ("BATCHOPS_WORK_HIGH_QUEUE_URL", names.work_high_queue_url),
            ("BATCHOPS_FINALIZE_QUEUE_URL", names.finalize_queue_url),
        ];
        Self::from_lookup(|k| match fixed.iter().find(|(name, _)| *name == k) {
            Some((_, v)) => Some(v.clone()),
            None if k == "BATCHOPS_ALLOWED_BUCKETS" => lookup(k).or_else(|| Some("*".into())),
            None if k == "BATCHOPS_S3_PATH_STYLE" => Some("true".into()),
            // Events go to the emulator's default bus unless the environment says otherwise.
            None if k == "BATCHOPS_EVENT_BUS" => lookup(k).or_else(|| Some("default".into())),
            // A single user's playground: every power unless the environment says otherwise.
            None if k.starts_with("BATCHOPS_ALLOW_") => lookup(k).or_else(|| Some("true".into())),
            None => lookup(k),
        })
    }

    /// A configuration for the named resources with every default (dev runner and tests).
    #[cfg(any(test, feature = "emulator"))]
    pub fn for_stack(names: StackNames) -> Self {
        Self {
            table: names.table,
            bucket: names.bucket,
            plan_queue_url: names.plan_queue_url,
            work_queue_url: names.work_queue_url,
            work_high_queue_url: names.work_high_queue_url,
            high_priority: 100,
            finalize_queue_url: names.finalize_queue_url,
            chunk_size: 1000,
            task_concurrency: 32,
            task_max_attempts: 5,
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_millis(5000),
            report_file_max_bytes: 64 * 1024 * 1024,
            chunk_lease: Duration::from_secs(900),
            worker_margin: Duration::from_secs(60),
            max_receives: 5,
            preparing_timeout: Duration::from_secs(7200),
            work_dlq_urls: names.work_dlq_urls,
            status_check_interval: Duration::from_millis(5000),
            allowed_buckets: vec!["*".into()],
            s3_force_path_style: true,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            multipart_part_size: DEFAULT_MULTIPART_PART_SIZE,
            planner_budget: Duration::from_secs(600),
            planner_max_backlog: 100_000,
            stall_timeout: Duration::from_secs(15 * 86_400),
            planner_backoff: Duration::from_secs(300),
            generator_scan_span: 100_000,
            retry_visibility_secs: 10,
            finalizer_budget: Duration::from_secs(600),
            allowed_operations: Vec::new(),
            powers: Power::ALL.to_vec(),
            role_arn_pattern: None,
            event_bus: None,
            prices: Default::default(),
            account_id: None,
            report_retry_window: Duration::from_secs(3600),
        }
    }

    /// Why this stack refuses a job's `RoleArn`, as (field, reason): with a role-ARN pattern,
    /// a missing role or one the pattern does not match.
    pub fn role_refusal(&self, role_arn: Option<&str>) -> Option<(String, String)> {
        let pattern = self.role_arn_pattern.as_deref()?;
        let reason = match role_arn {
            None => format!(
                "is required: this stack runs each job's tasks as its RoleArn, which must match {pattern}"
            ),
            Some(role) if !glob_match(pattern, role) => format!(
                "{role} is not a role this stack may act as (its RoleArnPattern is {pattern})"
            ),
            Some(_) => return None,
        };
        Some(("RoleArn".into(), reason))
    }

    /// Why this stack refuses a job, as (field, reason): its operation
    /// ([`Config::operation_refusal`]) or its `RoleArn` ([`Config::role_refusal`]). The API
    /// asks it of a new job (403), the worker of each chunk (`AccessDenied` rows), so a change
    /// of the stack's settings after a job was created is enforced too.
    pub fn job_refusal(
        &self,
        op: Option<&JobOperation>,
        role_arn: Option<&str>,
    ) -> Option<(String, String)> {
        op.and_then(|op| self.operation_refusal(op))
            .or_else(|| self.role_refusal(role_arn))
    }

    /// Why this stack refuses to run `op`, as (field, reason): an operation outside
    /// `BATCHOPS_ALLOWED_OPERATIONS`, or a parameter asking for a power not enabled.
    pub fn operation_refusal(&self, op: &JobOperation) -> Option<(String, String)> {
        let name = op.name();
        let listed = self.allowed_operations.is_empty()
            || self
                .allowed_operations
                .iter()
                .any(|o| o == "*" || o == name);
        if !listed {
            return Some((
                format!("Operation.{name}"),
                format!(
                    "{name} is not among this stack's allowed operations ({}); its deployer \
                     sets them with the AllowedOperations parameter",
                    self.allowed_operations.join(", ")
                ),
            ));
        }
        op.powers()
            .into_iter()
            .find(|(_, power)| !self.powers.contains(power))
            .map(|(field, power)| {
                let (env, parameter) = power.setting();
                (
                    field,
                    format!(
                        "this stack does not allow {power:?}; its deployer enables it with the \
                         {parameter} parameter ({env})"
                    ),
                )
            })
    }

    /// Whether jobs may touch `bucket`: an entry names it, or matches it with `*` and `?`
    /// wildcards as IAM does (`data-*`; `*` alone allows any).
    pub fn bucket_allowed(&self, bucket: &str) -> bool {
        self.allowed_buckets.iter().any(|b| glob_match(b, bucket))
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The physical names of one stack's resources.
#[derive(Clone, Debug)]
pub struct StackNames {
    pub table: String,
    pub bucket: String,
    pub plan_queue_url: String,
    pub work_queue_url: String,
    pub work_high_queue_url: String,
    pub finalize_queue_url: String,
    /// The queue S3 notifies of objects created under `intake/` (consumed by the planner).
    pub intake_queue_url: String,
    /// The dead-letter queues of the work queues.
    pub work_dlq_urls: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 5] = [
        ("BATCHOPS_TABLE", "t"),
        ("BATCHOPS_BUCKET", "b"),
        ("BATCHOPS_PLAN_QUEUE_URL", "p"),
        ("BATCHOPS_WORK_QUEUE_URL", "w"),
        ("BATCHOPS_FINALIZE_QUEUE_URL", "f"),
    ];

    #[test]
    fn defaults_apply() {
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(c.chunk_size, 1000);
        assert_eq!(c.task_concurrency, 32);
        assert_eq!(c.task_max_attempts, 5);
        assert_eq!(c.planner_budget, Duration::from_secs(600));
        assert!(c.allowed_buckets.is_empty());
        assert!(!c.bucket_allowed("anything"));
        assert_eq!(c.multipart_threshold, 5 << 30);
        assert_eq!(c.multipart_part_size, 512 << 20);
    }

    /// The chunk lease, the worker's deadline margin, the planner's backpressure and the stall
    /// timeout each default as documented and follow their own variable.
    #[test]
    fn liveness_tunables_default_and_follow_their_variables() {
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(c.chunk_lease, Duration::from_secs(900));
        assert_eq!(c.worker_margin, Duration::from_secs(60));
        assert_eq!(c.planner_max_backlog, 100_000);
        assert_eq!(c.planner_backoff, Duration::from_secs(300));
        assert_eq!(c.stall_timeout, Duration::from_secs(15 * 86_400));
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("BATCHOPS_CHUNK_LEASE_SECS", "120"),
            ("BATCHOPS_WORKER_MARGIN_SECS", "30"),
            ("BATCHOPS_PLANNER_MAX_BACKLOG", "0"),
            ("BATCHOPS_PLANNER_BACKOFF_SECS", "5000"),
            ("BATCHOPS_STALL_SECS", "3600"),
        ]);
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(c.chunk_lease, Duration::from_secs(120));
        assert_eq!(c.worker_margin, Duration::from_secs(30));
        assert_eq!(c.planner_max_backlog, 0);
        // SQS delays a message at most 15 minutes.
        assert_eq!(c.planner_backoff, Duration::from_secs(900));
        assert_eq!(c.stall_timeout, Duration::from_secs(3600));
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_CHUNK_LEASE_SECS", "0"));
        assert!(Config::from_lookup(env(&pairs)).is_err(), "a lease of 0 s");
    }

    /// A deployed stack grants no opt-in power unless told; `batchops dev` grants each unless
    /// told otherwise; a bad value or an unknown operation name is a configuration error.
    #[test]
    fn powers_are_off_in_a_stack_and_on_in_dev_unless_set() {
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert!(c.powers.is_empty() && c.allowed_operations.is_empty());
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_ALLOW_DELETE", "true"));
        pairs.push(("BATCHOPS_ALLOW_PUBLIC_GRANTS", "false"));
        pairs.push((
            "BATCHOPS_ALLOWED_OPERATIONS",
            "S3DeleteObject,S3PutObjectCopy",
        ));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(c.powers, [Power::Delete]);
        assert_eq!(c.allowed_operations, ["S3DeleteObject", "S3PutObjectCopy"]);
        let names = StackNames {
            table: "t".into(),
            bucket: "b".into(),
            plan_queue_url: "p".into(),
            work_queue_url: "w".into(),
            work_high_queue_url: "w".into(),
            finalize_queue_url: "f".into(),
            intake_queue_url: "i".into(),
            work_dlq_urls: vec![],
        };
        let dev = Config::for_stack_with(names.clone(), |_| None).unwrap();
        assert_eq!(dev.powers, Power::ALL);
        let told =
            Config::for_stack_with(names, env(&[("BATCHOPS_ALLOW_DELETE", "false")])).unwrap();
        assert!(!told.powers.contains(&Power::Delete) && told.powers.len() == 3);
        for (name, value) in [
            ("BATCHOPS_ALLOW_DELETE", "yes please"),
            ("BATCHOPS_ALLOWED_OPERATIONS", "S3CopyEverything"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((name, value));
            let e = Config::from_lookup(env(&pairs)).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    /// Security issue §7: a few patterns instead of hundreds of names, which would not fit
    /// IAM's inline-policy size nor Lambda's 4 KB environment.
    #[test]
    fn allowed_buckets_may_be_wildcard_patterns() {
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_ALLOWED_BUCKETS", "b,data-*,logs-20??"));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        for ok in ["b", "data-", "data-eu-1", "logs-2026"] {
            assert!(c.bucket_allowed(ok), "{ok}");
        }
        for no in ["bb", "mydata-x", "logs-202", "logs-20261"] {
            assert!(!c.bucket_allowed(no), "{no}");
        }
    }

    #[test]
    fn role_arns_are_matched_as_iam_matches_wildcards() {
        let p = "arn:aws:iam::123456789012:role/batchops-job-*";
        assert!(glob_match(
            p,
            "arn:aws:iam::123456789012:role/batchops-job-copy"
        ));
        assert!(glob_match(
            p,
            "arn:aws:iam::123456789012:role/batchops-job-"
        ));
        assert!(!glob_match(p, "arn:aws:iam::123456789012:role/admin"));
        assert!(!glob_match(
            p,
            "arn:aws:iam::999999999999:role/batchops-job-copy"
        ));
        assert!(glob_match("a?c*", "abcdef") && !glob_match("a?c", "ac"));
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_ROLE_ARN_PATTERN", p));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(
            c.role_refusal(Some("arn:aws:iam::123456789012:role/batchops-job-x")),
            None
        );
        assert!(c.role_refusal(None).unwrap().1.contains("is required"));
        assert!(
            c.role_refusal(Some("arn:aws:iam::1:role/x"))
                .unwrap()
                .1
                .contains(p)
        );
        let open = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(
            open.role_refusal(None),
            None,
            "no pattern: the stack's role acts"
        );
    }

    #[test]
    fn multipart_settings_parse_and_part_size_is_bounded() {
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_MULTIPART_THRESHOLD_BYTES", "10485760"));
        pairs.push(("BATCHOPS_MULTIPART_PART_BYTES", "5242880"));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(
            (c.multipart_threshold, c.multipart_part_size),
            (10 << 20, 5 << 20)
        );
        let mut small = BASE.to_vec();
        small.push(("BATCHOPS_MULTIPART_PART_BYTES", "1024"));
        let err = Config::from_lookup(env(&small)).unwrap_err();
        assert!(
            err.to_string().contains("BATCHOPS_MULTIPART_PART_BYTES"),
            "{err}"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = Config::from_lookup(env(&BASE[1..])).unwrap_err();
        assert!(err.to_string().contains("BATCHOPS_TABLE"), "{err}");
    }

    #[test]
    fn bad_number_is_named() {
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_CHUNK_SIZE", "lots"));
        let err = Config::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("BATCHOPS_CHUNK_SIZE"), "{err}");
    }

    #[test]
    fn a_zero_planner_budget_is_accepted_and_other_zeros_are_not() {
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_PLANNER_BUDGET_SECS", "0"));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(c.planner_budget, Duration::ZERO, "one chunk per invocation");
        let mut zero_chunks = BASE.to_vec();
        zero_chunks.push(("BATCHOPS_CHUNK_SIZE", "0"));
        let err = Config::from_lookup(env(&zero_chunks)).unwrap_err();
        assert!(err.to_string().contains("BATCHOPS_CHUNK_SIZE"), "{err}");
    }

    #[test]
    fn max_receives_past_what_sqs_retention_allows_is_refused() {
        let with = |v: &'static str| {
            let mut pairs = BASE.to_vec();
            pairs.push(("BATCHOPS_MAX_RECEIVES", v));
            Config::from_lookup(env(&pairs))
        };
        assert_eq!(with("200").unwrap().max_receives, 200);
        let err = with("201").unwrap_err().to_string();
        assert!(
            err.contains("BATCHOPS_MAX_RECEIVES") && err.contains("200"),
            "{err}"
        );
        assert!(with("0").is_err());
        // The template's bound is the same.
        let template = include_str!("../../../template.yaml");
        let param = &template[template.find("  MaxReceiveCount:").unwrap()..];
        let param = &param[..param.find("Description").unwrap()];
        assert!(
            param.contains(&format!("MaxValue: {MAX_RECEIVES_BOUND}")),
            "{param}"
        );
    }

    #[test]
    fn allow_list_parses() {
        let mut pairs = BASE.to_vec();
        pairs.push(("BATCHOPS_ALLOWED_BUCKETS", " a, b ,"));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert!(c.bucket_allowed("a") && c.bucket_allowed("b") && !c.bucket_allowed("c"));
    }
}
