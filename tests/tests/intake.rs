//! The S3 intake trigger: objects put under `intake/` in the stack bucket start jobs, through
//! moto's real S3 → SQS event notifications.

use aws_sdk_s3::primitives::ByteStream;
use batchops_tests::{TestStack, body_of, copy_job};
use serde_json::Value;
use std::time::Duration;

/// Waits for a job created from the intake (the newest job in the list).
async fn intake_job(stack: &TestStack) -> Value {
    for _ in 0..300 {
        let page: Value = reqwest::get(format!("{}/jobs", stack.base_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(job) = page["Jobs"].as_array().and_then(|j| j.first()) {
            let id = job["JobId"].as_str().unwrap().to_string();
            return stack.wait(&id, Duration::from_secs(60)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no job was started by the intake object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_csv_manifest_with_metadata_starts_a_job() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..12).map(|i| format!("in/{i} a")).collect();
    stack.put_objects(&source, &keys).await;
    let manifest: String = keys
        .iter()
        .map(|k| format!("{source},{}\n", batchops_core::report::encode_key(k)))
        .collect();
    stack
        .s3
        .put_object()
        .bucket(&stack.dev.deps.config.bucket)
        .key("intake/daily copy.csv")
        .content_type("text/csv")
        .metadata("operation", "S3PutObjectCopy")
        .metadata("target-bucket", &target)
        .metadata("target-prefix", "from-intake")
        .body(ByteStream::from(manifest.into_bytes()))
        .send()
        .await
        .unwrap();
    let job = intake_job(&stack).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 12);
    // Security issue §3: the job names its uploader. The emulator's S3 events carry no
    // userIdentity (the parsing of AWS's is tested on infra/events/intake.json).
    assert_eq!(job["Audit"]["Created"]["Via"], "S3 intake", "{job}");
    assert_eq!(job["Audit"]["Created"]["By"], "not provided", "{job}");
    for k in &keys {
        assert_eq!(
            stack.get(&target, &format!("from-intake/{k}")).await,
            Some(body_of(k))
        );
    }
    // The default report location is the stack bucket.
    let report = stack
        .report(
            &stack.dev.deps.config.bucket,
            "reports",
            job["JobId"].as_str().unwrap(),
        )
        .await;
    assert_eq!(report.rows.len(), 12);
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_json_create_job_document_starts_a_job() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..4).map(|i| format!("j{i}")).collect();
    stack.put_objects(&source, &keys).await;
    let rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    stack
        .s3
        .put_object()
        .bucket(&stack.dev.deps.config.bucket)
        .key("intake/job.json")
        .body(ByteStream::from(body.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    let job = intake_job(&stack).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 4);
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_intake_object_becomes_a_failed_job_with_a_reason() {
    let stack = TestStack::start().await;
    stack
        .s3
        .put_object()
        .bucket(&stack.dev.deps.config.bucket)
        .key("intake/no-operation.csv")
        .body(ByteStream::from_static(b"some-bucket,key\n"))
        .send()
        .await
        .unwrap();
    let job = intake_job(&stack).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "IntakeInvalid");
    assert!(
        job["FailureReasons"][0]["FailureReason"]
            .as_str()
            .unwrap()
            .contains("x-amz-meta-operation")
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_intake_report_prefix_too_long_for_s3_keys_fails_the_job_naming_it() {
    let stack = TestStack::start().await;
    let target = stack.bucket("dst").await;
    stack
        .s3
        .put_object()
        .bucket(&stack.dev.deps.config.bucket)
        .key("intake/long-prefix.csv")
        .body(ByteStream::from_static(b"some-bucket,key\n"))
        .metadata("operation", "S3PutObjectCopy")
        .metadata("target-bucket", &target)
        .metadata("report-prefix", "x".repeat(513))
        .send()
        .await
        .unwrap();
    let job = intake_job(&stack).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(
        job["FailureReasons"][0]["FailureCode"], "IntakeInvalid",
        "{job}"
    );
    assert!(
        job["FailureReasons"][0]["FailureReason"]
            .as_str()
            .unwrap()
            .contains("Report.Prefix"),
        "{job}"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_json_document_replaced_between_its_check_and_its_read_starts_one_job_not_two() {
    let (proxy, stack) = batchops_tests::TestStack::behind_proxy(batchops_tests::StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["rj/0".to_string()], &[]).await;
    let mut first = seeded.copy_job("AllTasks");
    first["Description"] = "first".into();
    let mut second = seeded.copy_job("AllTasks");
    second["Description"] = "second".into();
    let bucket = stack.dev.deps.config.bucket.clone();
    // Straight to the emulator: another writer, not a request of the intake's.
    let direct = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&batchops_tests::sdk().await)
            .force_path_style(true)
            .build(),
    );
    // The intake's read of the first document finds the second one in its place (its own
    // event starts its own job).
    let (b, d, body) = (bucket.clone(), direct.clone(), second.to_string());
    proxy.before_next(
        "GET",
        "/intake/swap.json",
        "",
        std::sync::Arc::new(move || {
            let (b, d, body) = (b.clone(), d.clone(), body.clone());
            Box::pin(async move {
                d.put_object()
                    .bucket(&b)
                    .key("intake/swap.json")
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                    .unwrap();
            })
        }),
    );
    direct
        .put_object()
        .bucket(&bucket)
        .key("intake/swap.json")
        .body(ByteStream::from(first.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    // Both events handled: one job per document version at most, none with the wrong body.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let page: Value = reqwest::get(format!("{}/jobs", stack.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let descriptions: Vec<&str> = page["Jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["Description"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(descriptions, ["second"], "{page}");
}
