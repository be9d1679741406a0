//! Every status transition through the HTTP API: confirmation, cancel, pause and resume, the
//! failure threshold, idempotent create, ListJobs paging, priority and tagging.

use batchops_tests::{StackOptions, TestStack, copy_job};
use serde_json::{Value, json};
use std::time::Duration;

async fn post(stack: &TestStack, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", stack.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn set_status(stack: &TestStack, job_id: &str, status: &str) -> (u16, Value) {
    post(
        stack,
        &format!("/jobs/{job_id}/status"),
        json!({"RequestedJobStatus": status, "StatusUpdateReason": format!("test asks for {status}")}),
    )
    .await
}

async fn objects_in(stack: &TestStack, bucket: &str, prefix: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let out = stack
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        n += out.contents().len();
        token = out.next_continuation_token().map(String::from);
        if token.is_none() {
            return n;
        }
    }
}

/// A source bucket with `n` objects and its manifest; returns (source, target, etag).
async fn seed(stack: &TestStack, n: usize) -> (String, String, String) {
    let keys: Vec<String> = (0..n).map(|i| format!("o/{i:05}")).collect();
    let s = stack.seed(&keys, &[]).await;
    (s.source, s.target, s.etag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirmation_required_suspends_with_the_total_until_ready() {
    let stack = TestStack::start().await;
    let (source, target, etag) = seed(&stack, 25).await;
    let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack
        .until(&job_id, 30, |j| j["Status"] == "Suspended")
        .await;
    assert_eq!(
        job["ProgressSummary"]["TotalNumberOfTasks"], 25,
        "the total is known while suspended"
    );
    assert_eq!(job["ConfirmationRequired"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        objects_in(&stack, &target, "copy/").await,
        0,
        "nothing runs before confirmation"
    );

    // Illegal while suspended: pausing and resuming.
    for status in ["Paused", "Active"] {
        let (code, answer) = set_status(&stack, &job_id, status).await;
        assert_eq!(code, 409, "{status}: {answer}");
        assert_eq!(answer["Code"], "ConflictException");
    }
    let (code, answer) = set_status(&stack, &job_id, "Complete").await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["Message"]
            .as_str()
            .unwrap()
            .contains("RequestedJobStatus")
    );

    let (code, answer) = set_status(&stack, &job_id, "Ready").await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Status"], "Ready");
    assert_eq!(answer["StatusUpdateReason"], "test asks for Ready");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 25);
    assert_eq!(objects_in(&stack, &target, "copy/").await, 25);

    // Illegal once ended.
    for status in ["Ready", "Cancelled", "Paused", "Active"] {
        let (code, _) = set_status(&stack, &job_id, status).await;
        assert_eq!(code, 409, "{status} after Complete");
    }
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_suspended_job_ends_it_without_running_anything() {
    let stack = TestStack::start().await;
    let (source, target, etag) = seed(&stack, 5).await;
    let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    stack
        .until(&job_id, 30, |j| j["Status"] == "Suspended")
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(
        (code, answer["Status"].as_str()),
        (200, Some("Cancelled")),
        "{answer}"
    );
    let job = stack.api.describe(&job_id).await.unwrap();
    assert!(job["TerminationDate"].is_string());
    assert_eq!(
        objects_in(&stack, &target, "").await,
        0,
        "no task, no report"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_mid_run_stops_tasks_and_reports_what_ran() {
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |c| {
            c.chunk_size = 20;
            c.task_concurrency = 2;
            c.status_check_interval = Duration::from_millis(100);
        },
    })
    .await;
    let (source, target, etag) = seed(&stack, 400).await;
    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "m.csv",
            Some(&etag),
            &target,
            &target,
            "AllTasks",
        ))
        .await
        .unwrap();
    stack
        .until(&job_id, 60, |j| {
            j["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64() > Some(0)
        })
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Status"], "Cancelling");
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let ran = job["ProgressSummary"]["NumberOfTasksSucceeded"]
        .as_u64()
        .unwrap();
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksFailed"], 0,
        "unrun tasks are not failures"
    );
    assert!(ran < 400, "the cancel stopped the job early ({ran} ran)");
    // Nothing ran after the cancel was seen: every copy made is one the report accounts for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(objects_in(&stack, &target, "copy/").await as u64, ran);
    let report = stack.report(&target, "reports", &job_id).await;
    assert_eq!(report.rows.len() as u64, ran, "a report of what ran");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_resume_lose_nothing() {
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |c| {
            c.chunk_size = 10;
            c.task_concurrency = 2;
        },
    })
    .await;
    let (source, target, etag) = seed(&stack, 150).await;
    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "m.csv",
            Some(&etag),
            &target,
            &target,
            "AllTasks",
        ))
        .await
        .unwrap();
    stack
        .until(&job_id, 60, |j| {
            j["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64() > Some(0)
        })
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(
        (code, answer["Status"].as_str()),
        (200, Some("Pausing")),
        "{answer}"
    );
    let paused = stack.until(&job_id, 30, |j| j["Status"] == "Paused").await;
    let at_pause = paused["ProgressSummary"]["NumberOfTasksSucceeded"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(still["Status"], "Paused");
    assert_eq!(
        still["ProgressSummary"]["NumberOfTasksSucceeded"]
            .as_u64()
            .unwrap(),
        at_pause,
        "no chunk runs while paused"
    );
    assert!(at_pause < 150);

    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 409, "pausing a paused job: {answer}");
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(
        (code, answer["Status"].as_str()),
        (200, Some("Active")),
        "{answer}"
    );
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 150,
        "nothing lost"
    );
    assert_eq!(objects_in(&stack, &target, "copy/").await, 150);
    let dlq = stack
        .sqs
        .get_queue_url()
        .queue_name(format!(
            "{}-dlq",
            stack
                .dev
                .deps
                .config
                .work_queue_url
                .rsplit('/')
                .next()
                .unwrap()
        ))
        .send()
        .await
        .unwrap();
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(dlq.queue_url().unwrap())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes().unwrap()
            [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages],
        "0",
        "no paused chunk went to the DLQ"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_failing_past_its_threshold_ends_failed() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let rows: Vec<_> = (0..1500)
        .map(|i| (source.clone(), format!("absent/{i}")))
        .collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "m.csv",
            Some(&etag),
            &target,
            &target,
            "FailedTasksOnly",
        ))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(180)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    let reason = &job["FailureReasons"][0];
    assert_eq!(
        reason["FailureCode"], "TaskFailureThresholdExceeded",
        "{job}"
    );
    let failed = job["ProgressSummary"]["NumberOfTasksFailed"]
        .as_u64()
        .unwrap();
    assert!(failed >= 1000, "{failed}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
    let report = stack.report(&target, "reports", &job_id).await;
    assert_eq!(
        report.rows.len() as u64,
        failed,
        "a report is written for a failed job"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_request_tokens_make_create_idempotent() {
    let stack = TestStack::start().await;
    let (source, target, etag) = seed(&stack, 3).await;
    let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    body["ClientRequestToken"] = "token-1".into();
    let first = stack.api.create(&body).await.unwrap();
    let again = stack.api.create(&body).await.unwrap();
    assert_eq!(first, again);
    body["Priority"] = 99.into();
    let (code, answer) = stack.post_jobs_raw(body.to_string()).await;
    assert_eq!(code, 409, "{answer}");
    assert!(answer["Message"].as_str().unwrap().contains("token-1"));
    stack.wait(&first, Duration::from_secs(60)).await;
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_jobs_pages_newest_first_and_filters_by_status() {
    let stack = TestStack::start().await;
    let (source, target, etag) = seed(&stack, 2).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
        body["ConfirmationRequired"] = (i % 2 == 0).into();
        body["Description"] = format!("job {i}").into();
        ids.push(stack.api.create(&body).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let want = if i % 2 == 0 { "Suspended" } else { "Complete" };
        stack.until(id, 60, |j| j["Status"] == want).await;
    }
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{}/jobs?MaxResults=2", stack.base_url);
        if let Some(t) = &token {
            url.push_str(&format!("&NextToken={t}"));
        }
        let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        let jobs = page["Jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(
            jobs.iter()
                .map(|j| j["JobId"].as_str().unwrap().to_string()),
        );
        assert!(
            jobs.iter()
                .all(|j| j["Operation"] == "S3PutObjectCopy" && j["ProgressSummary"].is_object())
        );
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert!(pages >= 3);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let suspended: Value = http
        .get(format!("{}/jobs?JobStatuses=Suspended", stack.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got: Vec<&str> = suspended["Jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["JobId"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[2].as_str(), ids[0].as_str()]);

    for bad in [
        "JobStatuses=Sleeping",
        "MaxResults=0",
        "MaxResults=5000",
        "NextToken=garbage!",
    ] {
        let resp = http
            .get(format!("{}/jobs?{bad}", stack.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
    }
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_and_tagging_can_be_changed() {
    let stack = TestStack::start().await;
    let (source, target, etag) = seed(&stack, 2).await;
    let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    body["Tags"] = json!([{"Key": "team", "Value": "storage"}]);
    let job_id = stack.api.create(&body).await.unwrap();

    let (code, answer) = post(
        &stack,
        &format!("/jobs/{job_id}/priority"),
        json!({"Priority": 42}),
    )
    .await;
    assert_eq!(
        (code, answer["Priority"].as_i64()),
        (200, Some(42)),
        "{answer}"
    );
    assert_eq!(stack.api.describe(&job_id).await.unwrap()["Priority"], 42);
    let (code, _) = post(
        &stack,
        &format!("/jobs/{job_id}/priority"),
        json!({"Priority": -1}),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = post(&stack, "/jobs/nope/priority", json!({"Priority": 1})).await;
    assert_eq!(code, 404);

    let http = reqwest::Client::new();
    let url = format!("{}/jobs/{job_id}/tagging", stack.base_url);
    let tags: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "storage"}]));
    let put = http
        .put(&url)
        .json(&json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let tags: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 2);
    let dup = http
        .put(&url)
        .json(&json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status().as_u16(), 400);
    assert_eq!(
        http.delete(&url).send().await.unwrap().status().as_u16(),
        200
    );
    let tags: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["Tags"], json!([]));
    stack.wait(&job_id, Duration::from_secs(60)).await;
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_limited_workers_a_high_priority_job_finishes_first() {
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |c| {
            c.chunk_size = 10;
            c.task_concurrency = 2;
        },
    })
    .await;
    let (source, target, etag) = seed(&stack, 300).await;
    let mut low = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    low["Priority"] = 5.into();
    let low_id = stack.api.create(&low).await.unwrap();
    stack
        .until(&low_id, 60, |j| {
            j["ProgressSummary"]["NumberOfTasksSucceeded"].as_u64() > Some(0)
        })
        .await;

    let urgent_rows: Vec<_> = (0..20)
        .map(|i| (source.clone(), format!("o/{i:05}")))
        .collect();
    let urgent_etag = stack
        .put_manifest(&source, "urgent.csv", &urgent_rows)
        .await;
    let mut high = copy_job(
        &source,
        "urgent.csv",
        Some(&urgent_etag),
        &target,
        &target,
        "AllTasks",
    );
    high["Priority"] = 500.into();
    high["Operation"]["S3PutObjectCopy"]["TargetKeyPrefix"] = "urgent".into();
    let high_id = stack.api.create(&high).await.unwrap();

    let high_job = stack.wait(&high_id, Duration::from_secs(120)).await;
    assert_eq!(high_job["Status"], "Complete");
    let low_now = stack.api.describe(&low_id).await.unwrap();
    assert_ne!(
        low_now["Status"], "Complete",
        "the high-priority job overtook the earlier low-priority one"
    );
    let low_job = stack.wait(&low_id, Duration::from_secs(180)).await;
    assert_eq!(low_job["Status"], "Complete");
    assert!(high_job["TerminationDate"].as_str() < low_job["TerminationDate"].as_str());
    stack.dev.stop().await;
}

/// Accounting §4: the work of one ListJobs call and of one sweep is bounded by what they
/// need, not by every job the table keeps (ended jobs are kept 90 days).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_jobs_reads_a_bounded_number_of_pages_per_call_and_the_sweep_only_open_jobs() {
    let stack = TestStack::start_with_dev(
        StackOptions {
            workers: 2,
            tune: |_| {},
        },
        |d| d.sweep_interval = Duration::ZERO,
    )
    .await;
    let deps = stack.dev.deps.clone();
    let (source, target, etag) = seed(&stack, 1).await;
    let mut ids = Vec::new();
    for i in 0..13 {
        let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
        // The last one waits for confirmation: the one open job.
        body["ConfirmationRequired"] = (i == 12).into();
        ids.push(stack.api.create(&body).await.unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        let want = if i == 12 { "Suspended" } else { "Complete" };
        stack.until(id, 90, |j| j["Status"] == want).await;
    }
    // An ended job leaves the open-jobs index once its events are published, right after its
    // last status write.
    for _ in 0..100 {
        let (open, _) = deps.store.open_jobs_page(100, None).await.unwrap();
        if open.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let swept = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(swept.examined, 1, "only the open job is read: {swept:?}");
    // No job is Failed: one job a page, each call reads at most LIST_PAGES index pages and
    // answers with a NextToken to go on from.
    let mut calls = 0;
    let mut token: Option<String> = None;
    loop {
        let page = stack
            .api
            .list(&["Failed".to_string()], Some(1), token.as_deref())
            .await
            .unwrap();
        calls += 1;
        assert_eq!(page["Jobs"].as_array().map(Vec::len), Some(0), "{page}");
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(calls < 10, "ListJobs never ends");
    }
    assert_eq!(
        calls,
        2,
        "13 jobs, 1 read each, {} reads a call",
        batchops_core::jobs::LIST_PAGES
    );
    // An open-status filter reads the open-jobs index.
    let open = stack
        .api
        .list(&["Suspended".to_string()], None, None)
        .await
        .unwrap();
    assert_eq!(open["Jobs"].as_array().map(Vec::len), Some(1), "{open}");
    assert_eq!(open["Jobs"][0]["JobId"], ids[12].as_str(), "{open}");
}
