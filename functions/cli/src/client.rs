//! A small client of the batchops API and of completion reports in S3.

use anyhow::{Context, bail};
use batchops_core::report::ReportManifest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Calls the API at `base` (e.g. `http://127.0.0.1:9000`).
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn answer(resp: reqwest::Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .context("the API answered with a body that is not JSON")?;
        if !status.is_success() {
            bail!(
                "HTTP {}: {} — {}",
                status.as_u16(),
                body["Code"].as_str().unwrap_or("?"),
                body["Message"].as_str().unwrap_or("?")
            );
        }
        Ok(body)
    }

    /// CreateJob; returns the JobId.
    pub async fn create(&self, body: &Value) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/jobs", self.base))
            .json(body)
            .send()
            .await?;
        let v = Self::answer(resp).await?;
        v["JobId"]
            .as_str()
            .map(String::from)
            .context("no JobId in the answer")
    }

    /// DescribeJob; returns the `Job` document.
    pub async fn describe(&self, job_id: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}/jobs/{job_id}", self.base))
            .send()
            .await?;
        Ok(Self::answer(resp).await?["Job"].clone())
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

/// One report row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub status: String,
    pub http_status: String,
    pub error_code: String,
    pub message: String,
}

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
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&data[..]);
        for rec in reader.records() {
            let rec = rec?;
            let f = |i: usize| rec.get(i).unwrap_or_default().to_string();
            rows.push(ReportRow {
                bucket: f(0),
                key: f(1),
                version_id: f(2),
                status: f(3),
                http_status: f(4),
                error_code: f(5),
                message: f(6),
            });
        }
    }
    Ok(Report { manifest, rows })
}
