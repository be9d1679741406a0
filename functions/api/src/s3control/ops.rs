//! The eight job operations on S3 Control's REST-XML wire, under `/v20180820/jobs`.
//!
//! Each handler converts the XML (or query) to what the JSON API takes, calls the same
//! [`batchops_core::jobs`] function, and converts the answer back with the model's shapes
//! ([`super::xml`]), so a job is one job whichever protocol made or reads it. Routing uses
//! the path only: `Host` (which stock clients prefix with the account id) is never read, and
//! absolute-form targets (what a client sends through `HTTP_PROXY`) route like any other.
//! The account comes from `x-amz-account-id`, which every client sends.
//!
//! Errors are `ErrorResponse` documents with the model's codes; [`wire_error`] maps the job
//! service's refusals per operation (an illegal status change is `JobStatusException`, a
//! reused `ClientRequestToken` `IdempotencyException`, …).

use super::xml;
use crate::{Caller, MAX_BODY_BYTES, parse_list_query};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use batchops_core::Deps;
use batchops_core::job::CreateJobRequest;
use batchops_core::job::spec::Tag;
use batchops_core::jobs::{self, ServiceError};
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::error;

/// The path prefix every S3 Control operation has.
pub const PREFIX: &str = "/v20180820";

/// The operations, for the per-operation error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    CreateJob,
    DescribeJob,
    ListJobs,
    UpdateJobStatus,
    UpdateJobPriority,
    GetJobTagging,
    PutJobTagging,
    DeleteJobTagging,
    /// A path or method the wire does not have.
    Unknown,
}

impl Op {
    /// The code for a malformed request: ListJobs models `InvalidRequestException`, the
    /// others `BadRequestException`.
    fn bad_request(self) -> &'static str {
        match self {
            Op::ListJobs => "InvalidRequestException",
            _ => "BadRequestException",
        }
    }
}

/// An error answer on the wire.
#[derive(Debug)]
pub struct WireError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl WireError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(op: Op, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, op.bad_request(), message)
    }
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        let request_id = request_id();
        let sender = !self.status.is_server_error();
        let body = xml::error_body(self.code, &self.message, &request_id, sender);
        let mut r = (self.status, body).into_response();
        finish(&mut r, &request_id, true);
        r
    }
}

/// A 403 `AccessDenied` on the wire (the browser guard's refusal on wire paths).
pub fn access_denied(message: String) -> Response {
    WireError::new(StatusCode::FORBIDDEN, "AccessDenied", message).into_response()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().to_uppercase()
}

fn finish(r: &mut Response, request_id: &str, xml_body: bool) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amz-request-id", v);
    }
    if xml_body {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
    } else {
        h.remove(header::CONTENT_TYPE);
    }
}

/// A 200 with an XML document whose root is `root` (also the model's output shape).
fn reply(root: &str, value: &Value) -> Response {
    let mut r = (StatusCode::OK, xml::encode(root, root, value)).into_response();
    finish(&mut r, &request_id(), true);
    r
}

/// A 200 with no body (Put/DeleteJobTagging).
fn empty() -> Response {
    let mut r = StatusCode::OK.into_response();
    finish(&mut r, &request_id(), false);
    r
}

/// Maps a refusal of the job service to the operation's modeled error.
pub fn wire_error(op: Op, e: ServiceError) -> WireError {
    match e {
        ServiceError::Invalid(i) if i.field == "NextToken" => WireError::new(
            StatusCode::BAD_REQUEST,
            "InvalidNextTokenException",
            i.to_string(),
        ),
        ServiceError::Invalid(i) => WireError::bad(op, i.to_string()),
        ServiceError::Forbidden(m) => WireError::new(StatusCode::FORBIDDEN, "AccessDenied", m),
        ServiceError::NotFound(id) => WireError::new(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            format!("no job {id}"),
        ),
        ServiceError::Conflict(m) => {
            let code = match op {
                Op::CreateJob => "IdempotencyException",
                Op::UpdateJobStatus => "JobStatusException",
                _ => "BadRequestException",
            };
            WireError::new(StatusCode::CONFLICT, code, m)
        }
        ServiceError::TooLarge(m) => {
            WireError::new(StatusCode::PAYLOAD_TOO_LARGE, op.bad_request(), m)
        }
        ServiceError::Internal(e) => {
            error!(error = %e, ?op, "request failed");
            WireError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServiceException",
                "the service could not complete the request; retry later",
            )
        }
    }
}

/// The S3 Control routes, to nest at [`PREFIX`].
pub fn router() -> Router<Arc<Deps>> {
    Router::new()
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{id}", get(describe_job))
        .route("/jobs/{id}/status", post(update_status))
        .route("/jobs/{id}/priority", post(update_priority))
        .route(
            "/jobs/{id}/tagging",
            get(get_tagging).put(put_tagging).delete(delete_tagging),
        )
        .fallback(|| async {
            WireError::new(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                "no such S3 Control operation: batchops serves the eight job operations \
                 under /v20180820/jobs",
            )
        })
        .method_not_allowed_fallback(|| async {
            WireError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "this method is not an S3 Control operation on this path (an https:// endpoint \
                 through an HTTP proxy arrives as CONNECT: use an http:// endpoint)",
            )
        })
}

/// The account of the request: `x-amz-account-id`, 12 digits.
fn account(op: Op, headers: &HeaderMap) -> Result<String, WireError> {
    let Some(v) = headers.get("x-amz-account-id") else {
        return Err(WireError::bad(
            op,
            "x-amz-account-id: the header is required (the 12-digit account id)",
        ));
    };
    let v = v.to_str().unwrap_or_default();
    if v.len() != 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WireError::bad(
            op,
            format!("x-amz-account-id: {v:?} is not a 12-digit account id"),
        ));
    }
    Ok(v.to_string())
}

/// A job id as the model allows it (`[a-zA-Z0-9\-\_]+`, 5 to 36 characters); anything else
/// cannot name a job.
fn job_id(id: &str) -> Result<&str, WireError> {
    let ok = (5..=36).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(wire_error(Op::Unknown, ServiceError::NotFound(id.into())))
    }
}

fn body(op: Op, body: Result<Bytes, BytesRejection>) -> Result<Bytes, WireError> {
    crate::body_bytes(body).map_err(|e| match e {
        crate::BodyError::TooLarge(n) => WireError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            op.bad_request(),
            format!(
                "the body is {}; at most {MAX_BODY_BYTES} bytes are accepted",
                n.map_or_else(|| "too large".to_string(), |n| format!("{n} bytes"))
            ),
        ),
        crate::BodyError::Rejected(_, text) => WireError::bad(op, text),
    })
}

fn decode(op: Op, bytes: &[u8], root: &str) -> Result<Value, WireError> {
    xml::decode(bytes, root).map_err(|e| WireError::bad(op, e.to_string()))
}

/// Query parameters, decoded; a name outside `allowed` is refused.
fn query(op: Op, raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, WireError> {
    let pairs = crate::form_urlencoded(raw.unwrap_or(""));
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(WireError::bad(op, format!("unknown query parameter {k:?}")));
    }
    Ok(pairs)
}

/// Operations in S3 Control's model that batchops does not run.
const UNSUPPORTED_OPERATIONS: [&str; 2] = ["S3ReplicateObject", "S3UpdateObjectEncryption"];

async fn create_job(
    State(deps): State<Arc<Deps>>,
    Caller(actor): Caller,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, WireError> {
    let op = Op::CreateJob;
    let account = account(op, &headers)?;
    let mut request = decode(op, &body(op, raw)?, "CreateJobRequest")?;
    if let Some(ops) = request.get("Operation").and_then(Value::as_object)
        && let Some(name) = UNSUPPORTED_OPERATIONS
            .iter()
            .find(|n| ops.contains_key(**n))
    {
        return Err(WireError::bad(
            op,
            format!("Operation.{name}: not supported by batchops"),
        ));
    }
    request["AccountId"] = account.into();
    let request: CreateJobRequest = serde_json::from_value(request)
        .map_err(|e| WireError::bad(op, format!("invalid CreateJob body: {e}")))?;
    let job_id = jobs::create_job(&deps, request, &actor)
        .await
        .map_err(|e| wire_error(op, e))?;
    Ok(reply("CreateJobResult", &json!({ "JobId": job_id })))
}

async fn describe_job(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WireError> {
    let op = Op::DescribeJob;
    let account = account(op, &headers)?;
    let job = jobs::describe_job(&deps, job_id(&id)?)
        .await
        .map_err(|e| wire_error(op, e))?;
    let mut answer = job.describe();
    answer["Job"]["JobArn"] = job.arn(&deps.region(), Some(&account)).into();
    Ok(reply("DescribeJobResult", &answer))
}

async fn list_jobs(
    State(deps): State<Arc<Deps>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, WireError> {
    let op = Op::ListJobs;
    account(op, &headers)?;
    query(
        op,
        raw.as_deref(),
        &["jobStatuses", "nextToken", "maxResults"],
    )?;
    let (statuses, max, token) =
        parse_list_query(raw.as_deref()).map_err(|e| WireError::bad(op, e.message))?;
    let (found, next) = jobs::list_jobs(&deps, &statuses, max, token.as_deref())
        .await
        .map_err(|e| wire_error(op, e))?;
    let mut answer =
        json!({ "Jobs": found.iter().map(|j| j.list_descriptor()).collect::<Vec<_>>() });
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    Ok(reply("ListJobsResult", &answer))
}

async fn update_status(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    Caller(actor): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, WireError> {
    let op = Op::UpdateJobStatus;
    account(op, &headers)?;
    let mut requested = None;
    let mut reason = None;
    for (k, v) in query(
        op,
        raw.as_deref(),
        &["requestedJobStatus", "statusUpdateReason"],
    )? {
        match k.as_str() {
            "requestedJobStatus" => requested = Some(v),
            _ => reason = Some(v),
        }
    }
    let requested = requested.ok_or_else(|| {
        WireError::bad(
            op,
            "requestedJobStatus: the query parameter is required (Ready or Cancelled)",
        )
    })?;
    let job = jobs::update_status(&deps, job_id(&id)?, &requested, reason, &actor)
        .await
        .map_err(|e| wire_error(op, e))?;
    let mut answer = json!({"JobId": job.job_id, "Status": job.status.as_str()});
    if let Some(r) = job.status_update_reason {
        answer["StatusUpdateReason"] = r.into();
    }
    Ok(reply("UpdateJobStatusResult", &answer))
}

async fn update_priority(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, WireError> {
    let op = Op::UpdateJobPriority;
    account(op, &headers)?;
    let pairs = query(op, raw.as_deref(), &["priority"])?;
    let priority: i64 = match pairs.as_slice() {
        [(_, v)] => v
            .parse()
            .map_err(|_| WireError::bad(op, format!("priority: {v:?} is not an integer")))?,
        _ => {
            return Err(WireError::bad(
                op,
                "priority: the query parameter is required, once",
            ));
        }
    };
    let id = job_id(&id)?;
    jobs::update_priority(&deps, id, priority)
        .await
        .map_err(|e| wire_error(op, e))?;
    Ok(reply(
        "UpdateJobPriorityResult",
        &json!({"JobId": id, "Priority": priority}),
    ))
}

async fn get_tagging(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WireError> {
    let op = Op::GetJobTagging;
    account(op, &headers)?;
    let job = jobs::describe_job(&deps, job_id(&id)?)
        .await
        .map_err(|e| wire_error(op, e))?;
    Ok(reply("GetJobTaggingResult", &json!({ "Tags": job.tags })))
}

async fn put_tagging(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, WireError> {
    let op = Op::PutJobTagging;
    account(op, &headers)?;
    let id = job_id(&id)?;
    let request = decode(op, &body(op, raw)?, "PutJobTaggingRequest")?;
    let tags: Vec<Tag> = match request.get("Tags") {
        Some(t) => serde_json::from_value(t.clone())
            .map_err(|e| WireError::bad(op, format!("Tags: {e}")))?,
        None => return Err(WireError::bad(op, "Tags: the element is required")),
    };
    if tags.len() > 50 {
        return Err(WireError::new(
            StatusCode::BAD_REQUEST,
            "TooManyTagsException",
            format!("Tags: {} tags; a job has at most 50", tags.len()),
        ));
    }
    jobs::put_tags(&deps, id, &tags)
        .await
        .map_err(|e| wire_error(op, e))?;
    Ok(empty())
}

async fn delete_tagging(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WireError> {
    let op = Op::DeleteJobTagging;
    account(op, &headers)?;
    jobs::put_tags(&deps, job_id(&id)?, &[])
        .await
        .map_err(|e| wire_error(op, e))?;
    Ok(empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchops_core::job::spec::Invalid;

    #[test]
    fn each_refusal_gets_the_operations_modeled_code() {
        let invalid = |field: &str| {
            ServiceError::Invalid(Invalid {
                field: field.into(),
                message: "bad".into(),
            })
        };
        let cases: Vec<(Op, ServiceError, u16, &str)> = vec![
            (
                Op::CreateJob,
                invalid("Priority"),
                400,
                "BadRequestException",
            ),
            (
                Op::ListJobs,
                invalid("MaxResults"),
                400,
                "InvalidRequestException",
            ),
            (
                Op::ListJobs,
                invalid("NextToken"),
                400,
                "InvalidNextTokenException",
            ),
            (
                Op::CreateJob,
                ServiceError::Forbidden("no".into()),
                403,
                "AccessDenied",
            ),
            (
                Op::DescribeJob,
                ServiceError::NotFound("x".into()),
                404,
                "NotFoundException",
            ),
            (
                Op::CreateJob,
                ServiceError::Conflict("t".into()),
                409,
                "IdempotencyException",
            ),
            (
                Op::UpdateJobStatus,
                ServiceError::Conflict("t".into()),
                409,
                "JobStatusException",
            ),
            (
                Op::CreateJob,
                ServiceError::TooLarge("big".into()),
                413,
                "BadRequestException",
            ),
            (
                Op::GetJobTagging,
                ServiceError::Internal(batchops_core::Error::Record("down".into())),
                500,
                "InternalServiceException",
            ),
        ];
        for (op, e, status, code) in cases {
            let w = wire_error(op, e);
            assert_eq!((w.status.as_u16(), w.code), (status, code), "{op:?}");
        }
    }

    #[test]
    fn the_account_header_must_be_twelve_digits() {
        let mut h = HeaderMap::new();
        assert_eq!(
            account(Op::ListJobs, &h).unwrap_err().code,
            "InvalidRequestException"
        );
        h.insert("x-amz-account-id", HeaderValue::from_static("12345"));
        assert_eq!(
            account(Op::CreateJob, &h).unwrap_err().code,
            "BadRequestException"
        );
        h.insert("x-amz-account-id", HeaderValue::from_static("123456789012"));
        assert_eq!(account(Op::CreateJob, &h).unwrap(), "123456789012");
    }

    #[test]
    fn a_job_id_outside_the_model_is_not_found() {
        assert!(job_id("0a1b2c3d-aaaa-bbbb-cccc-0123456789ab").is_ok());
        for bad in ["abc", "../jobs", "a".repeat(37).as_str(), "job id!"] {
            assert_eq!(job_id(bad).unwrap_err().code, "NotFoundException", "{bad}");
        }
    }
}
