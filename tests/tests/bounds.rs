//! Bounded everything: whatever a manifest or a function returns, every message and report
//! row stays within its limits, and the job ends with a clear answer per row.

use aws_sdk_dynamodb::types::AttributeValue;
use batchops_tests::{StackOptions, TestStack, copy_job};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_rows_with_oversized_fields_are_failed_rows_and_the_job_completes() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["b/ok".to_string()], &[]).await;
    let source = &seeded.source;
    // A bucket field of 300 KB (one such task alone is over SQS's 256 KiB), a version id of
    // 2 KB, and a key that decodes to 1,025 bytes: each a failed row, none a stuck job.
    let huge_bucket = "x".repeat(300 * 1024);
    let long_version = "v".repeat(2048);
    let long_key = "k".repeat(1025);
    let manifest = format!(
        "{source},b/ok,\n{huge_bucket},b/any,\n{source},b/ok,{long_version}\n{source},{long_key},v1\n"
    );
    let etag = stack
        .put_raw_manifest(source, "big-fields.csv", manifest.into_bytes())
        .await;
    let mut body = copy_job(
        source,
        "big-fields.csv",
        Some(&etag),
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    body["Manifest"]["Spec"]["Fields"] = serde_json::json!(["Bucket", "Key", "VersionId"]);
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 4, "{job}");
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 4);
    for row in &report.rows {
        assert!(
            row.bucket.len() <= 1024 && row.key.len() <= 1024 && row.message.len() <= 4096,
            "bounded: {} / {} / {} bytes",
            row.bucket.len(),
            row.key.len(),
            row.message.len()
        );
    }
    // (The first row fails too: a manifest with a VersionId column needs one on every row.)
    assert!(
        report.rows.iter().all(|r| r.status == "failed"),
        "{:?}",
        report.rows
    );
    let reason = |key: &str, version: &str| {
        report
            .rows
            .iter()
            .find(|r| r.key == key && r.version_id == version)
            .map(|r| r.message.clone())
            .unwrap_or_else(|| panic!("a row for {key} {version}"))
    };
    // A 300 KiB row is past the 64 KiB record bound: cut there, not read whole.
    assert!(
        report
            .rows
            .iter()
            .any(|r| r.message.contains("is longer than 65536 bytes")),
        "{:?}",
        report.rows
    );
    let truncated_version = &long_version[..1024];
    assert!(
        reason("b/ok", truncated_version).contains("version id"),
        "{}",
        reason("b/ok", truncated_version)
    );
    assert!(reason(&long_key[..1024], "v1").contains("1024"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_request_over_64_kib_is_refused_with_413_naming_the_limit() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let source = stack.bucket("gen").await;
    // 3,000 prefixes of 30 bytes: a 100 KB request, well under the 1 MiB body limit, but a
    // job item that large would multiply the write units of every count and status change.
    let prefixes: Vec<String> = (0..3000)
        .map(|i| format!("some/long/prefix/{i:013}"))
        .collect();
    let body = |prefixes: &[String]| {
        serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "ManifestGenerator": {"S3JobManifestGenerator": {
                "SourceBucket": format!("arn:aws:s3:::{source}"),
                "EnableManifestOutput": false,
                "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": prefixes}}
            }},
            "Report": {"Enabled": false},
            "Priority": 1
        })
    };
    let (status, answer) = stack.post_jobs_raw(body(&prefixes).to_string()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["Code"], "EntityTooLarge", "{answer}");
    assert!(
        answer["Message"].as_str().unwrap().contains("65536"),
        "names the limit: {answer}"
    );
    let (status, answer) = stack
        .post_jobs_raw(body(&prefixes[..100]).to_string())
        .await;
    assert_eq!(status, 200, "a smaller one is fine: {answer}");
}

/// Accounting issue §4: an ended job is kept 90 days, as AWS keeps it, then DynamoDB's TTL
/// removes it (`expires_at`, the table's TTL attribute) instead of every sweep and ListJobs
/// scanning every job ever created. A running job has no expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_job_expires_ninety_days_after_it_ends_and_a_running_one_never() {
    let stack = TestStack::start().await;
    let seeded = stack.seed(&["ttl/0".to_string()], &[]).await;
    let mut held = seeded.copy_job("AllTasks");
    held["ConfirmationRequired"] = true.into();
    let held_id = stack.api.create(&held).await.unwrap();
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let expires = |id: String| {
        let ddb = ddb.clone();
        let table = stack.dev.deps.config.table.clone();
        async move {
            let item = ddb
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(format!("JOB#{id}")))
                .key("sk", AttributeValue::S("JOB".into()))
                .send()
                .await
                .unwrap();
            item.item()
                .and_then(|i| i.get("expires_at"))
                .and_then(|v| v.as_n().ok())
                .map(|n| n.parse::<i64>().unwrap())
        }
    };
    let ended = time::OffsetDateTime::parse(
        job["TerminationDate"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    let at = expires(job_id).await.expect("an ended job has expires_at");
    assert!(
        (at - ended - 90 * 24 * 3600).abs() < 120,
        "expires_at {at} is 90 days after {ended}"
    );
    stack
        .until(&held_id, 30, |j| j["Status"] == "Suspended")
        .await;
    assert_eq!(
        expires(held_id).await,
        None,
        "a job not ended never expires"
    );
}
