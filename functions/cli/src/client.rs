//! A small client of the batchops API and of completion reports in S3.

use anyhow::{Context, bail};
use batchops_core::report::ReportManifest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Calls the API at `base` (e.g. `http://127.0.0.1:9000`), signing requests with SigV4 when
/// given credentials (a deployed API behind API Gateway's IAM auth).
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    signer: Option<Signer>,
}

/// SigV4 signing for API Gateway (`execute-api`) with the default credential chain.
#[derive(Clone, Debug)]
pub struct Signer {
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
    pub region: String,
}

/// An answer that is not a 2xx: the API's `Code` and `Message`.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {code} — {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Signer {
    /// From the default AWS configuration chain (environment, profile, SSO, IMDS …).
    pub async fn from_env() -> anyhow::Result<Self> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Ok(Self {
            credentials: sdk
                .credentials_provider()
                .context("no AWS credentials found for SigV4 signing")?,
            region: sdk
                .region()
                .map(|r| r.to_string())
                .context("no AWS region set")?,
        })
    }

    /// Signs `request` for `execute-api` in place.
    pub async fn sign(&self, request: &mut http::Request<Vec<u8>>) -> anyhow::Result<()> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = self.credentials.provide_credentials().await?.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.uri().to_string(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(request.body()),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

impl ApiClient {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            signer: None,
        }
    }

    pub fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// One API call; a non-2xx answer is an [`ApiError`].
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b)?,
            None => Vec::new(),
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(bytes)?;
        if let Some(signer) = &self.signer {
            signer.sign(&mut request).await?;
        }
        let resp = self
            .http
            .execute(reqwest::Request::try_from(request)?)
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| {
                format!("the API answered HTTP {status} with a body that is not JSON: {text:.200}")
            })?
        };
        if !status.is_success() {
            return Err(ApiError {
                status: status.as_u16(),
                code: body["Code"].as_str().unwrap_or("Unknown").to_string(),
                message: body["Message"].as_str().unwrap_or(&text).to_string(),
            }
            .into());
        }
        Ok(body)
    }

    /// CreateJob; returns the JobId.
    pub async fn create(&self, body: &Value) -> anyhow::Result<String> {
        let v = self.call(http::Method::POST, "/jobs", Some(body)).await?;
        v["JobId"]
            .as_str()
            .map(String::from)
            .context("no JobId in the answer")
    }

    /// DescribeJob; returns the `Job` document.
    pub async fn describe(&self, job_id: &str) -> anyhow::Result<Value> {
        Ok(self
            .call(http::Method::GET, &format!("/jobs/{job_id}"), None)
            .await?["Job"]
            .clone())
    }

    /// ListJobs: one page.
    pub async fn list(
        &self,
        statuses: &[String],
        max: Option<u32>,
        token: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut query: Vec<String> = statuses
            .iter()
            .map(|s| format!("JobStatuses={s}"))
            .collect();
        if let Some(m) = max {
            query.push(format!("MaxResults={m}"));
        }
        if let Some(t) = token {
            query.push(format!("NextToken={t}"));
        }
        let path = if query.is_empty() {
            "/jobs".to_string()
        } else {
            format!("/jobs?{}", query.join("&"))
        };
        self.call(http::Method::GET, &path, None).await
    }

    /// UpdateJobStatus.
    pub async fn set_status(
        &self,
        job_id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut body = serde_json::json!({ "RequestedJobStatus": status });
        if let Some(r) = reason {
            body["StatusUpdateReason"] = r.into();
        }
        self.call(
            http::Method::POST,
            &format!("/jobs/{job_id}/status"),
            Some(&body),
        )
        .await
    }

    /// UpdateJobPriority.
    pub async fn set_priority(&self, job_id: &str, priority: i64) -> anyhow::Result<Value> {
        let body = serde_json::json!({ "Priority": priority });
        self.call(
            http::Method::POST,
            &format!("/jobs/{job_id}/priority"),
            Some(&body),
        )
        .await
    }

    /// Polls until the job ends, showing a progress bar (tasks done of the total, rate, ETA)
    /// unless `visible` is false; returns the last description.
    pub async fn watch(
        &self,
        job_id: &str,
        every: Duration,
        visible: bool,
    ) -> anyhow::Result<Value> {
        let bar = indicatif::ProgressBar::new(0);
        if visible {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:10} [{bar:40}] {pos}/{len} tasks  {per_sec}  ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let job = self
            .wait(job_id, every, |job| {
                let p = &job["ProgressSummary"];
                let n = |k: &str| p[k].as_u64().unwrap_or(0);
                bar.set_length(n("TotalNumberOfTasks"));
                bar.set_position(n("NumberOfTasksSucceeded") + n("NumberOfTasksFailed"));
                bar.set_message(job["Status"].as_str().unwrap_or("?").to_string());
            })
            .await?;
        bar.finish_and_clear();
        Ok(job)
    }

    /// Polls until the job ends, calling `progress` on each description; returns the last.
    pub async fn wait(
        &self,
        job_id: &str,
        every: Duration,
        mut progress: impl FnMut(&Value),
    ) -> anyhow::Result<Value> {
        loop {
            let job = self.describe(job_id).await?;
            progress(&job);
            if matches!(
                job["Status"].as_str(),
                Some("Complete" | "Failed" | "Cancelled")
            ) {
                return Ok(job);
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// One report row (core's reader, beside its writer).
pub use batchops_core::report::ReportRow;

/// A downloaded completion report.
#[derive(Clone, Debug)]
pub struct Report {
    pub manifest: ReportManifest,
    pub rows: Vec<ReportRow>,
}

impl Report {
    /// Counts by `TaskStatus` and by error code.
    pub fn summary(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let mut by_status = BTreeMap::new();
        let mut by_code = BTreeMap::new();
        for r in &self.rows {
            *by_status.entry(r.status.clone()).or_insert(0) += 1;
            if !r.error_code.is_empty() {
                *by_code.entry(r.error_code.clone()).or_insert(0) += 1;
            }
        }
        (by_status, by_code)
    }
}

/// Downloads a job's report: `manifest.json` at `bucket/dir/manifest.json`, then every
/// result file it lists, checking each file's MD5.
pub async fn download_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    dir: &str,
) -> anyhow::Result<Report> {
    let get = |key: String| async move {
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .with_context(|| format!("reading s3://{bucket}/{key}"))?;
        anyhow::Ok(out.body.collect().await?.into_bytes().to_vec())
    };
    let manifest: ReportManifest =
        serde_json::from_slice(&get(format!("{dir}/manifest.json")).await?)?;
    let mut rows = Vec::new();
    for file in &manifest.results {
        let data = get(file.key.clone()).await?;
        use md5::Digest;
        let md5 = hex::encode(md5::Md5::digest(&data));
        if md5 != file.md5_checksum {
            bail!(
                "{}: MD5 {md5} does not match the manifest's {}",
                file.key,
                file.md5_checksum
            );
        }
        rows.extend(batchops_core::report::read_rows(&data)?);
    }
    Ok(Report { manifest, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sigv4_signs_for_execute_api() {
        let signer = Signer {
            credentials: aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"),
            ),
            region: "eu-west-1".into(),
        };
        let mut request = http::Request::builder()
            .method("POST")
            .uri("https://abc123.execute-api.eu-west-1.amazonaws.com/jobs")
            .header("content-type", "application/json")
            .body(b"{}".to_vec())
            .unwrap();
        signer.sign(&mut request).await.unwrap();
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(
            auth.contains("/eu-west-1/execute-api/aws4_request"),
            "{auth}"
        );
        assert!(request.headers().contains_key("x-amz-date"));
    }
}
