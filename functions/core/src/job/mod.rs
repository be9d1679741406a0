//! Jobs: what the user asked for ([`spec`], built from [`arn`], [`timestamp`] and [`validate`]),
//! where it stands ([`status`]) and the stored record
//! ([`Job`]) that the API describes and the pipeline counts into.

pub mod arn;
pub mod spec;
pub mod status;
pub mod timestamp;
pub mod validate;

pub use spec::CreateJobRequest;
pub use status::JobStatus;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a principal's identity reads when the request carried none (`batchops dev`, the
/// emulator's S3 events).
pub const NOT_PROVIDED: &str = "not provided";

/// Who acted on a job and through what: the IAM principal of an API call (API Gateway's request
/// context) or of an intake upload (the S3 event's `userIdentity.principalId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub principal: Option<String>,
    /// `API` or `S3 intake`.
    pub via: &'static str,
}

impl Actor {
    pub fn api(principal: Option<String>) -> Self {
        Self {
            principal: principal.filter(|p| !p.is_empty()),
            via: "API",
        }
    }

    pub fn intake(principal: Option<String>) -> Self {
        Self {
            principal: principal.filter(|p| !p.is_empty()),
            via: "S3 intake",
        }
    }

    /// The principal, or [`NOT_PROVIDED`].
    pub fn name(&self) -> &str {
        self.principal.as_deref().unwrap_or(NOT_PROVIDED)
    }

    pub fn entry(&self, at: &str) -> AuditEntry {
        AuditEntry {
            by: self.name().to_string(),
            via: self.via.to_string(),
            at: at.to_string(),
        }
    }
}

/// The actions a job's `Audit` records, each with who did it last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Audited {
    Created,
    Confirmed,
    Cancelled,
    Paused,
    Resumed,
}

impl Audited {
    pub const ALL: [Audited; 5] = [
        Self::Created,
        Self::Confirmed,
        Self::Cancelled,
        Self::Paused,
        Self::Resumed,
    ];

    /// The key in DescribeJob's `Audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Confirmed => "Confirmed",
            Self::Cancelled => "Cancelled",
            Self::Paused => "Paused",
            Self::Resumed => "Resumed",
        }
    }
}

/// One line of a job's `Audit` (beyond AWS): who, through what, when. Pause and resume keep
/// the latest only (a job may cycle through them without bound); the logs keep every one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditEntry {
    pub by: String,
    pub via: String,
    pub at: String,
}

/// One entry of a job's `FailureReasons`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureReason {
    pub failure_code: String,
    pub failure_reason: String,
}

/// A job as stored in the jobs table: the request it was created from plus its progress.
///
/// Counters are only ever changed by DynamoDB `ADD` inside the worker's per-chunk transaction,
/// so `succeeded + failed` is exact however often SQS redelivers a chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub request: CreateJobRequest,
    /// Current priority (UpdateJobPriority changes it; starts as the request's).
    pub priority: i64,
    /// Current tags (Put/DeleteJobTagging change them; start as the request's).
    pub tags: Vec<spec::Tag>,
    pub creation_time: String,
    pub termination_date: Option<String>,
    pub failure_reasons: Vec<FailureReason>,
    pub status_update_reason: Option<String>,
    /// Rows read from the manifest so far (final once `planned`).
    pub total_tasks: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Tasks dropped unrun because the job was cancelled or failed.
    pub not_run: u64,
    /// Chunks the planner has queued (final once `planned`).
    pub chunks_total: u64,
    /// Chunks counted by workers, each exactly once.
    pub chunks_done: u64,
    /// Planner invocations that stopped at a checkpoint and continued in a new one.
    pub plan_continuations: u64,
    /// The planner has read the whole manifest.
    pub planned: bool,
    /// The manifest ETag the planner read (recorded even when the request gave none).
    pub manifest_etag: Option<String>,
    /// `ReportCreationDate`, fixed when the job enters `Completing` so that two finalizers
    /// write byte-identical reports.
    pub report_date: Option<String>,
    /// When the job became `Active`, for `ElapsedTimeInActiveSeconds`.
    pub active_since: Option<String>,
    /// When the status last changed (the sweep fails jobs stuck in `Preparing`).
    pub status_time: String,
    /// When a chunk was last counted or planning finished: the sweep's measure of a job that
    /// makes no progress ([`crate::Config::stall_timeout`]).
    pub progress_time: Option<String>,
    /// Who created, confirmed, cancelled, paused and resumed the job (latest of each).
    pub audit: BTreeMap<Audited, AuditEntry>,
    /// Status changes recorded in the job's outbox and not yet published (job events).
    pub pending_events: usize,
    /// What the job's completion report holds, once the finalizer has written it.
    pub report_summary: Option<crate::report::ReportSummary>,
}

/// One status change in a job's outbox, written with the status itself and published to
/// EventBridge after the write ([`crate::adapters::events`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub status: JobStatus,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What ListJobs shows of a job (a `JobListDescriptor`): all the job indexes project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSummary {
    pub job_id: String,
    pub status: JobStatus,
    pub priority: i64,
    pub creation_time: String,
    pub termination_date: Option<String>,
    pub total_tasks: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// The operation's name (`S3PutObjectCopy`, …).
    pub operation: Option<String>,
    pub description: Option<String>,
}

impl JobSummary {
    /// A `JobListDescriptor` for ListJobs.
    pub fn list_descriptor(&self) -> serde_json::Value {
        let mut d = serde_json::json!({
            "JobId": self.job_id,
            "Status": self.status.as_str(),
            "Priority": self.priority,
            "CreationTime": self.creation_time,
            "ProgressSummary": {
                "TotalNumberOfTasks": self.total_tasks,
                "NumberOfTasksSucceeded": self.succeeded,
                "NumberOfTasksFailed": self.failed,
            },
        });
        let obj = d.as_object_mut().expect("json object");
        if let Some(op) = &self.operation {
            obj.insert("Operation".into(), op.clone().into());
        }
        if let Some(desc) = &self.description {
            obj.insert("Description".into(), desc.clone().into());
        }
        if let Some(t) = &self.termination_date {
            obj.insert("TerminationDate".into(), t.clone().into());
        }
        d
    }
}

impl Job {
    /// A fresh job in status `New`.
    pub fn new(job_id: String, request: CreateJobRequest, creation_time: String) -> Self {
        Self {
            job_id,
            status: JobStatus::New,
            priority: request.priority,
            tags: request.tags.clone(),
            request,
            creation_time: creation_time.clone(),
            termination_date: None,
            failure_reasons: Vec::new(),
            status_update_reason: None,
            total_tasks: 0,
            succeeded: 0,
            failed: 0,
            not_run: 0,
            chunks_total: 0,
            chunks_done: 0,
            plan_continuations: 0,
            planned: false,
            manifest_etag: None,
            report_date: None,
            active_since: None,
            status_time: creation_time.clone(),
            progress_time: None,
            audit: BTreeMap::new(),
            pending_events: 0,
            report_summary: None,
        }
    }

    /// The same job, recorded as created by `actor`.
    pub fn created_by(mut self, actor: &Actor) -> Self {
        let entry = actor.entry(&self.creation_time);
        self.audit.insert(Audited::Created, entry);
        self
    }

    /// Every chunk the planner queued has been counted, and the planner is done.
    pub fn reconciled(&self) -> bool {
        self.planned && self.chunks_done >= self.chunks_total
    }

    /// Seconds spent active so far (until termination for finished jobs).
    pub fn elapsed_active_seconds(&self) -> i64 {
        let Some(start) = self.active_since.as_deref().and_then(crate::time::parse) else {
            return 0;
        };
        let end = self
            .termination_date
            .as_deref()
            .and_then(crate::time::parse)
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        (end - start).whole_seconds().max(0)
    }

    /// What ListJobs shows of the job.
    pub fn summary(&self) -> JobSummary {
        JobSummary {
            job_id: self.job_id.clone(),
            status: self.status,
            priority: self.priority,
            creation_time: self.creation_time.clone(),
            termination_date: self.termination_date.clone(),
            total_tasks: self.total_tasks,
            succeeded: self.succeeded,
            failed: self.failed,
            operation: self
                .request
                .operation
                .as_ref()
                .map(|op| op.name().to_string()),
            description: self.request.description.clone(),
        }
    }

    /// `arn:aws:s3:<region>:<account>:job/<id>`, with the account the request named (the S3
    /// Control wire's `x-amz-account-id`), else `account`; none when neither is known.
    pub fn arn(&self, region: &str, account: Option<&str>) -> Option<String> {
        let account = self.request.account_id.as_deref().or(account)?;
        Some(format!("arn:aws:s3:{region}:{account}:job/{}", self.job_id))
    }

    /// The `manifest.json` of the job's completion report, once the job has ended with one
    /// written (`default_bucket`: the stack bucket, where a report without a bucket goes).
    pub fn report_manifest_arn(&self, default_bucket: &str) -> Option<String> {
        let report = &self.request.report;
        let failed_to_write = self
            .failure_reasons
            .iter()
            .any(|f| f.failure_code == "ReportWriteFailed");
        // The finalizer writes no report for a job that ran no task.
        let ran = self.succeeded + self.failed > 0;
        if !self.status.is_terminal()
            || !report.enabled
            || !ran
            || self.report_date.is_none()
            || failed_to_write
        {
            return None;
        }
        let bucket = report
            .bucket
            .as_deref()
            .and_then(spec::parse_bucket_arn)
            .unwrap_or_else(|| default_bucket.to_string());
        let dir = crate::report::report_dir(report.prefix.as_deref(), &self.job_id);
        Some(format!("arn:aws:s3:::{bucket}/{dir}/manifest.json"))
    }

    /// The `Detail` of a "Job Status Change" event: `event`, numbered `sequence` among the
    /// job's events, after `previous`; counts, reasons, description and tags as the job has
    /// them when the event is published.
    pub fn event_detail(
        &self,
        event: &StatusEvent,
        sequence: u64,
        previous: Option<JobStatus>,
        arn: Option<String>,
        default_bucket: &str,
    ) -> serde_json::Value {
        let mut d = serde_json::json!({
            "jobId": self.job_id,
            "jobArn": arn,
            "status": event.status.as_str(),
            "previousStatus": previous.map(|p| p.as_str()),
            "statusUpdateReason": event.reason,
            "time": event.at,
            "sequence": sequence,
            "progressSummary": {
                "TotalNumberOfTasks": self.total_tasks,
                "NumberOfTasksSucceeded": self.succeeded,
                "NumberOfTasksFailed": self.failed,
                "Timers": { "ElapsedTimeInActiveSeconds": self.elapsed_active_seconds() },
            },
            "failureReasons": self.failure_reasons,
            "description": self.request.description,
            "tags": self.tags,
        });
        if event.status.is_terminal()
            && let Some(m) = self.report_manifest_arn(default_bucket)
        {
            d["reportManifest"] = m.into();
        }
        d
    }

    /// Where the generated manifest's `manifest.json` is, once planning has written it (a
    /// `ManifestGenerator` with `EnableManifestOutput`).
    pub fn generated_manifest_arn(&self) -> Option<String> {
        let g = self.request.manifest_generator.as_ref()?.s3();
        if !self.planned || !g.enable_manifest_output {
            return None;
        }
        let out = crate::manifest::generator::ManifestOutput::new(
            g.manifest_output_location.as_ref()?,
            &self.job_id,
        )?;
        Some(format!(
            "arn:aws:s3:::{}/{}",
            out.bucket(),
            out.manifest_key()
        ))
    }

    /// The DescribeJob `Job` document, with S3 Control's field names.
    pub fn describe(&self) -> serde_json::Value {
        let r = &self.request;
        let mut job = serde_json::json!({
            "JobId": self.job_id,
            "Status": self.status.as_str(),
            "Priority": self.priority,
            "Report": r.report,
            "ConfirmationRequired": r.confirmation_required,
            "CreationTime": self.creation_time,
            "ProgressSummary": {
                "TotalNumberOfTasks": self.total_tasks,
                "NumberOfTasksSucceeded": self.succeeded,
                "NumberOfTasksFailed": self.failed,
                "Timers": { "ElapsedTimeInActiveSeconds": self.elapsed_active_seconds() },
            },
        });
        let obj = job.as_object_mut().expect("json object");
        if let Some(op) = &r.operation {
            obj.insert(
                "Operation".into(),
                serde_json::to_value(op).unwrap_or_default(),
            );
        }
        if let Some(m) = &r.manifest {
            obj.insert(
                "Manifest".into(),
                serde_json::to_value(m).unwrap_or_default(),
            );
        }
        if let Some(g) = &r.manifest_generator {
            obj.insert(
                "ManifestGenerator".into(),
                serde_json::to_value(g).unwrap_or_default(),
            );
        }
        if let Some(d) = &r.description {
            obj.insert("Description".into(), d.clone().into());
        }
        if let Some(role) = &r.role_arn {
            obj.insert("RoleArn".into(), role.clone().into());
        }
        if r.dry_run {
            obj.insert("DryRun".into(), true.into());
        }
        if let Some(t) = &self.termination_date {
            obj.insert("TerminationDate".into(), t.clone().into());
        }
        if !self.failure_reasons.is_empty() {
            obj.insert(
                "FailureReasons".into(),
                serde_json::to_value(&self.failure_reasons).unwrap_or_default(),
            );
        }
        if let Some(s) = &self.status_update_reason {
            obj.insert("StatusUpdateReason".into(), s.clone().into());
        }
        if self.status == JobStatus::Suspended {
            obj.insert("SuspendedDate".into(), self.status_time.clone().into());
            obj.insert(
                "SuspendedCause".into(),
                "The job was created with ConfirmationRequired and awaits confirmation \
                 (UpdateJobStatus to Ready)"
                    .into(),
            );
        }
        if let Some(arn) = self.generated_manifest_arn() {
            obj.insert(
                "GeneratedManifestDescriptor".into(),
                serde_json::json!({
                    "Format": "S3InventoryReport_CSV_20211130",
                    "Location": { "ObjectArn": arn },
                }),
            );
        }
        if !self.audit.is_empty() {
            let audit: serde_json::Map<String, serde_json::Value> = self
                .audit
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        serde_json::to_value(v).unwrap_or_default(),
                    )
                })
                .collect();
            obj.insert("Audit".into(), audit.into());
        }
        serde_json::json!({ "Job": job })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(request: serde_json::Value) -> Job {
        let request: CreateJobRequest = serde_json::from_value(request).unwrap();
        Job::new("job-1".into(), request, "2026-01-02T03:04:05.000Z".into())
    }

    #[test]
    fn a_report_naming_its_expected_bucket_owner_is_accepted_and_shown() {
        let j = job(serde_json::json!({
            "Operation": {"S3DeleteObjectTagging": {}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::src/m.csv", "ETag": "e"}},
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::rep", "Format": "Report_CSV_20180820",
                       "ReportScope": "AllTasks", "ExpectedBucketOwner": "123456789012"},
        }));
        assert_eq!(
            j.describe()["Job"]["Report"]["ExpectedBucketOwner"],
            "123456789012"
        );
    }

    #[test]
    fn a_suspended_job_shows_when_and_why_and_a_generated_manifest_its_location() {
        let mut j = job(serde_json::json!({
            "Operation": {"S3DeleteObjectTagging": {}},
            "ManifestGenerator": {"S3JobManifestGenerator": {
                "SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": true,
                "ManifestOutputLocation": {"Bucket": "arn:aws:s3:::out", "ManifestPrefix": "gen/",
                                           "ManifestFormat": "S3InventoryReport_CSV_20211130"}}},
            "Report": {"Enabled": false},
            "ConfirmationRequired": true,
        }));
        let d = j.describe();
        assert!(
            d["Job"].get("SuspendedDate").is_none(),
            "New: not suspended"
        );
        assert!(
            d["Job"].get("GeneratedManifestDescriptor").is_none(),
            "not written before planning ends"
        );
        j.status = JobStatus::Suspended;
        j.planned = true;
        j.status_time = "2026-01-02T03:05:00.000Z".into();
        let d = &j.describe()["Job"];
        assert_eq!(d["SuspendedDate"], "2026-01-02T03:05:00.000Z");
        assert!(
            d["SuspendedCause"]
                .as_str()
                .unwrap()
                .contains("confirmation")
        );
        assert_eq!(
            d["GeneratedManifestDescriptor"],
            serde_json::json!({"Format": "S3InventoryReport_CSV_20211130",
                               "Location": {"ObjectArn": "arn:aws:s3:::out/gen/job-job-1/manifest.json"}})
        );
    }

    #[test]
    fn an_event_names_the_report_only_of_a_job_that_ended_with_one() {
        let mut j = job(serde_json::json!({
            "Operation": {"S3DeleteObjectTagging": {}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::src/m.csv", "ETag": "e"}},
            "Report": {"Enabled": true, "Prefix": "r/", "ReportScope": "AllTasks"},
        }));
        let ev = |status| StatusEvent {
            status,
            at: "t".into(),
            reason: None,
        };
        j.status = JobStatus::Complete;
        j.report_date = Some("2026-01-02T03:04:05.000Z".into());
        let d = j.event_detail(
            &ev(JobStatus::Complete),
            7,
            Some(JobStatus::Completing),
            None,
            "stack",
        );
        assert!(
            d.get("reportManifest").is_none(),
            "no task ran: no report was written"
        );
        j.succeeded = 2;
        let d = j.event_detail(
            &ev(JobStatus::Complete),
            7,
            Some(JobStatus::Completing),
            None,
            "stack",
        );
        assert_eq!(
            d["reportManifest"],
            "arn:aws:s3:::stack/r/job-job-1/manifest.json"
        );
        assert_eq!(
            (d["sequence"].as_u64(), d["previousStatus"].as_str()),
            (Some(7), Some("Completing"))
        );
        let d = j.event_detail(
            &ev(JobStatus::Completing),
            6,
            Some(JobStatus::Active),
            None,
            "stack",
        );
        assert!(
            d.get("reportManifest").is_none(),
            "only on the event of the ended job"
        );
        assert_eq!(
            j.arn("eu-west-1", Some("111122223333")).as_deref(),
            Some("arn:aws:s3:eu-west-1:111122223333:job/job-1")
        );
        assert_eq!(j.arn("eu-west-1", None), None);
    }
}
