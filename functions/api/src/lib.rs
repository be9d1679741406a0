//! # api Lambda
//!
//! The HTTP API (S3 Control's field names, JSON). One [`router`] serves API Gateway through
//! `lambda_http` and `batchops dev` through a plain TCP listener, so both run the same code.
//!
//! | route | answer |
//! |---|---|
//! | `POST /jobs` | `{"JobId"}` — CreateJob |
//! | `GET /jobs/{id}` | `{"Job": {...}}` — DescribeJob |
//!
//! Errors are `{"Code", "Message"}` with a 4xx status for anything the caller can fix.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batchops_core::chunk::PlanMessage;
use batchops_core::job::{CreateJobRequest, Job};
use batchops_core::{Deps, Error};
use serde_json::json;
use std::sync::Arc;
use tracing::{error, info};

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

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::JobNotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                format!("no job {id}"),
            ),
            Error::StatusConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "JobStatusException", e.to_string())
            }
            other => {
                error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the service could not complete the request; retry later",
                )
            }
        }
    }
}

/// The API's routes over shared dependencies.
pub fn router(deps: Arc<Deps>) -> Router {
    Router::new()
        .route("/jobs", post(create_job))
        .route("/jobs/{id}", get(describe_job))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES + 1))
        .with_state(deps)
}

/// Parses and checks a CreateJob body; every problem is a 4xx naming what is wrong.
pub fn parse_create_job(body: &[u8], deps: &Deps) -> Result<CreateJobRequest, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "EntityTooLarge",
            format!(
                "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                body.len()
            ),
        ));
    }
    let request: CreateJobRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("invalid CreateJob body: {e}"),
        )
    })?;
    request
        .validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    if request.confirmation_required {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "ConfirmationRequired: true is not supported yet; omit it or set it to false",
        ));
    }
    for (field, bucket) in request.buckets() {
        if !deps.config.bucket_allowed(&bucket) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!("{field}: bucket {bucket} is not in this stack's allowed buckets"),
            ));
        }
    }
    Ok(request)
}

async fn create_job(
    State(deps): State<Arc<Deps>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), "InvalidRequest", e.body_text()))?;
    let request = parse_create_job(&body, &deps)?;
    let job_id = uuid::Uuid::new_v4().to_string();
    let job = Job::new(job_id.clone(), request, batchops_core::time::now_iso());
    deps.store.create(&job).await?;
    deps.queues
        .send_plan(&PlanMessage {
            job_id: job_id.clone(),
        })
        .await?;
    info!(
        job_id,
        operation = job
            .request
            .operation
            .as_ref()
            .map(|o| o.name())
            .unwrap_or_default(),
        "job created"
    );
    Ok(Json(json!({ "JobId": job_id })))
}

async fn describe_job(
    State(deps): State<Arc<Deps>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = deps.store.require(&id).await?;
    Ok(Json(job.describe()))
}
