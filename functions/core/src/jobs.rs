//! The job service: what the API (and the S3 intake) can do to jobs — create, describe, list,
//! change status, priority and tags. Every status change is checked against the status machine
//! and written conditionally, so a request racing the pipeline either wins cleanly or gets a
//! conflict.

use crate::adapters::dynamo::{PageKey, StatusChange};
use crate::chunk::PlanMessage;
use crate::job::spec::{Invalid, Tag, validate_tags};
use crate::job::{Actor, Audited, CreateJobRequest, Job, JobStatus};
use crate::{Deps, Error};
use md5::{Digest, Md5};
use tracing::info;

/// Why a request on jobs was refused. The API maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: the request is malformed; names the field.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// 403: a bucket outside the stack's allow-list.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("no job {0}")]
    NotFound(String),
    /// 409: the same ClientRequestToken with a different body, or an illegal transition.
    #[error("{0}")]
    Conflict(String),
    /// 413: the job request is larger than a job stores ([`MAX_REQUEST_BYTES`]).
    #[error("{0}")]
    TooLarge(String),
    /// 5xx: the store or a queue failed; retrying may help.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl ServiceError {
    fn from_store(e: Error) -> Self {
        match e {
            Error::JobNotFound(id) => ServiceError::NotFound(id),
            Error::StatusConflict { job_id, actual, .. } => ServiceError::Conflict(format!(
                "job {job_id} is {actual}; the change no longer applies"
            )),
            other => ServiceError::Internal(other),
        }
    }
}

/// The largest job request stored (as JSON): the job item carries it, and every chunk count
/// and status change writes that item, so its size multiplies their write units (and
/// DynamoDB's item limit is 400 KB).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A digest of the request, to tell a retried CreateJob from a different one with the same token.
fn request_digest(request: &CreateJobRequest) -> String {
    let json = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(Md5::digest(json))
}

/// Validates and creates a job, then queues it for planning. With a `ClientRequestToken`, the
/// same request returns the same JobId and a different request is a conflict.
pub async fn create_job(
    deps: &Deps,
    request: CreateJobRequest,
    actor: &Actor,
) -> Result<String, ServiceError> {
    request.validate()?;
    // A report without a bucket goes to the stack's own bucket, where reports live under
    // reports/ (the finalizer may write nowhere else there): said in the request, so the
    // stack-bucket rules below judge it and DescribeJob shows where it goes.
    let mut request = request;
    if request.report.enabled && request.report.bucket.is_none() {
        request.report.bucket = Some(format!("arn:aws:s3:::{}", deps.config.bucket));
        request
            .report
            .prefix
            .get_or_insert_with(|| "reports".into());
    }
    let size = serde_json::to_vec(&request).map_or(0, |j| j.len());
    if size > MAX_REQUEST_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "the job request is {size} bytes; a job stores at most {MAX_REQUEST_BYTES} bytes of \
             request (fewer filter entries, tags or user arguments)"
        )));
    }
    for (field, bucket) in request.buckets() {
        if !deps.config.bucket_allowed(&bucket) {
            return Err(ServiceError::Forbidden(format!(
                "{field}: bucket {bucket} is not in this stack's allowed buckets"
            )));
        }
    }
    if let Some((field, reason)) = request.stack_bucket_refusal(&deps.config.bucket) {
        return Err(ServiceError::Forbidden(format!("{field}: {reason}")));
    }
    if let Some((field, reason)) = deps
        .config
        .job_refusal(request.operation.as_ref(), request.role_arn.as_deref())
    {
        return Err(ServiceError::Forbidden(format!("{field}: {reason}")));
    }
    let job_id = deps.ids.uuid();
    let job = Job::new(job_id.clone(), request, deps.clock.now_iso()).created_by(actor);
    match job.request.client_request_token.clone() {
        Some(token) => {
            let digest = request_digest(&job.request);
            if let Some((existing, stored)) =
                deps.store.create_with_token(&job, &token, &digest).await?
            {
                if stored == digest {
                    info!(
                        job_id = existing,
                        "ClientRequestToken seen before; same job"
                    );
                    return Ok(existing);
                }
                return Err(ServiceError::Conflict(format!(
                    "ClientRequestToken {token} was used for a different request (job {existing})"
                )));
            }
        }
        None => deps.store.create(&job).await?,
    }
    deps.queues
        .send_plan(&PlanMessage {
            job_id: job_id.clone(),
        })
        .await?;
    info!(job_id, by = actor.name(), via = actor.via, "job created");
    Ok(job_id)
}

/// Records a job that failed before it could be created properly (a bad intake object).
pub async fn create_failed_job(
    deps: &Deps,
    request: CreateJobRequest,
    code: &str,
    reason: &str,
    actor: &Actor,
) -> crate::Result<String> {
    let job_id = deps.ids.uuid();
    let now = deps.clock.now_iso();
    let mut job = Job::new(job_id.clone(), request, now.clone()).created_by(actor);
    job.status = JobStatus::Failed;
    job.termination_date = Some(now);
    job.failure_reasons.push(crate::job::FailureReason {
        failure_code: code.into(),
        failure_reason: reason.into(),
    });
    // A redelivered S3 event must not record the same refusal twice.
    if let Some(token) = job.request.client_request_token.clone() {
        let digest = request_digest(&job.request);
        if let Some((existing, _)) = deps.store.create_with_token(&job, &token, &digest).await? {
            return Ok(existing);
        }
    } else {
        deps.store.create(&job).await?;
    }
    info!(
        job_id,
        code,
        reason,
        by = actor.name(),
        via = actor.via,
        "recorded a failed job"
    );
    Ok(job_id)
}

pub async fn describe_job(deps: &Deps, job_id: &str) -> Result<Job, ServiceError> {
    deps.store
        .require(job_id)
        .await
        .map_err(ServiceError::from_store)
}

/// UpdateJobStatus: `Ready` confirms a `Suspended` job; `Cancelled` cancels any job that has
/// not ended; beyond AWS, `Paused` pauses an active job and `Active` resumes it.
pub async fn update_status(
    deps: &Deps,
    job_id: &str,
    requested: &str,
    reason: Option<String>,
    actor: &Actor,
) -> Result<Job, ServiceError> {
    let requested = JobStatus::parse(requested)
        .filter(|s| {
            matches!(
                s,
                JobStatus::Ready | JobStatus::Cancelled | JobStatus::Paused | JobStatus::Active
            )
        })
        .ok_or_else(|| Invalid {
            field: "RequestedJobStatus".into(),
            message: "must be Ready, Cancelled, Paused or Active".into(),
        })?;
    if let Some(r) = &reason
        && r.chars().count() > 256
    {
        return Err(Invalid {
            field: "StatusUpdateReason".into(),
            message: "must be at most 256 characters".into(),
        }
        .into());
    }
    let action = match requested {
        JobStatus::Ready => Audited::Confirmed,
        JobStatus::Cancelled => Audited::Cancelled,
        JobStatus::Paused => Audited::Paused,
        _ => Audited::Resumed,
    };
    let change = || {
        let c = StatusChange::default().by(action, actor);
        match &reason {
            Some(r) => c.reason(r.clone()),
            None => c,
        }
    };
    // A few tries: the pipeline may move the job between our read and our write.
    for _ in 0..3 {
        let job = deps
            .store
            .require(job_id)
            .await
            .map_err(ServiceError::from_store)?;
        let from = job.status;
        // One rule for what may be asked in which status: the one DescribeJob shows.
        if !from.requestable().contains(&requested) {
            return Err(illegal(
                &job,
                match requested {
                    JobStatus::Ready => "Ready (only a Suspended job can be confirmed)",
                    JobStatus::Cancelled => "Cancelled (it has ended or is ending)",
                    JobStatus::Paused => "Paused (only an Active job can be paused)",
                    _ => "Active (only a paused job can be resumed)",
                },
            ));
        }
        let result = match requested {
            JobStatus::Ready => {
                let out = deps
                    .store
                    .transition(job_id, &[from], JobStatus::Ready, change())
                    .await;
                if out.is_ok() {
                    deps.queues
                        .send_plan(&PlanMessage {
                            job_id: job_id.into(),
                        })
                        .await?;
                }
                out
            }
            JobStatus::Cancelled => cancel(deps, &job, change()).await,
            JobStatus::Paused => {
                let out = deps
                    .store
                    .transition(job_id, &[from], JobStatus::Pausing, change())
                    .await;
                match out {
                    // Every chunk is counted already: nothing is left to stop, so no worker
                    // will ever settle the pause. It is `Paused` now.
                    Ok(j) if j.reconciled() => {
                        Ok(deps.store.settle_pause(job_id).await?.unwrap_or(j))
                    }
                    other => other,
                }
            }
            _ => {
                let out = deps
                    .store
                    .transition(job_id, &[from], JobStatus::Active, change())
                    .await;
                if out.is_ok() {
                    // The chunks that reached a worker during the pause run now.
                    crate::parking::unpark(deps, job_id, job.priority).await?;
                }
                match &out {
                    // Paused while planning: planning goes on from its checkpoint.
                    Ok(j) if !j.planned => {
                        deps.queues
                            .send_plan(&PlanMessage {
                                job_id: job_id.into(),
                            })
                            .await?
                    }
                    // Every chunk finished while paused: nothing else will end the job.
                    Ok(j) if j.reconciled() => deps.queues.finalize(job_id).await?,
                    _ => {}
                }
                out
            }
        };
        match result {
            Ok(job) => {
                info!(job_id, action = action.as_str(), by = actor.name(), via = actor.via, status = %job.status, "job status changed");
                return Ok(job);
            }
            Err(Error::StatusConflict { .. }) => continue,
            Err(e) => return Err(ServiceError::from_store(e)),
        }
    }
    Err(ServiceError::Conflict(format!(
        "job {job_id} kept changing status; try again"
    )))
}

fn illegal(job: &Job, wanted: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "job {} is {}; it cannot become {wanted}",
        job.job_id, job.status
    ))
}

/// Cancels a job. One that has queued no chunk ends at once; otherwise it goes `Cancelling`,
/// workers drop its remaining chunks unrun, and the finalizer ends it with a report of what ran.
async fn cancel(deps: &Deps, job: &Job, change: StatusChange) -> crate::Result<Job> {
    // Nothing is queued for a `New` or `Suspended` job: it ends in one conditional write (a
    // planner that starts later finds it cancelled). Any other goes `Cancelling`: a planner
    // may be queuing chunks (a `Ready` job's too), and it closes planning on seeing that.
    if matches!(job.status, JobStatus::New | JobStatus::Suspended) {
        let cancelled = deps
            .store
            .transition(&job.job_id, &[job.status], JobStatus::Cancelled, change)
            .await?;
        crate::lifecycle::clean_up_later(deps, &job.job_id).await;
        return Ok(cancelled);
    }
    let cancelling = deps
        .store
        .transition(&job.job_id, &[job.status], JobStatus::Cancelling, change)
        .await?;
    if matches!(job.status, JobStatus::Pausing | JobStatus::Paused) {
        // Its parked chunks are counted as not run by the workers they go to.
        crate::parking::unpark(deps, &job.job_id, job.priority).await?;
    }
    if cancelling.reconciled() {
        deps.queues.finalize(&job.job_id).await?;
    }
    Ok(cancelling)
}

pub async fn update_priority(deps: &Deps, job_id: &str, priority: i64) -> Result<(), ServiceError> {
    if !(0..=i64::from(i32::MAX)).contains(&priority) {
        return Err(Invalid {
            field: "Priority".into(),
            message: "must be between 0 and 2147483647".into(),
        }
        .into());
    }
    if !deps.store.set_priority(job_id, priority).await? {
        return Err(ServiceError::NotFound(job_id.into()));
    }
    Ok(())
}

pub async fn put_tags(deps: &Deps, job_id: &str, tags: &[Tag]) -> Result<(), ServiceError> {
    validate_tags("Tags", tags, 50)?;
    if !deps.store.set_tags(job_id, tags).await? {
        return Err(ServiceError::NotFound(job_id.into()));
    }
    Ok(())
}

/// Index reads one ListJobs call makes at most.
pub const LIST_PAGES: usize = 10;

/// ListJobs: newest first, optionally filtered by status, paged by an opaque `NextToken`.
pub async fn list_jobs(
    deps: &Deps,
    statuses: &[JobStatus],
    max_results: i32,
    next_token: Option<&str>,
) -> Result<(Vec<crate::job::JobSummary>, Option<String>), ServiceError> {
    if !(1..=1000).contains(&max_results) {
        return Err(Invalid {
            field: "MaxResults".into(),
            message: "must be between 1 and 1000".into(),
        }
        .into());
    }
    let cursor = next_token
        .map(|t| {
            PageKey::from_token(t).ok_or_else(|| Invalid {
                field: "NextToken".into(),
                message: "is not a token this API returned".into(),
            })
        })
        .transpose()?;
    let mut jobs = Vec::new();
    let mut cursor = cursor;
    // A status filter applies after DynamoDB's page limit: read on until the page is full, but
    // for at most LIST_PAGES reads, so one call's work is bounded however few jobs match (the
    // answer then has fewer jobs and a NextToken, as S3 Control's may).
    for _ in 0..LIST_PAGES {
        let want = max_results - jobs.len() as i32;
        let (page, next) = deps.store.list_page(Some(statuses), want, cursor).await?;
        jobs.extend(page);
        cursor = next;
        if cursor.is_none() || jobs.len() as i32 >= max_results {
            break;
        }
    }
    Ok((jobs, cursor.map(|c| c.to_token())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_differ_with_the_body() {
        let a: CreateJobRequest = serde_json::from_value(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": []}}, "Report": {"Enabled": false}
        }))
        .unwrap();
        let mut b = a.clone();
        b.priority = 3;
        assert_eq!(request_digest(&a), request_digest(&a.clone()));
        assert_ne!(request_digest(&a), request_digest(&b));
    }
}
