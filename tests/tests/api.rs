//! The HTTP API's answers to good and bad requests.

use batchops_tests::{StackOptions, TestStack, copy_job};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_answers() {
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |c| c.allowed_buckets = vec!["allowed-bucket".into()],
    })
    .await;
    let good = copy_job(
        "allowed-bucket",
        "m.csv",
        None,
        "allowed-bucket",
        "allowed-bucket",
        "AllTasks",
    );

    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (json!("not an object"), 400, "invalid CreateJob body"),
        (json!({}), 400, "missing field"),
        (
            {
                let mut b = good.clone();
                b["Operation"] = json!({"S3Teleport": {}});
                b
            },
            400,
            "S3Teleport",
        ),
        (
            {
                let mut b = good.clone();
                b["Manifest"]["Location"]["ObjectArn"] = "s3://x/y".into();
                b
            },
            400,
            "Manifest.Location.ObjectArn",
        ),
        (
            {
                let mut b = good.clone();
                b["Manifest"]["Spec"]["Fields"] = json!(["Bucket"]);
                b
            },
            400,
            "Manifest.Spec.Fields",
        ),
        (
            {
                let mut b = good.clone();
                b["Manifest"]["Spec"]["Format"] = "CSV".into();
                b
            },
            400,
            "unknown variant",
        ),
        (
            {
                let mut b = good.clone();
                b["Priority"] = json!(-5);
                b
            },
            400,
            "Priority",
        ),
        (
            {
                let mut b = good.clone();
                b["Report"]["Bucket"] = "arn:aws:s3:::Bad_Name".into();
                b
            },
            400,
            "Report.Bucket",
        ),
        (
            {
                let mut b = good.clone();
                b["Bogus"] = json!(1);
                b
            },
            400,
            "unknown field",
        ),
        (
            {
                let mut b = good.clone();
                b["Operation"]["S3PutObjectCopy"]["TargetResource"] =
                    "arn:aws:s3:::other-bucket".into();
                b
            },
            403,
            "other-bucket",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = stack.post_jobs_raw(body.to_string()).await;
        assert_eq!(got, status, "{body} -> {answer}");
        let message = answer["Message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
        assert!(answer["Code"].is_string());
    }

    let (got, answer) = stack.post_jobs_raw("{\"Operation\": ").await;
    assert_eq!(got, 400, "{answer}");

    let (got, answer) = stack.post_jobs_raw(vec![b' '; 2 * 1024 * 1024]).await;
    assert_eq!(got, 413, "{answer}");

    let err = stack
        .api
        .describe("no-such-job")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
    stack.dev.stop().await;
}
