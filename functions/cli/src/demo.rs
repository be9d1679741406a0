//! `batchops demo`: puts sample objects (keys with spaces, unicode, `+`, `%`, commas, quotes)
//! and a manifest in S3, runs a copy job through the API, shows its progress and prints the
//! completion report.

use crate::client::{ApiClient, download_report};
use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use batchops_core::report::encode_key;
use serde_json::json;
use std::time::Duration;

/// Keys chosen to exercise URL encoding in manifests and reports.
pub const TRICKY_KEYS: [&str; 8] = [
    "photos/cat.jpg",
    "docs/a file with spaces.txt",
    "unicode/caf\u{e9} \u{2615}.txt",
    "math/1+1=2.txt",
    "percent/100% sure.txt",
    "csv/a,b,c.txt",
    "quotes/say \"hi\".txt",
    "deep/nested/path/\u{65e5}\u{672c}\u{8a9e}.md",
];

/// Keys listed in the manifest but never uploaded: they show failed tasks.
pub const MISSING_KEYS: [&str; 2] = ["missing/not-here.txt", "missing/gone too.txt"];

async fn ensure_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<()> {
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .with_context(|| format!("creating bucket {bucket}"))?;
    }
    Ok(())
}

pub async fn run(api: &ApiClient, s3: &aws_sdk_s3::Client, objects: usize) -> anyhow::Result<bool> {
    let source = "batchops-demo-source";
    let target = "batchops-demo-target";
    ensure_bucket(s3, source).await?;
    ensure_bucket(s3, target).await?;

    let mut keys: Vec<String> = TRICKY_KEYS.iter().map(|k| k.to_string()).collect();
    keys.extend((0..objects).map(|i| format!("numbered/object-{i:05}.txt")));
    println!(
        "Putting {} sample objects into s3://{source}/ …",
        keys.len()
    );
    futures::future::try_join_all(keys.iter().map(|key| async move {
        s3.put_object()
            .bucket(source)
            .key(key)
            .body(ByteStream::from(
                format!("contents of {key}\n").into_bytes(),
            ))
            .send()
            .await
            .with_context(|| format!("putting {key}"))
    }))
    .await?;

    let mut manifest = String::new();
    for key in keys.iter().map(String::as_str).chain(MISSING_KEYS) {
        manifest.push_str(&format!("{source},{}\n", encode_key(key)));
    }
    let put = s3
        .put_object()
        .bucket(source)
        .key("manifests/demo.csv")
        .body(ByteStream::from(manifest.clone().into_bytes()))
        .send()
        .await?;
    let etag = put
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    println!(
        "Manifest s3://{source}/manifests/demo.csv: {} rows, ETag {etag}",
        keys.len() + MISSING_KEYS.len()
    );

    let body = json!({
        "Operation": {"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}"), "TargetKeyPrefix": "copied"}},
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": format!("arn:aws:s3:::{source}/manifests/demo.csv"), "ETag": etag}
        },
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{target}"), "Format": "Report_CSV_20180820",
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 10,
        "Description": "batchops demo: copy sample objects"
    });
    let job_id = api.create(&body).await?;
    println!("Created job {job_id}");

    let job = api.watch(&job_id, Duration::from_millis(250), true).await?;

    let p = &job["ProgressSummary"];
    println!(
        "\nJob {job_id}: {} — {} tasks, {} succeeded, {} failed",
        job["Status"].as_str().unwrap_or("?"),
        p["TotalNumberOfTasks"],
        p["NumberOfTasksSucceeded"],
        p["NumberOfTasksFailed"]
    );
    let dir = format!("reports/job-{job_id}");
    let report = download_report(s3, target, &dir).await?;
    println!("\nCompletion report s3://{target}/{dir}/manifest.json:");
    println!("{}", serde_json::to_string_pretty(&report.manifest)?);
    println!(
        "\nReport rows (Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage):"
    );
    for row in report
        .rows
        .iter()
        .filter(|r| r.status == "failed")
        .chain(report.rows.iter().filter(|r| r.status != "failed").take(10))
    {
        println!(
            "  {},{},{},{},{},{},{}",
            row.bucket,
            row.key,
            row.version_id,
            row.status,
            row.http_status,
            row.error_code,
            row.message
        );
    }
    let (by_status, by_code) = report.summary();
    println!(
        "\nSummary: {} report rows; by status {by_status:?}; errors by code {by_code:?}",
        report.rows.len()
    );

    let copied = s3
        .get_object()
        .bucket(target)
        .key(format!("copied/{}", TRICKY_KEYS[2]))
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    println!(
        "Spot check: s3://{target}/copied/{} = {:?}",
        TRICKY_KEYS[2],
        String::from_utf8_lossy(&copied).trim_end()
    );

    let expected_ok = (keys.len()) as u64;
    let ok = job["Status"] == "Complete"
        && p["NumberOfTasksSucceeded"].as_u64() == Some(expected_ok)
        && p["NumberOfTasksFailed"].as_u64() == Some(MISSING_KEYS.len() as u64)
        && report.rows.len() == keys.len() + MISSING_KEYS.len();
    println!(
        "{}",
        if ok {
            "Demo OK"
        } else {
            "Demo FAILED: counts do not match"
        }
    );
    Ok(ok)
}
