//! # api Lambda
//!
//! The HTTP API (S3 Control's field names, JSON). One [`router`] serves API Gateway through
//! `lambda_http` and `batchops dev` through a plain TCP listener, so both run the same code.
//! The work is done by [`batchops_core::jobs`]; this crate parses requests and maps results
//! and errors to HTTP.
//!
//! | route | answer |
//! |---|---|
//! | `POST /jobs` | `{"JobId"}` — CreateJob |
//! | `GET /jobs` | `{"Jobs": [...], "NextToken"}` — ListJobs (`JobStatuses`, `MaxResults`, `NextToken`) |
//! | `GET /jobs/{id}` | `{"Job": {...}}` — DescribeJob, with `CostEstimate`, `AllowedUpdates` and `ReportSummary` beyond AWS |
//! | `POST /jobs/{id}/status` | `{JobId, Status, StatusUpdateReason}` — UpdateJobStatus |
//! | `POST /jobs/{id}/priority` | `{JobId, Priority}` — UpdateJobPriority |
//! | `GET/PUT/DELETE /jobs/{id}/tagging` | `{"Tags"}` — Get/Put/DeleteJobTagging |
//! | `GET /console`, `/console/app.js`, `/console/app.css` | the web console ([`console`]) |
//!
//! Errors are `{"Code", "Message"}`: 400 (names the field), 403, 404, 409, 413; never a 500
//! for bad input.

pub mod console;
pub mod guard;
pub mod s3control;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batchops_core::Deps;
use batchops_core::job::spec::Tag;
use batchops_core::job::{Actor, CreateJobRequest, JobStatus};
use batchops_core::jobs::{self, ServiceError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::error;

/// Largest request body accepted (API Gateway's own limit is 10 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An error answer: HTTP status, S3-Control-style code and a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"Code": self.code, "Message": self.message})),
        )
            .into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(i) => ApiError::bad(i.to_string()),
            ServiceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", m),
            ServiceError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                format!("no job {id}"),
            ),
            ServiceError::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "ConflictException", m)
            }
            ServiceError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", m)
            }
            ServiceError::Internal(e) => {
                error!(error = %e, "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the service could not complete the request; retry later",
                )
            }
        }
    }
}

impl From<batchops_core::Error> for ApiError {
    fn from(e: batchops_core::Error) -> Self {
        ServiceError::Internal(e).into()
    }
}

/// The API's routes over shared dependencies.
pub fn router(deps: Arc<Deps>) -> Router {
    Router::new()
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{id}", get(describe_job))
        .route("/jobs/{id}/status", post(update_status))
        .route("/jobs/{id}/priority", post(update_priority))
        .route(
            "/jobs/{id}/tagging",
            get(get_tagging).put(put_tagging).delete(delete_tagging),
        )
        .nest(s3control::ops::PREFIX, s3control::ops::router())
        .merge(console::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES + 1))
        .layer(axum::middleware::from_fn(guard::refuse_browsers))
        .with_state(deps)
}

fn too_large(len: Option<usize>) -> ApiError {
    let size = len
        .map(|n| format!("{n} bytes"))
        .unwrap_or_else(|| "too large".into());
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "EntityTooLarge",
        format!("the body is {size}; at most {MAX_BODY_BYTES} bytes are accepted"),
    )
}

/// Why a body could not be read: too large (its size when known), or another rejection
/// (status and text). Both protocols answer it in their own form.
pub(crate) enum BodyError {
    TooLarge(Option<usize>),
    Rejected(StatusCode, String),
}

/// A request body, at most [`MAX_BODY_BYTES`].
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, BodyError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BodyError::TooLarge(None)
        } else {
            BodyError::Rejected(e.status(), e.body_text())
        }
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge(Some(body.len())));
    }
    Ok(body)
}

/// Reads a JSON body: 413 past [`MAX_BODY_BYTES`], 400 naming what is wrong otherwise.
fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let body = body_bytes(body).map_err(|e| match e {
        BodyError::TooLarge(n) => too_large(n),
        BodyError::Rejected(status, text) => ApiError::new(status, "InvalidRequest", text),
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid {what} body: {e}")))
}

/// The IAM principal API Gateway authorised for this request (its request context, which
/// `lambda_http` puts in the request's extensions): the caller's ARN for IAM authorisation.
/// `batchops dev` has no request context: the principal is then not provided.
pub struct Caller(pub Actor);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(Actor::api(principal_of(
            parts
                .extensions
                .get::<lambda_http::request::RequestContext>(),
        ))))
    }
}

/// The principal in an API Gateway request context: `userArn` (else `callerId`) of an HTTP
/// API's IAM authoriser, or of a REST API's identity.
pub fn principal_of(context: Option<&lambda_http::request::RequestContext>) -> Option<String> {
    use lambda_http::request::RequestContext;
    match context? {
        RequestContext::ApiGatewayV2(c) => {
            let iam = c.authorizer.as_ref()?.iam.as_ref()?;
            iam.user_arn.clone().or_else(|| iam.caller_id.clone())
        }
        RequestContext::ApiGatewayV1(c) => c
            .identity
            .user_arn
            .clone()
            .or_else(|| c.identity.caller.clone()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

async fn create_job(
    State(deps): State<Arc<Deps>>,
    Caller(actor): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: CreateJobRequest = json_body(body, "CreateJob")?;
    let job_id = jobs::create_job(&deps, request, &actor).await?;
    Ok(Json(json!({ "JobId": job_id })))
}

async fn describe_job(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = jobs::describe_job(&deps, &id).await?;
    let mut answer = job.describe();
    // Beyond AWS: what the job costs, once its total is known.
    if let Some(cost) =
        batchops_core::cost::estimate(&job, &deps.config.prices, deps.config.chunk_size as u64)
    {
        answer["Job"]["CostEstimate"] = serde_json::to_value(cost).unwrap_or_default();
    }
    // Beyond AWS: what may be asked of the job now (the rule UpdateJobStatus applies), and
    // what its report holds.
    answer["Job"]["AllowedUpdates"] = json!({
        "RequestedJobStatus": job.status.requestable().iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "Priority": true,
    });
    if let Some(summary) = &job.report_summary {
        answer["Job"]["ReportSummary"] = serde_json::to_value(summary).unwrap_or_default();
        if let Some(arn) = job.report_manifest_arn(&deps.config.bucket) {
            answer["Job"]["ReportSummary"]["ManifestArn"] = arn.into();
        }
    }
    Ok(Json(answer))
}

/// ListJobs query: `JobStatuses` (repeatable, or comma-separated), `MaxResults`, `NextToken`.
pub fn parse_list_query(
    query: Option<&str>,
) -> Result<(Vec<JobStatus>, i32, Option<String>), ApiError> {
    let mut statuses = Vec::new();
    let mut max = 1000;
    let mut token = None;
    for (k, v) in form_urlencoded(query.unwrap_or("")) {
        match k.as_str() {
            "JobStatuses" | "jobStatuses" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    let status = JobStatus::parse(s).ok_or_else(|| {
                        ApiError::bad(format!("JobStatuses: {s:?} is not a job status"))
                    })?;
                    // Each once: a status named twice is one filter value (so at most 13,
                    // well inside DynamoDB's 100 values for IN).
                    if !statuses.contains(&status) {
                        statuses.push(status);
                    }
                }
            }
            "MaxResults" | "maxResults" => {
                max = v.parse().map_err(|_| {
                    ApiError::bad("MaxResults: must be a number between 1 and 1000")
                })?;
            }
            "NextToken" | "nextToken" => token = Some(v),
            other => return Err(ApiError::bad(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok((statuses, max, token))
}

pub(crate) fn form_urlencoded(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                let s = s.replace('+', " ");
                percent_decode(&s)
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    batchops_core::manifest::csv::decode_key(&s.replace(' ', "%20"))
        .unwrap_or_else(|_| s.to_string())
}

async fn list_jobs(
    State(deps): State<Arc<Deps>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (statuses, max, token) = parse_list_query(query.as_deref())?;
    let (found, next) = jobs::list_jobs(&deps, &statuses, max, token.as_deref()).await?;
    let mut answer =
        json!({ "Jobs": found.iter().map(|j| j.list_descriptor()).collect::<Vec<_>>() });
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateStatus {
    requested_job_status: String,
    #[serde(default)]
    status_update_reason: Option<String>,
}

async fn update_status(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    Caller(actor): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateStatus = json_body(body, "UpdateJobStatus")?;
    let job = jobs::update_status(
        &deps,
        &id,
        &req.requested_job_status,
        req.status_update_reason,
        &actor,
    )
    .await?;
    let mut answer = json!({"JobId": job.job_id, "Status": job.status.as_str()});
    if let Some(r) = job.status_update_reason {
        answer["StatusUpdateReason"] = r.into();
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdatePriority {
    priority: i64,
}

async fn update_priority(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: UpdatePriority = json_body(body, "UpdateJobPriority")?;
    jobs::update_priority(&deps, &id, req.priority).await?;
    Ok(Json(json!({"JobId": id, "Priority": req.priority})))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Tagging {
    tags: Vec<Tag>,
}

async fn get_tagging(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = jobs::describe_job(&deps, &id).await?;
    Ok(Json(json!({ "Tags": job.tags })))
}

async fn put_tagging(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: Tagging = json_body(body, "PutJobTagging")?;
    jobs::put_tags(&deps, &id, &req.tags).await?;
    Ok(Json(json!({})))
}

async fn delete_tagging(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    jobs::put_tags(&deps, &id, &[]).await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security issue §3: the caller API Gateway authorised, as the api Lambda receives it.
    #[test]
    fn the_iam_caller_comes_from_api_gateways_request_context() {
        use lambda_http::RequestExt;
        let req = lambda_http::request::from_str(include_str!(
            "../../../infra/events/api-create-job.json"
        ))
        .unwrap();
        assert_eq!(
            principal_of(Some(&req.request_context())).as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/storage-admin/alice")
        );
        assert_eq!(principal_of(None), None, "batchops dev: no request context");
        assert_eq!(Actor::api(principal_of(None)).name(), "not provided");
    }

    #[test]
    fn list_queries_parse() {
        let (s, m, t) = parse_list_query(Some(
            "JobStatuses=Active&JobStatuses=Failed,Complete&MaxResults=5&NextToken=abc",
        ))
        .unwrap();
        assert_eq!(
            s,
            [JobStatus::Active, JobStatus::Failed, JobStatus::Complete]
        );
        assert_eq!((m, t.as_deref()), (5, Some("abc")));
        assert!(parse_list_query(Some("JobStatuses=Running")).is_err());
        assert!(parse_list_query(Some("MaxResults=lots")).is_err());
        assert!(parse_list_query(Some("Bogus=1")).is_err());
        assert_eq!(parse_list_query(None).unwrap().1, 1000);
    }

    #[test]
    fn a_status_named_many_times_filters_once() {
        // DynamoDB's IN takes at most 100 values; only 13 statuses exist.
        let query = vec!["JobStatuses=Active"; 150].join("&") + "&JobStatuses=Failed,Active";
        let (s, _, _) = parse_list_query(Some(&query)).unwrap();
        assert_eq!(s, [JobStatus::Active, JobStatus::Failed]);
    }
}
