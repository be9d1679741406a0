//! Stock AWS clients drive batchops on S3 Control's own wire (REST-XML under `/v20180820`):
//! the Rust `aws-sdk-s3control` client runs every job operation against `batchops dev`, a job
//! made on the wire is the same job (same report, same counts) as one made on the JSON API,
//! and malformed requests get the model's error codes, never a 500.
//!
//! The client reaches `batchops dev` through a fixed endpoint resolver, which bypasses the
//! rules that would put the account id in front of the host name (S3CONTROL.md).

use aws_sdk_s3control::Client;
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, JobStatus, RequestedJobStatus,
    S3CopyObjectOperation, S3Tag,
};
use batchops_tests::{TestStack, copy_job, unique};
use serde_json::Value;
use std::time::Duration;

const ACCOUNT: &str = "123456789012";

fn control(stack: &TestStack) -> Client {
    batchops_tests::s3control_client(&stack.sdk, &stack.base_url)
}

fn tag(k: &str, v: &str) -> S3Tag {
    S3Tag::builder().key(k).value(v).build().unwrap()
}

/// A copy job over `manifest` (with its ETag) into `target` under `copy`, reporting all tasks
/// to `<bucket>/reports`.
fn copy(
    bucket: &str,
    manifest: &str,
    etag: &str,
    target: &str,
) -> (JobOperation, JobManifest, JobReport) {
    let op = JobOperation::builder()
        .s3_put_object_copy(
            S3CopyObjectOperation::builder()
                .target_resource(format!("arn:aws:s3:::{target}"))
                .target_key_prefix("copy")
                .build(),
        )
        .build();
    let manifest = JobManifest::builder()
        .spec(
            JobManifestSpec::builder()
                .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                .fields(JobManifestFieldName::Bucket)
                .fields(JobManifestFieldName::Key)
                .build()
                .unwrap(),
        )
        .location(
            JobManifestLocation::builder()
                .object_arn(format!("arn:aws:s3:::{bucket}/{manifest}"))
                .e_tag(etag)
                .build()
                .unwrap(),
        )
        .build();
    let report = JobReport::builder()
        .enabled(true)
        .bucket(format!("arn:aws:s3:::{bucket}"))
        .format(JobReportFormat::ReportCsv20180820)
        .prefix("reports")
        .report_scope(JobReportScope::AllTasks)
        .build();
    (op, manifest, report)
}

async fn status_of(c: &Client, id: &str) -> JobStatus {
    let d = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap();
    d.job.unwrap().status.unwrap()
}

async fn until_status(c: &Client, id: &str, want: JobStatus) {
    for _ in 0..600 {
        let now = status_of(c, id).await;
        if now == want {
            return;
        }
        let ended = [JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled];
        assert!(
            !ended.contains(&now),
            "job {id} ended {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "job {id} never reached {want:?}: {:?}",
        status_of(c, id).await
    );
}

/// Rows as comparable text: key, task status, HTTP status, error code.
fn rows(report: &batchops_cli::client::Report) -> Vec<String> {
    let mut r: Vec<String> = report
        .rows
        .iter()
        .map(|r| format!("{} {} {} {}", r.key, r.status, r.http_status, r.error_code))
        .collect();
    r.sort();
    r
}

#[tokio::test]
async fn the_rust_sdk_runs_a_job_through_confirmation_with_the_same_result_as_the_json_api() {
    let stack = TestStack::start().await;
    let c = control(&stack);
    let src = stack.bucket("wire-src").await;
    let keys: Vec<String> = (0..5).map(|i| format!("k/{i} é+&.txt")).collect();
    stack.put_objects(&src, &keys).await;
    let mut listed: Vec<(String, String)> = keys.iter().map(|k| (src.clone(), k.clone())).collect();
    listed.push((src.clone(), "k/missing".into()));
    let etag = stack.put_manifest(&src, "m.csv", &listed).await;
    let (op, manifest, report) = copy(&src, "m.csv", &etag, &src);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/batch-ops");

    let created = c
        .create_job()
        .account_id(ACCOUNT)
        .confirmation_required(true)
        .operation(op)
        .manifest(manifest)
        .report(report)
        .priority(10)
        .role_arn(&role)
        .description("wire job")
        .tags(tag("team", "data"))
        .client_request_token(unique("tok"))
        .send()
        .await
        .unwrap();
    let id = created.job_id.unwrap();
    until_status(&c, &id, JobStatus::Suspended).await;
    let job = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(&id)
        .send()
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(
        job.job_arn.as_deref(),
        Some(format!("arn:aws:s3:us-east-1:{ACCOUNT}:job/{id}").as_str())
    );
    assert_eq!(job.role_arn.as_deref(), Some(role.as_str()));
    assert_eq!(job.description.as_deref(), Some("wire job"));
    assert_eq!(job.confirmation_required, Some(true));
    assert!(
        job.suspended_date.is_some() && job.suspended_cause.is_some(),
        "{job:?}"
    );
    let m = job.manifest.unwrap();
    assert_eq!(
        m.spec.unwrap().fields.unwrap(),
        [JobManifestFieldName::Bucket, JobManifestFieldName::Key]
    );
    assert_eq!(m.location.unwrap().e_tag, etag);

    let confirmed = c
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&id)
        .requested_job_status(RequestedJobStatus::Ready)
        .status_update_reason("go")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status, Some(JobStatus::Ready));
    assert_eq!(confirmed.status_update_reason.as_deref(), Some("go"));
    until_status(&c, &id, JobStatus::Complete).await;
    let job = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(&id)
        .send()
        .await
        .unwrap()
        .job
        .unwrap();
    let p = job.progress_summary.unwrap();
    assert_eq!(
        (
            p.total_number_of_tasks,
            p.number_of_tasks_succeeded,
            p.number_of_tasks_failed
        ),
        (Some(6), Some(5), Some(1))
    );
    assert!(job.termination_date.is_some() && job.creation_time.is_some());

    // The same job on the JSON API: the same counts and report rows.
    let mut body = copy_job(&src, "m.csv", Some(&etag), &src, &src, "AllTasks");
    body["Report"]["Prefix"] = "reports".into();
    let json_id = stack.api.create(&body).await.unwrap();
    let json_job = stack.wait(&json_id, Duration::from_secs(120)).await;
    let wire_json = stack.api.describe(&id).await.unwrap();
    assert_eq!(
        wire_json["Status"], "Complete",
        "the wire job, through the JSON API: {wire_json}"
    );
    let counts = |j: &Value| {
        let p = &j["ProgressSummary"];
        [
            p["TotalNumberOfTasks"].clone(),
            p["NumberOfTasksSucceeded"].clone(),
            p["NumberOfTasksFailed"].clone(),
        ]
    };
    assert_eq!(counts(&json_job), counts(&wire_json));
    let wire_report = stack.report(&src, "reports", &id).await;
    let json_report = stack.report(&src, "reports", &json_id).await;
    assert_eq!(rows(&wire_report), rows(&json_report));
    assert_eq!(wire_report.rows.len(), 6);
}

#[tokio::test]
async fn the_rust_sdk_lists_pages_prioritises_tags_and_gets_each_modeled_error() {
    let stack = TestStack::start().await;
    let c = control(&stack);
    let src = stack.bucket("wire-mgmt").await;
    stack.put_objects(&src, &["one".to_string()]).await;
    let etag = stack
        .put_manifest(&src, "m.csv", &[(src.clone(), "one".into())])
        .await;
    let create = |token: String, description: &'static str| {
        let (op, manifest, report) = copy(&src, "m.csv", &etag, &src);
        c.create_job()
            .account_id(ACCOUNT)
            .confirmation_required(true)
            .operation(op)
            .manifest(manifest)
            .report(report)
            .priority(1)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/r"))
            .description(description)
            .client_request_token(token)
            .send()
    };
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            create(unique("tok"), "one of five")
                .await
                .unwrap()
                .job_id
                .unwrap(),
        );
    }
    for id in &ids {
        until_status(&c, id, JobStatus::Suspended).await;
    }

    // Paging: the SDK's paginator over pages of two finds all five, each once.
    let mut seen: Vec<String> = Vec::new();
    let mut pages = c
        .list_jobs()
        .account_id(ACCOUNT)
        .job_statuses(JobStatus::Suspended)
        .max_results(2)
        .into_paginator()
        .send();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        page_count += 1;
        for j in page.jobs.unwrap_or_default() {
            assert_eq!(j.status, Some(JobStatus::Suspended));
            assert_eq!(j.description.as_deref(), Some("one of five"));
            seen.push(j.job_id.unwrap());
        }
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);
    assert!(page_count >= 3, "{page_count} pages of at most 2");
    let none = c
        .list_jobs()
        .account_id(ACCOUNT)
        .job_statuses(JobStatus::Complete)
        .send()
        .await
        .unwrap();
    assert!(none.jobs.unwrap_or_default().is_empty() && none.next_token.is_none());

    // Priority and tags.
    let id = &ids[0];
    let p = c
        .update_job_priority()
        .account_id(ACCOUNT)
        .job_id(id)
        .priority(42)
        .send()
        .await
        .unwrap();
    assert_eq!((p.job_id.as_str(), p.priority), (id.as_str(), 42));
    let job = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(job.priority, 42);
    c.put_job_tagging()
        .account_id(ACCOUNT)
        .job_id(id)
        .tags(tag("a", "1"))
        .tags(tag("b", "two words"))
        .send()
        .await
        .unwrap();
    let tags = c
        .get_job_tagging()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags, [tag("a", "1"), tag("b", "two words")]);
    c.delete_job_tagging()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap();
    let tags = c
        .get_job_tagging()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap()
        .tags;
    assert!(tags.unwrap_or_default().is_empty());

    // Idempotency: the same token and body is the same job; another body is refused.
    let token = unique("tok");
    let first = create(token.clone(), "idem").await.unwrap().job_id.unwrap();
    let again = create(token.clone(), "idem").await.unwrap().job_id.unwrap();
    assert_eq!(first, again);
    let e = create(token, "another body")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_idempotency_exception(), "{e:?}");

    // An illegal status change: a cancelled job cannot be confirmed.
    let cancelled = c
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&ids[1])
        .requested_job_status(RequestedJobStatus::Cancelled)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status, Some(JobStatus::Cancelled));
    let e = c
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&ids[1])
        .requested_job_status(RequestedJobStatus::Ready)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_job_status_exception(), "{e:?}");

    let e = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id("no-such-job")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_not_found_exception(), "{e:?}");
    let e = c
        .get_job_tagging()
        .account_id(ACCOUNT)
        .job_id("no-such-job")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_not_found_exception(), "{e:?}");
    let many: Vec<S3Tag> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
    let e = c
        .put_job_tagging()
        .account_id(ACCOUNT)
        .job_id(id)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_too_many_tags_exception(), "{e:?}");
    let e = c
        .list_jobs()
        .account_id(ACCOUNT)
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_next_token_exception(), "{e:?}");
    let e = c
        .update_job_priority()
        .account_id(ACCOUNT)
        .job_id(id)
        .priority(-1)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_bad_request_exception(), "{e:?}");

    // A copy target in the stack's own bucket is refused with the service's AccessDenied.
    let (_, manifest, report) = copy(&src, "m.csv", &etag, &src);
    let (op, _, _) = copy(&src, "m.csv", &etag, &stack.dev.deps.config.bucket);
    let e = c
        .create_job()
        .account_id(ACCOUNT)
        .operation(op)
        .manifest(manifest)
        .report(report)
        .priority(1)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/r"))
        .send()
        .await
        .unwrap_err();
    use aws_sdk_s3control::error::ProvideErrorMetadata;
    assert_eq!(e.code(), Some("AccessDenied"), "{e:?}");
}

#[tokio::test]
async fn boto3_and_the_aws_cli_run_jobs_end_to_end_unmodified() {
    let stack = TestStack::start().await;
    let src = stack.bucket("wire-py").await;
    let keys: Vec<String> = (0..3).map(|i| format!("obj-{i}")).collect();
    stack.put_objects(&src, &keys).await;
    let rows: Vec<(String, String)> = keys.iter().map(|k| (src.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&src, "m.csv", &rows).await;
    let seen = batchops_tests::run_stock_clients(stack.dev.addr.port(), &src, "m.csv", &etag).await;
    for client in ["boto3", "cli"] {
        let s = &seen[client];
        assert_eq!(s["status"], "Complete", "{client}: {s}");
        let p = &s["progress"];
        assert_eq!(
            (
                &p["TotalNumberOfTasks"],
                &p["NumberOfTasksSucceeded"],
                &p["NumberOfTasksFailed"]
            ),
            (&3.into(), &3.into(), &0.into()),
            "{client}: {s}"
        );
        assert!(
            s["listed"].as_array().unwrap().contains(&s["job_id"]),
            "{client}: ListJobs shows the job: {s}"
        );
        // The job did what it says: the objects carry the tag it set.
        let job = stack
            .api
            .describe(s["job_id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(job["Description"], client);
    }
    let b = &seen["boto3"];
    assert_eq!(
        b["arn"],
        format!(
            "arn:aws:s3:us-east-1:{ACCOUNT}:job/{}",
            b["job_id"].as_str().unwrap()
        )
    );
    assert_eq!(
        b["tags"],
        serde_json::json!([{"Key": "client", "Value": "boto3"}])
    );
    assert_eq!(b["confirm_complete"], "JobStatusException");
    assert_eq!(b["describe_missing"], "NotFoundException");
    assert!(
        seen["cli"]["describe_missing"]
            .as_str()
            .unwrap()
            .contains("NotFoundException"),
        "{seen}"
    );
    let tagging = stack
        .s3
        .get_object_tagging()
        .bucket(&src)
        .key("obj-0")
        .send()
        .await
        .unwrap();
    let by: Vec<_> = tagging
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(
        by,
        [("by", "cli")],
        "the CLI's job ran last and tagged the objects"
    );
}

/// Sends `request` (a whole HTTP/1.1 request) over TCP and returns status line and body.
async fn raw(stack: &TestStack, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(stack.dev.addr)
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer))
        .await
        .expect("an answer, not a hang")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The `Code` of an `ErrorResponse`, checking that it is the wrapped form with a RequestId.
fn code_of(body: &str) -> String {
    assert!(
        body.contains("<ErrorResponse") && body.contains("<RequestId>"),
        "not an ErrorResponse: {body}"
    );
    let start = body.find("<Code>").unwrap() + 6;
    body[start..start + body[start..].find("</Code>").unwrap()].to_string()
}

#[tokio::test]
async fn malformed_wire_requests_get_the_models_error_codes_never_a_500_or_a_hang() {
    let stack = TestStack::start().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/v20180820{path}", stack.base_url);
    let post = |path: &str, body: String, account: bool| {
        let mut r = http.post(url(path)).body(body);
        if account {
            r = r.header("x-amz-account-id", ACCOUNT);
        }
        r.send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    };
    let job = r#"<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">
        <Operation><S3DeleteObjectTagging/></Operation><Priority>PRIORITY</Priority>
        <Report><Enabled>false</Enabled></Report></CreateJobRequest>"#;
    let cases: Vec<(&str, String, bool, u16, &str, &str)> = vec![
        (
            "bad XML",
            "<CreateJobRequest><Priority>1</Prio".into(),
            true,
            400,
            "BadRequestException",
            "",
        ),
        (
            "no account",
            job.replace("PRIORITY", "1"),
            false,
            400,
            "BadRequestException",
            "x-amz-account-id",
        ),
        (
            "wrong type",
            job.replace("PRIORITY", "ten"),
            true,
            400,
            "BadRequestException",
            "Priority",
        ),
        (
            "unknown element",
            job.replace("<Priority>", "<Prioritee>1</Prioritee><Priority>")
                .replace("PRIORITY", "1"),
            true,
            400,
            "BadRequestException",
            "Prioritee",
        ),
        (
            "no manifest",
            job.replace("PRIORITY", "1"),
            true,
            400,
            "BadRequestException",
            "Manifest",
        ),
        (
            "replication",
            job.replace("<S3DeleteObjectTagging/>", "<S3ReplicateObject/>")
                .replace("PRIORITY", "1"),
            true,
            400,
            "BadRequestException",
            "not supported",
        ),
    ];
    for (what, body, account, status, code, names) in cases {
        let (s, text) = answer(post("/jobs", body, account).await.unwrap()).await;
        assert_eq!(
            (s, code_of(&text).as_str()),
            (status, code),
            "{what}: {text}"
        );
        assert!(
            text.contains(names),
            "{what}: the message names {names:?}: {text}"
        );
    }

    // ListJobs' modeled code for a bad request is InvalidRequestException.
    let r = http
        .get(url("/jobs?maxResults=many"))
        .header("x-amz-account-id", ACCOUNT)
        .send()
        .await
        .unwrap();
    let (s, text) = answer(r).await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (400, "InvalidRequestException"),
        "{text}"
    );
    let r = http.get(url("/jobs")).send().await.unwrap();
    let (s, text) = answer(r).await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (400, "InvalidRequestException"),
        "{text}"
    );

    // Unknown operations and methods.
    for (method, path, status, code) in [
        ("GET", "/accesspoint", 404, "NotFoundException"),
        ("GET", "/jobs/abcdef/bogus", 404, "NotFoundException"),
        ("PATCH", "/jobs", 405, "MethodNotAllowed"),
    ] {
        let r = http
            .request(method.parse().unwrap(), url(path))
            .header("x-amz-account-id", ACCOUNT)
            .send()
            .await
            .unwrap();
        let (s, text) = answer(r).await;
        assert_eq!(
            (s, code_of(&text).as_str()),
            (status, code),
            "{method} {path}: {text}"
        );
    }

    // What a client sends through HTTP_PROXY: an absolute-form target and the account-prefixed Host.
    let port = stack.dev.addr.port();
    let (s, text) = raw(
        &stack,
        format!(
            "GET http://{ACCOUNT}.localhost:{port}/v20180820/jobs HTTP/1.1\r\nHost: \
             {ACCOUNT}.localhost:{port}\r\nx-amz-account-id: {ACCOUNT}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("<ListJobsResult"), "{text}");

    // A web page cannot drive the wire either: the refusal is the wire's AccessDenied.
    let r = http
        .post(url("/jobs"))
        .header("x-amz-account-id", ACCOUNT)
        .header("origin", "https://evil.example")
        .body(job.replace("PRIORITY", "1"))
        .send()
        .await
        .unwrap();
    let (s, text) = answer(r).await;
    assert_eq!(
        (s, code_of(&text).as_str()),
        (403, "AccessDenied"),
        "{text}"
    );
}

/// The Rust SDK with nothing but the environment S3CONTROL.md documents: its own endpoint
/// rules put the account in front of the host (`123456789012.localhost`, which this machine
/// does not resolve), and `HTTP_PROXY` takes the request to `batchops dev` anyway. The proxy
/// settings are process-wide, so the client runs in a child process: this test binary again,
/// running only [`rust_sdk_from_the_environment`].
#[tokio::test]
async fn the_rust_sdk_reaches_batchops_dev_through_http_proxy_with_its_own_endpoint_rules() {
    let stack = TestStack::start().await;
    let src = stack.bucket("wire-env").await;
    let etag = stack
        .put_manifest(&src, "m.csv", &[(src.clone(), "x".into())])
        .await;
    let id = stack
        .api
        .create(&copy_job(
            &src,
            "m.csv",
            Some(&etag),
            &src,
            &src,
            "AllTasks",
        ))
        .await
        .unwrap();
    let base = stack.base_url.clone();
    let port = stack.dev.addr.port();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rust_sdk_from_the_environment",
                "--ignored",
                "--nocapture",
            ])
            .env("BATCHOPS_WIRE_JOB", &id)
            .env("HTTP_PROXY", &base)
            .env("http_proxy", &base)
            .env("NO_PROXY", "")
            .env("no_proxy", "")
            .env(
                "AWS_ENDPOINT_URL_S3_CONTROL",
                format!("http://localhost:{port}"),
            )
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child half of the test above (ignored when run directly).
#[tokio::test]
#[ignore = "run by the_rust_sdk_reaches_batchops_dev_through_http_proxy_with_its_own_endpoint_rules"]
async fn rust_sdk_from_the_environment() {
    let id = std::env::var("BATCHOPS_WIRE_JOB").expect("run by its parent test");
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let c = Client::new(&sdk);
    let job = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(job.job.unwrap().job_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn a_failing_store_is_a_retryable_internal_service_exception_not_a_client_error() {
    let (proxy, stack) = batchops_tests::TestStack::behind_proxy(Default::default()).await;
    // One attempt: the SDK would retry a 500 (with backoff) before giving up.
    let c = Client::from_conf(
        control(&stack)
            .config()
            .to_builder()
            .retry_config(aws_sdk_s3control::config::retry::RetryConfig::disabled())
            .build(),
    );
    proxy.set(
        "dynamodb",
        batchops_tests::faults::Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let e = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id("0a1b2c3d-aaaa-bbbb-cccc-0123456789ab")
        .send()
        .await
        .unwrap_err();
    let raw = e.raw_response().map(|r| r.status().as_u16());
    let e = e.into_service_error();
    assert!(e.is_internal_service_exception(), "{e:?}");
    assert_eq!(raw, Some(500));
    proxy.set("dynamodb", Default::default());
    let e = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id("0a1b2c3d-aaaa-bbbb-cccc-0123456789ab")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_not_found_exception(), "the store is back: {e:?}");
}
