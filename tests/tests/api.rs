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

    let with = |path: &[&str], value: serde_json::Value| {
        let mut b = good.clone();
        let mut at = &mut b;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value;
        b
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    // (body, HTTP status, Code, what the message must name)
    let cases: Vec<(serde_json::Value, u16, &str, &str)> = vec![
        (
            json!("not an object"),
            400,
            "InvalidRequest",
            "invalid CreateJob body",
        ),
        (json!({}), 400, "InvalidRequest", "missing field `Report`"),
        (without("Manifest"), 400, "InvalidRequest", "Manifest"),
        (without("Operation"), 400, "InvalidRequest", "Operation"),
        (
            with(&["Operation"], json!({"S3Teleport": {}})),
            400,
            "InvalidRequest",
            "S3Teleport",
        ),
        (
            with(&["Manifest", "Location", "ObjectArn"], "s3://x/y".into()),
            400,
            "InvalidRequest",
            "Manifest.Location.ObjectArn",
        ),
        (
            with(&["Manifest", "Spec", "Fields"], json!(["Bucket"])),
            400,
            "InvalidRequest",
            "Manifest.Spec.Fields",
        ),
        (
            with(
                &["Manifest", "Spec", "Fields"],
                json!(["Bucket", "Key", "Key"]),
            ),
            400,
            "InvalidRequest",
            "Manifest.Spec.Fields",
        ),
        (
            with(&["Manifest", "Spec", "Format"], "CSV".into()),
            400,
            "InvalidRequest",
            "unknown variant `CSV`",
        ),
        (
            with(&["Priority"], json!(-5)),
            400,
            "InvalidRequest",
            "Priority",
        ),
        (
            with(&["Priority"], json!("high")),
            400,
            "InvalidRequest",
            "invalid type",
        ),
        (
            with(&["Report", "Bucket"], "arn:aws:s3:::Bad_Name".into()),
            400,
            "InvalidRequest",
            "Report.Bucket",
        ),
        (
            with(&["Report", "Format"], "Report_JSON".into()),
            400,
            "InvalidRequest",
            "Report.Format",
        ),
        (
            with(&["Report", "ReportScope"], "SomeTasks".into()),
            400,
            "InvalidRequest",
            "unknown variant `SomeTasks`",
        ),
        (
            with(&["Bogus"], json!(1)),
            400,
            "InvalidRequest",
            "unknown field `Bogus`",
        ),
        (
            with(&["Description"], "d".repeat(300).into()),
            400,
            "InvalidRequest",
            "Description",
        ),
        (
            with(&["ClientRequestToken"], "t".repeat(65).into()),
            400,
            "InvalidRequest",
            "ClientRequestToken",
        ),
        (
            with(
                &["FailureThreshold"],
                json!({"MinTasks": 10, "Percent": 150}),
            ),
            400,
            "InvalidRequest",
            "FailureThreshold.Percent",
        ),
        (
            with(
                &["Tags"],
                json!([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]),
            ),
            400,
            "InvalidRequest",
            "Tags",
        ),
        (
            with(
                &["Operation", "S3PutObjectCopy", "MetadataDirective"],
                "MERGE".into(),
            ),
            400,
            "InvalidRequest",
            "MetadataDirective",
        ),
        (
            with(
                &["Operation", "S3PutObjectCopy", "TargetResource"],
                "arn:aws:s3:::other-bucket".into(),
            ),
            403,
            "AccessDenied",
            "other-bucket",
        ),
        (
            with(
                &["Manifest", "Location", "ObjectArn"],
                "arn:aws:s3:::elsewhere/m.csv".into(),
            ),
            403,
            "AccessDenied",
            "Manifest.Location.ObjectArn",
        ),
    ];
    assert!(cases.len() >= 15);
    for (body, status, code, needle) in cases {
        let (got, answer) = stack.post_jobs_raw(body.to_string()).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert_eq!(answer["Code"], code, "{body} -> {answer}");
        let message = answer["Message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
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
