//! No caller reaches beyond its rights: the stack's own bucket holds other jobs' intermediate
//! results and intake objects, so no job may name it except where it belongs (intake
//! manifests, reports under `reports/`, generated manifests under `generated/`).

use batchops_tests::{StackOptions, TestStack, copy_job};
use serde_json::{Value, json};
use std::time::Duration;

async fn refused(stack: &TestStack, body: &Value, field: &str) {
    let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
    assert_eq!(status, 403, "{field}: {answer}");
    assert!(
        answer.to_string().contains(field),
        "the answer names {field}: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_cannot_name_the_stack_bucket_except_where_it_belongs() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let own = stack.dev.deps.config.bucket.clone();
    let seeded = stack.seed(&["i/0".to_string()], &[]).await;

    // A generator over the stack bucket with S3DeleteObject would delete other jobs' results.
    let generator = json!({
        "Operation": {"S3DeleteObject": {}},
        "ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": format!("arn:aws:s3:::{own}"),
            "EnableManifestOutput": false,
            "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["results/"]}}
        }},
        "Report": {"Enabled": false},
        "Priority": 1
    });
    refused(
        &stack,
        &generator,
        "ManifestGenerator.S3JobManifestGenerator.SourceBucket",
    )
    .await;

    // A copy into the stack bucket could forge another job's result rows.
    let mut copy_in = seeded.copy_job("AllTasks");
    copy_in["Operation"]["S3PutObjectCopy"]["TargetResource"] =
        format!("arn:aws:s3:::{own}").into();
    refused(&stack, &copy_in, "Operation.S3PutObjectCopy.TargetResource").await;

    // A report under intake/ would start a job; anywhere but reports/ is not for reports.
    let mut report_in_intake = seeded.copy_job("AllTasks");
    report_in_intake["Report"]["Bucket"] = format!("arn:aws:s3:::{own}").into();
    report_in_intake["Report"]["Prefix"] = "intake/evil".into();
    refused(&stack, &report_in_intake, "Report.Prefix").await;

    // A manifest in the stack bucket outside intake/.
    let mut manifest_in_results = seeded.copy_job("AllTasks");
    manifest_in_results["Manifest"]["Location"] =
        json!({"ObjectArn": format!("arn:aws:s3:::{own}/results/x.csv")});
    refused(&stack, &manifest_in_results, "Manifest.Location.ObjectArn").await;

    // Where it belongs: the default report location.
    let mut report_home = seeded.copy_job("AllTasks");
    report_home["Report"]["Bucket"] = format!("arn:aws:s3:::{own}").into();
    report_home["Report"]["Prefix"] = "reports".into();
    let (status, answer) = stack.post_jobs_raw(report_home.to_string()).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_rows_naming_the_stack_bucket_are_access_denied_rows() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |_| {},
    })
    .await;
    let own = stack.dev.deps.config.bucket.clone();
    // Another job's counted result file, as a worker leaves it.
    let victim = "results/other-job/000000000000/rows.csv";
    stack
        .put(&own, victim, b"b,k,,succeeded,200,,ok\n".to_vec())
        .await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    stack.put_objects(&source, &["mine".to_string()]).await;
    let rows = vec![
        (own.clone(), victim.to_string()),
        (source.clone(), "mine".to_string()),
    ];
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    body["Operation"] = json!({"S3DeleteObject": {}});
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let report = stack.report(&target, "reports", &job_id).await;
    let row = batchops_tests::row_of(&report, victim);
    batchops_tests::assert_failed_row(row, "403", "AccessDenied");
    assert!(
        stack.get(&own, victim).await.is_some(),
        "the other job's results are still there"
    );
    assert_eq!(batchops_tests::row_of(&report, "mine").status, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_role_arn_every_stock_client_sends_is_accepted_recorded_and_described() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["r/0".to_string()], &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    let role = "arn:aws:iam::123456789012:role/batch-operations";
    body["RoleArn"] = role.into();
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["RoleArn"], role, "{job}");
}
