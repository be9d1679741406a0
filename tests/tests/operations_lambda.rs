//! `LambdaInvoke` for real: a user function (`tests/echo-lambda`) served by `cargo lambda watch`
//! on a free port, invoked by the worker's Lambda client through `AWS_ENDPOINT_URL_LAMBDA`.
//! The function answers according to each key (see its docs), so one job exercises every
//! result code, retries, a function error and a malformed response.

use batchops_tests::{
    ECHO_FUNCTION, LambdaEmulator, Row, StackOptions, TestStack, assert_counts, assert_failed_row,
    row_of,
};
use serde_json::{Value, json};
use std::time::Duration;

fn options() -> StackOptions {
    StackOptions {
        workers: 2,
        tune: |c| {
            c.task_max_attempts = 3;
            c.retry_base = Duration::from_millis(20);
            c.retry_cap = Duration::from_millis(100);
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lambda_invoke_calls_the_function_once_per_object_and_reports_its_answers() {
    let lambda = LambdaEmulator::start().await;
    let stack = TestStack::start_with_sdk(lambda.sdk().await, options()).await;
    let bucket = stack.bucket("lam").await;
    let keys = [
        "ok/a",
        "ok/b c+d",
        "permanent/x",
        "flaky/y",
        "temporary/z",
        "error/e",
        "malformed/m",
    ];
    for k in keys {
        stack.put(&bucket, k, k.as_bytes().to_vec()).await;
    }
    let rows: Vec<Row> = keys.iter().map(|k| Row::new(&bucket, k)).collect();
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"LambdaInvoke": {"FunctionArn": ECHO_FUNCTION, "InvocationSchemaVersion": "2.0",
                                    "UserArguments": {"destination": "archive", "mode": "test"}}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 3, 4);
    let job_id = job["JobId"].as_str().unwrap();

    // What the function received, echoed back as its resultString.
    for key in ["ok/a", "ok/b c+d"] {
        let row = row_of(&report, key);
        assert_eq!(row.status, "succeeded", "{row:?}\n{}", lambda.log_tail());
        let seen: Value = serde_json::from_str(&row.message).unwrap();
        assert_eq!(seen["schema"], "2.0");
        assert_eq!(
            seen["job"],
            json!({"id": job_id, "userArguments": {"destination": "archive", "mode": "test"}})
        );
        let task = &seen["task"];
        assert_eq!(task["s3Key"], batchops_core::report::encode_key(key));
        assert_eq!(task["s3Bucket"], bucket);
        assert_eq!(task["s3VersionId"], Value::Null);
        assert!(task["taskId"].as_str().is_some_and(|t| !t.is_empty()));
    }
    // TemporaryFailure once, then Succeeded: retried, counted once as a success.
    let flaky = row_of(&report, "flaky/y");
    assert_eq!(
        (flaky.status.as_str(), flaky.message.as_str()),
        ("succeeded", "done flaky/y on invocation 2")
    );
    let expect = |key: &str, code: &str, message_start: &str| {
        let row = row_of(&report, key);
        assert_failed_row(row, "200", code);
        assert!(row.message.starts_with(message_start), "{row:?}");
    };
    expect("permanent/x", "PermanentFailure", "refused permanent/x");
    expect(
        "temporary/z",
        "TemporaryFailure",
        "still busy with temporary/z (after 3 tries)",
    );
    expect(
        "error/e",
        "PermanentFailure",
        "Lambda returned function error: ",
    );
    assert!(
        row_of(&report, "error/e")
            .message
            .contains("cannot handle error/e")
    );
    expect(
        "malformed/m",
        "PermanentFailure",
        "Invalid JSON returned in Lambda payload: no results array",
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_1_0_passes_the_bucket_arn_and_the_manifests_version_ids() {
    let lambda = LambdaEmulator::start().await;
    let stack = TestStack::start_with_sdk(lambda.sdk().await, options()).await;
    let bucket = stack.versioned_bucket("lamv").await;
    let mut rows = Vec::new();
    for i in 0..3 {
        let key = format!("ok/v{i}");
        let v = stack.put(&bucket, &key, b"one".to_vec()).await.unwrap();
        stack.put(&bucket, &key, b"two".to_vec()).await;
        rows.push(Row::version(&bucket, &key, &v));
    }
    rows.push(Row::version(&bucket, "permanent/v", "some-version"));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"LambdaInvoke": {"FunctionArn": ECHO_FUNCTION}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 3, 1);
    for row in &rows[..3] {
        let r = row_of(&report, &row.key);
        let seen: Value = serde_json::from_str(&r.message).unwrap();
        assert_eq!(seen["schema"], "1.0");
        assert_eq!(seen["job"], json!({"id": job["JobId"]}));
        assert_eq!(
            seen["task"]["s3BucketArn"],
            format!("arn:aws:s3:::{bucket}")
        );
        assert_eq!(
            seen["task"]["s3VersionId"].as_str(),
            row.version_id.as_deref()
        );
        assert_eq!(r.version_id, row.version_id.clone().unwrap());
    }
    let refused = row_of(&report, "permanent/v");
    assert_eq!(refused.error_code, "PermanentFailure");
    stack.dev.stop().await;
}
