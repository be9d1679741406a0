//! No caller reaches beyond its rights: the stack's own bucket holds other jobs' intermediate
//! results and intake objects, so no job may name it except where it belongs (intake
//! manifests, reports under `reports/`, generated manifests under `generated/`).

use batchops_tests::{StackOptions, TestStack, copy_job, unique};
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

/// Security issue §2: what cannot be undone, or opens objects to the world, is refused unless
/// the deployer enabled it — each with a 403 naming the field that asks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn destructive_and_public_powers_are_refused_unless_the_stack_enables_them() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |c| c.powers.clear(),
    })
    .await;
    let seeded = stack.seed(&["p/0".to_string()], &[]).await;
    let target = format!("arn:aws:s3:::{}", seeded.target);
    let all_users = "http://acs.amazonaws.com/groups/global/AllUsers";
    let cases = [
        (json!({"S3DeleteObject": {}}), "Operation.S3DeleteObject"),
        (
            json!({"S3PutObjectRetention": {"BypassGovernanceRetention": true,
                "Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": "2031-01-01T00:00:00Z"}}}),
            "Operation.S3PutObjectRetention.BypassGovernanceRetention",
        ),
        (
            json!({"S3PutObjectRetention": {"Retention": {"Mode": "COMPLIANCE",
                "RetainUntilDate": "2031-01-01T00:00:00Z"}}}),
            "Operation.S3PutObjectRetention.Retention.Mode",
        ),
        (
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}}),
            "Operation.S3PutObjectAcl.AccessControlPolicy.CannedAccessControlList",
        ),
        (
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"AccessControlList": {
                "Owner": {"ID": "owner"},
                "Grants": [{"Grantee": {"TypeIdentifier": "uri", "Identifier": all_users},
                            "Permission": "READ"}]}}}}),
            "Operation.S3PutObjectAcl.AccessControlPolicy.AccessControlList.Grants[0].Grantee",
        ),
        (
            json!({"S3PutObjectCopy": {"TargetResource": target, "CannedAccessControlList": "authenticated-read"}}),
            "Operation.S3PutObjectCopy.CannedAccessControlList",
        ),
        (
            json!({"S3PutObjectCopy": {"TargetResource": target, "AccessControlGrants": [
                {"Grantee": {"TypeIdentifier": "uri", "Identifier": all_users}, "Permission": "READ"}]}}),
            "Operation.S3PutObjectCopy.AccessControlGrants[0].Grantee",
        ),
        (
            json!({"S3PutObjectCopy": {"TargetResource": target, "ObjectLockMode": "COMPLIANCE",
                "ObjectLockRetainUntilDate": "2031-01-01T00:00:00Z"}}),
            "Operation.S3PutObjectCopy.ObjectLockMode",
        ),
    ];
    for (operation, field) in cases {
        let mut body = seeded.copy_job("AllTasks");
        body["Operation"] = operation;
        refused(&stack, &body, field).await;
    }
    // The same operations without those parameters are ordinary.
    let mut body = seeded.copy_job("AllTasks");
    body["Operation"] = json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "bucket-owner-full-control"}}});
    let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
}

/// Security issue §2: a stack can narrow the operations it runs at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operation_outside_the_allowed_operations_is_refused_naming_it() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |c| c.allowed_operations = vec!["S3PutObjectTagging".into()],
    })
    .await;
    let seeded = stack.seed(&["o/0".to_string()], &[]).await;
    refused(
        &stack,
        &seeded.copy_job("AllTasks"),
        "Operation.S3PutObjectCopy",
    )
    .await;
    let mut body = seeded.copy_job("AllTasks");
    body["Operation"] = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}});
    let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
}

/// Security issue §2: a job created while a power was enabled runs none of its tasks once the
/// stack no longer grants it (a redeploy in between): each task is an `AccessDenied` row.
/// Creates a job through the job service of `creator` (another stack configuration than the
/// running one: what a job made before a redeploy met), waits until it is `Complete` and
/// returns its report (under `reports` of `report_bucket`).
async fn run_as_created_by(
    stack: &TestStack,
    creator: &batchops_core::Deps,
    body: Value,
    report_bucket: &str,
) -> batchops_cli::client::Report {
    let request = serde_json::from_value(body).unwrap();
    let job_id =
        batchops_core::jobs::create_job(creator, request, &batchops_core::job::Actor::api(None))
            .await
            .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    stack.report(report_bucket, "reports", &job_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_power_was_withdrawn_after_it_was_created_deletes_nothing() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| c.powers.clear(),
    })
    .await;
    let keys: Vec<String> = (0..3).map(|i| format!("keep/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["Operation"] = json!({"S3DeleteObject": {}});
    // Created as the stack was before its redeploy: with deletes enabled.
    let mut before = (*stack.dev.deps).clone();
    before.config.powers = batchops_core::ops::powers::Power::ALL.to_vec();
    let report = run_as_created_by(&stack, &before, body, &seeded.target).await;
    for key in &keys {
        batchops_tests::assert_failed_row(
            batchops_tests::row_of(&report, key),
            "403",
            "AccessDenied",
        );
        assert!(
            stack.get(&seeded.source, key).await.is_some(),
            "{key} is still there"
        );
    }
}

/// Security issue §1: the worker refuses the tasks of a job naming the stack's own bucket as
/// its copy target whatever created the job (here the job service of a stack that took another
/// bucket for its own, so the API's refusal did not apply): AccessDenied rows, nothing written
/// among the stack's results.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_copying_into_the_stack_bucket_is_refused_by_the_worker_too() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |_| {},
    })
    .await;
    let own = stack.dev.deps.config.bucket.clone();
    let keys: Vec<String> = (0..3).map(|i| format!("forge/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["Operation"] = json!({"S3PutObjectCopy": {
        "TargetResource": format!("arn:aws:s3:::{own}"), "TargetKeyPrefix": "results/other-job"}});
    let mut elsewhere = (*stack.dev.deps).clone();
    elsewhere.config.bucket = unique("not-the-stack-bucket");
    let report = run_as_created_by(&stack, &elsewhere, body, &seeded.target).await;
    for key in &keys {
        let row = batchops_tests::row_of(&report, key);
        batchops_tests::assert_failed_row(row, "403", "AccessDenied");
        assert!(
            row.message
                .contains("Operation.S3PutObjectCopy.TargetResource"),
            "{row:?}"
        );
    }
    let forged = stack
        .s3
        .list_objects_v2()
        .bucket(&own)
        .prefix("results/other-job")
        .send()
        .await
        .unwrap();
    assert!(forged.contents().is_empty(), "{:?}", forged.contents());
}

/// Security issue §1: a report without `Report.Bucket` goes to the stack's own bucket, so it
/// too goes under reports/ (where the finalizer's role may write; a report under intake/ would
/// start a job): by default there, and refused (403 naming `Report.Prefix`) anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_without_a_bucket_goes_under_reports_of_the_stack_bucket_and_nowhere_else() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |_| {},
    })
    .await;
    let own = stack.dev.deps.config.bucket.clone();
    let seeded = stack
        .seed(&["r/0".to_string(), "r/1".to_string()], &[])
        .await;
    let mut body = seeded.copy_job("AllTasks");
    body["Report"] =
        json!({"Enabled": true, "Format": "Report_CSV_20180820", "ReportScope": "AllTasks"});
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["Report"]["Bucket"],
        format!("arn:aws:s3:::{own}"),
        "{job}"
    );
    assert_eq!(job["Report"]["Prefix"], "reports", "{job}");
    let report = stack.report(&own, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 2);

    for prefix in ["intake", "elsewhere", "reportsx"] {
        body["Report"]["Prefix"] = prefix.into();
        let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
        assert_eq!(status, 403, "Prefix {prefix:?}: {answer}");
        assert!(
            answer["Message"]
                .as_str()
                .unwrap()
                .contains("Report.Prefix"),
            "{answer}"
        );
    }
}

/// Security issue §3: DescribeJob records who created, confirmed, paused, resumed and
/// cancelled a job through the API (API Gateway's IAM principal; `batchops dev` has none, so
/// "not provided"; `invoke-check` shows a real one from infra/events/api-create-job.json).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn describe_job_says_who_created_confirmed_paused_resumed_and_cancelled_it() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["a/0".to_string()], &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack
        .until(&job_id, 30, |j| j["Status"] == "Suspended")
        .await;
    assert_eq!(
        job["Audit"]["Created"],
        json!({"By": "not provided", "Via": "API", "At": job["CreationTime"]}),
        "{job}"
    );
    assert!(job["Audit"].get("Confirmed").is_none(), "{job}");
    stack.api.set_status(&job_id, "Ready", None).await.unwrap();
    let job = stack.until(&job_id, 30, |j| j["Status"] == "Active").await;
    stack.api.set_status(&job_id, "Paused", None).await.unwrap();
    // No worker runs here: the job stays Pausing, which is enough to resume it.
    stack
        .until(&job_id, 30, |j| {
            j["Status"] == "Pausing" || j["Status"] == "Paused"
        })
        .await;
    stack.api.set_status(&job_id, "Active", None).await.unwrap();
    stack
        .api
        .set_status(&job_id, "Cancelled", None)
        .await
        .unwrap();
    let done = stack
        .until(&job_id, 30, |j| j["Audit"].get("Cancelled").is_some())
        .await;
    for action in ["Created", "Confirmed", "Paused", "Resumed", "Cancelled"] {
        let entry = &done["Audit"][action];
        assert_eq!(
            (&entry["By"], &entry["Via"]),
            (&json!("not provided"), &json!("API")),
            "{action}: {done}"
        );
        assert!(
            entry["At"]
                .as_str()
                .is_some_and(|t| t >= job["CreationTime"].as_str().unwrap()),
            "{action}: {done}"
        );
    }
}
