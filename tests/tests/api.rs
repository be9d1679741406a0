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

/// Beyond AWS: DescribeJob prices the job — its S3 requests, batchops' control plane, and what
/// Amazon S3 Batch Operations would charge — first from the manifest's total, then, once the
/// job has ended, on the tasks that ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_job_prices_a_job_from_its_total_then_from_what_ran() {
    let stack = TestStack::start().await;
    let keys: Vec<String> = (0..5).map(|i| format!("cost/{i}")).collect();
    let seeded = stack.seed(&keys, &["cost/missing".to_string()]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    let held = stack
        .until(&job_id, 60, |j| j["Status"] == "Suspended")
        .await;
    let e = &held["CostEstimate"];
    assert_eq!(
        (&e["Basis"], &e["Tasks"]),
        (&json!("Estimate"), &json!(6)),
        "{held}"
    );
    assert_eq!(e["S3Requests"]["Put"], 6, "one CopyObject per task");
    assert_eq!(
        (&e["Currency"], &e["Region"], &e["PriceDate"]),
        (&json!("USD"), &json!("us-east-1"), &json!("2026-12-01"))
    );
    stack.api.set_status(&job_id, "Ready", None).await.unwrap();
    let done = stack
        .wait(&job_id, std::time::Duration::from_secs(120))
        .await;
    let e = &done["CostEstimate"];
    assert_eq!(
        (&e["Basis"], &e["Tasks"]),
        (&json!("Counted"), &json!(6)),
        "{done}"
    );
    let s3 = e["S3Requests"]["USD"].as_f64().unwrap();
    assert!(
        (s3 - 6.0 * 0.005 / 1000.0).abs() < 1e-9,
        "6 PUTs at $0.005 per 1,000: {e}"
    );
    let aws = e["AmazonS3BatchOperationsUSD"].as_f64().unwrap();
    assert!((aws - (0.25 + 6.0 / 1e6 + s3)).abs() < 1e-6, "{e}");
    let ours = e["BatchopsUSD"].as_f64().unwrap();
    let control = e["ControlPlane"]["USD"].as_f64().unwrap();
    assert!(control > 0.0 && (ours - (s3 + control)).abs() < 1e-6, "{e}");
    assert!(ours < aws, "{e}");
}

/// The clock and the ids are the pipeline's to be given (the model's schedules run on a clock
/// that follows tokio's paused time and on seeded ids): a job made through deps given both
/// carries the seeded id, and its creation and its cancel are stamped by the given clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_named_and_stamped_by_the_clock_and_ids_it_is_given() {
    use batchops_core::ids::Ids;
    use batchops_core::job::Actor;
    use batchops_core::time::Clock;
    let stack = TestStack::start().await;
    let seeded = stack.seed(&["clock/0".to_string()], &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    let request = serde_json::from_value(body).unwrap();
    let base = time::OffsetDateTime::from_unix_timestamp(1_924_992_000).unwrap(); // 2031-01-01
    let deps = (*stack.dev.deps)
        .clone()
        .with_time(Clock::following_tokio(base), Ids::seeded(11));
    let actor = Actor::api(Some("arn:aws:iam::1:user/clock".into()));
    let job_id = batchops_core::jobs::create_job(&deps, request, &actor)
        .await
        .unwrap();
    assert_eq!(job_id, Ids::seeded(11).uuid(), "the id is the seeded one");
    let held = stack
        .until(&job_id, 60, |j| j["Status"] == "Suspended")
        .await;
    let created = held["CreationTime"].as_str().unwrap();
    assert!(created.starts_with("2031-01-01T00:00:0"), "{held}");
    batchops_core::jobs::update_status(&deps, &job_id, "Cancelled", None, &actor)
        .await
        .unwrap();
    let job = stack.api.describe(&job_id).await.unwrap();
    let cancelled = &job["Audit"]["Cancelled"]["At"];
    assert!(
        cancelled
            .as_str()
            .is_some_and(|t| t.starts_with("2031-01-01T00:0")),
        "the cancel is stamped by the given clock: {job}"
    );
}
