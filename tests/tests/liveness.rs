//! Every job ends: paths on which a job used to be stranded in a non-terminal status, each
//! with the behaviour that now ends it (or leaves it waiting for the user in `Suspended` or
//! `Paused`, from which confirm, resume or cancel lead to a terminal status).

use batchops_cli::dev::DevOptions;
use batchops_core::job::JobStatus;
use batchops_tests::{StackOptions, TestStack, copy_job, unique};
use serde_json::Value;
use std::time::Duration;

fn failure_codes(job: &Value) -> Vec<String> {
    job["FailureReasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["FailureCode"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A stack whose finalize messages are never read and that runs no sweep: jobs stop once
/// every chunk is counted, for the test to drive the sweep itself.
fn no_finalizer(d: &mut DevOptions) {
    d.finalizer = false;
    d.sweep_interval = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_bucket_that_does_not_exist_fails_the_job_with_report_write_failed() {
    let stack = TestStack::start().await;
    let keys: Vec<String> = (0..5).map(|i| format!("r/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let missing = unique("no-such-bucket");
    let body = copy_job(
        &seeded.source,
        "m.csv",
        Some(&seeded.etag),
        &seeded.target,
        &missing,
        "AllTasks",
    );
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack
        .until(&job_id, 60, |j| {
            JobStatus::parse(j["Status"].as_str().unwrap_or_default())
                .is_some_and(|s| s.is_terminal())
        })
        .await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ReportWriteFailed"], "{job}");
    // The tasks ran and stay counted.
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_prefix_too_long_for_s3_keys_is_refused_naming_the_field() {
    let stack = TestStack::start().await;
    let seeded = stack.seed(&["p/0".to_string()], &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    for prefix in ["x".repeat(513), "bad\nprefix".to_string(), String::new()] {
        body["Report"]["Prefix"] = prefix.clone().into();
        let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
        assert_eq!(status, 400, "prefix {prefix:?}: {answer}");
        assert!(
            answer.to_string().contains("Report.Prefix"),
            "names the field: {answer}"
        );
    }
    body["Report"]["Prefix"] = "x".repeat(512).into();
    let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
    assert_eq!(status, 200, "a 512-byte prefix is fine: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_broken_job_does_not_stop_the_sweep_repairing_the_others() {
    let stack = TestStack::start_with_dev(StackOptions::default(), no_finalizer).await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..4).map(|i| format!("s/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let body = seeded.copy_job("AllTasks");
    // The older job is healthy; the newer one (which the sweep reaches first: newest first)
    // has lost its result rows.
    let healthy = stack.api.create(&body).await.unwrap();
    stack
        .until(&healthy, 60, |j| {
            j["ProgressSummary"]["NumberOfTasksSucceeded"] == 4
        })
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let broken = stack.api.create(&body).await.unwrap();
    stack
        .until(&broken, 60, |j| {
            j["ProgressSummary"]["NumberOfTasksSucceeded"] == 4
        })
        .await;
    for job_id in [&healthy, &broken] {
        let job = deps.store.require(job_id).await.unwrap();
        assert!(
            job.reconciled() && job.status == JobStatus::Active,
            "{job:?}"
        );
    }
    let listed = stack
        .s3
        .list_objects_v2()
        .bucket(&deps.config.bucket)
        .prefix(format!("results/{broken}/"))
        .send()
        .await
        .unwrap();
    assert!(!listed.contents().is_empty());
    for object in listed.contents() {
        stack
            .s3
            .delete_object()
            .bucket(&deps.config.bucket)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap();
    }

    // The workers' own finalize messages are lost (no finalizer reads them).
    stack.lose_finalize_messages().await;
    let summary = batchops_core::finalizer::sweep(&deps)
        .await
        .expect("the sweep goes on past a broken job");
    assert_eq!(summary.finalize_queued, 2, "{summary:?}");
    assert!(stack.run_finalize_messages().await >= 2);
    let healthy = stack.api.describe(&healthy).await.unwrap();
    assert_eq!(healthy["Status"], "Complete", "{healthy}");
    let broken = stack.api.describe(&broken).await.unwrap();
    assert_eq!(broken["Status"], "Failed", "{broken}");
    assert_eq!(failure_codes(&broken), ["ReportResultsMissing"], "{broken}");
}

/// Five tasks a chunk and a zero planner budget: every invocation queues one chunk, checkpoints
/// and continues in the next, so a manifest of a few hundred rows spans a hundred invocations.
fn one_chunk_per_invocation(c: &mut batchops_core::Config) {
    c.chunk_size = 5;
    c.planner_budget = Duration::ZERO;
    c.status_check_interval = Duration::from_millis(100);
}

async fn set_status(stack: &TestStack, job_id: &str, status: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/jobs/{job_id}/status", stack.base_url))
        .json(&serde_json::json!({"RequestedJobStatus": status}))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// The report's rows: each manifest key at most once, and as many as the tasks that ran.
async fn assert_report_of_what_ran(stack: &TestStack, target: &str, job_id: &str, job: &Value) {
    let ran = job["ProgressSummary"]["NumberOfTasksSucceeded"]
        .as_u64()
        .unwrap()
        + job["ProgressSummary"]["NumberOfTasksFailed"]
            .as_u64()
            .unwrap();
    if ran == 0 {
        return;
    }
    let report = stack.report(target, "reports", job_id).await;
    let mut keys: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), before, "no row twice in the report");
    assert_eq!(before as u64, ran, "one row for each task that ran");
}

/// A copy job of `n` objects on a stack that plans one chunk per invocation, once `Active`
/// (its plan has most of its invocations ahead).
async fn a_job_being_planned(
    n: usize,
    prefix: &str,
) -> (TestStack, batchops_tests::Seeded, String) {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}/{i:04}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    (stack, seeded, job_id)
}

/// Every task the job holds is counted once — succeeded, failed or not run — and none beyond.
fn assert_accounted(job: &batchops_core::job::Job) {
    assert_eq!(
        job.succeeded + job.failed + job.not_run,
        job.total_tasks,
        "every task of the job accounted, none beyond it: {job:?}"
    );
    assert_eq!(job.chunks_done, job.chunks_total, "{job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_during_a_plan_of_many_invocations_ends_cancelled() {
    let (stack, seeded, job_id) = a_job_being_planned(600, "c").await;
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(stored.planned, "planning was closed");
    assert!(
        stored.total_tasks < 600,
        "the cancel stopped planning early"
    );
    assert_accounted(&stored);
    assert_report_of_what_ran(&stack, &seeded.target, &job_id, &job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_and_resume_during_a_plan_of_many_invocations_completes_every_row() {
    let (stack, seeded, job_id) = a_job_being_planned(400, "p").await;
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    stack.until(&job_id, 60, |j| j["Status"] == "Paused").await;
    let paused = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(
        !paused.planned,
        "paused part-way through planning: {paused:?}"
    );
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.wait(&job_id, Duration::from_secs(180)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 400, "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 400,
        "{job}"
    );
    assert_report_of_what_ran(&stack, &seeded.target, &job_id, &job).await;
}

/// A stack whose sweep runs only when the test calls it, with a preparing timeout of 4 s (so
/// the sweep's re-plan and pause thresholds, a quarter of it, are 1 s).
async fn stack_swept_by_hand(workers: usize) -> TestStack {
    TestStack::start_with_dev(
        StackOptions {
            workers,
            tune: |c| c.preparing_timeout = Duration::from_secs(4),
        },
        |d| d.sweep_interval = Duration::ZERO,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirmed_job_whose_plan_message_was_lost_is_planned_by_the_sweep() {
    let stack = stack_swept_by_hand(2).await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..12).map(|i| format!("l/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    stack
        .until(&job_id, 60, |j| j["Status"] == "Suspended")
        .await;
    // The confirm's status write lands; its plan message is lost.
    deps.store
        .transition(
            &job_id,
            &[JobStatus::Suspended],
            JobStatus::Ready,
            Default::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(summary.replanned, 1, "{summary:?}");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_job_cannot_be_cancelled() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = stack.dev.deps.clone();
    let seeded = stack.seed(&["f/0".to_string()], &[]).await;
    let body = seeded.copy_job("AllTasks");
    let job_id = stack.api.create(&body).await.unwrap();
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    deps.store
        .transition(
            &job_id,
            &[JobStatus::Active],
            JobStatus::Failing,
            Default::default(),
        )
        .await
        .unwrap();
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 409, "{answer}");
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["Status"], "Failing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_replaced_while_suspended_is_refused_not_run() {
    let stack = TestStack::start().await;
    let keys: Vec<String> = (0..6).map(|i| format!("k/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    // No ETag in the request: the one the count read is the one confirmed.
    let mut body = copy_job(
        &seeded.source,
        "m.csv",
        None,
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    let counted = stack
        .until(&job_id, 60, |j| j["Status"] == "Suspended")
        .await;
    assert_eq!(counted["ProgressSummary"]["TotalNumberOfTasks"], 6);
    // Replaced by a longer list while the user looks at the count.
    let more: Vec<(String, String)> = (0..9)
        .map(|i| (seeded.source.clone(), format!("k/{}", i % 6)))
        .collect();
    stack.put_manifest(&seeded.source, "m.csv", &more).await;
    let (code, answer) = set_status(&stack, &job_id, "Ready").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ManifestETagMismatch"], "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_count_that_keeps_checkpointing_is_not_timed_out_by_the_sweep() {
    // The sweep runs every 2 s and times out `Preparing` after 3 s; the count spans hundreds
    // of invocations and takes longer than that, checkpointing after each.
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |c| {
            one_chunk_per_invocation(c);
            c.preparing_timeout = Duration::from_secs(3);
        },
    })
    .await;
    let keys: Vec<String> = (0..1500).map(|i| format!("n/{i:05}")).collect();
    let seeded = stack.seed(&keys[..1], &[]).await;
    let rows: Vec<(String, String)> = keys
        .iter()
        .map(|k| (seeded.source.clone(), k.clone()))
        .collect();
    let etag = stack.put_manifest(&seeded.source, "big.csv", &rows).await;
    let mut body = copy_job(
        &seeded.source,
        "big.csv",
        Some(&etag),
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    body["ConfirmationRequired"] = true.into();
    let started = std::time::Instant::now();
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack
        .until(&job_id, 180, |j| {
            j["Status"] != "New" && j["Status"] != "Preparing"
        })
        .await;
    assert!(
        started.elapsed() > Duration::from_secs(5),
        "the count outlasted the timeout (else this test proves nothing)"
    );
    assert_eq!(job["Status"], "Suspended", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_read_that_fails_for_now_is_retried_not_failed() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions::default()).await;
    let keys: Vec<String> = (0..8).map(|i| format!("t/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    // More 503 SlowDowns than the SDK's own retries absorb: the first plan attempt fails.
    proxy.fail_next("GET", "/m.csv", 6);
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 8);
    let s3 = Some(proxy.errors("s3"));
    assert_eq!(s3, Some(6), "all six injected errors were met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_whose_count_fails_on_its_last_delivery_keeps_its_tasks_outcomes() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..4).map(|i| format!("o/{i}")).collect();
    let seeded = stack.seed(&keys[1..], &keys[..1]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let event = batchops_tests::sqs_event(&stack.receive_chunks(1).await, deps.config.max_receives);
    stack.until(&job_id, 30, |j| j["Status"] == "Active").await;
    // Every try of the SDK at the chunk's commit is throttled; the tasks have run by then.
    proxy.fail_next("POST", "TransactWriteItems", 5);
    let response = batchops_worker::handle(&deps, event).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "accounted, not dead-lettered"
    );
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 3, "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 1, "{job}");
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    let missing = batchops_tests::row_of(&report, "o/0");
    assert_eq!(
        missing.error_code, "NoSuchKey",
        "the real outcome: {missing:?}"
    );
    assert_eq!(batchops_tests::row_of(&report, "o/1").status, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_chunk_of_a_cancelled_job_is_not_run_rather_than_failed() {
    let stack = stack_swept_by_hand(0).await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..5).map(|i| format!("d/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let messages = stack.receive_chunks(1).await;
    stack.until(&job_id, 30, |j| j["Status"] == "Active").await;
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    // The chunk's message ends in the dead-letter queue.
    for m in &messages {
        stack.dead_letter(m.body().unwrap()).await;
        stack
            .sqs
            .delete_message()
            .queue_url(&deps.config.work_queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(summary.dead_chunks, 1, "{summary:?}");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 0, "{job}");
    let stored = deps.store.require(&job_id).await.unwrap();
    assert_eq!(stored.not_run, 5, "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_threshold_crossed_during_a_plan_of_many_invocations_ends_failed() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: one_chunk_per_invocation,
    })
    .await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    // Every object is missing: the threshold (10 tasks, 50%) is crossed in the first chunks,
    // while most of the manifest is still unplanned.
    let rows: Vec<_> = (0..600)
        .map(|i| (source.clone(), format!("absent/{i:04}")))
        .collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let mut body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    body["FailureThreshold"] = serde_json::json!({"MinTasks": 10, "Percent": 50});
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(
        failure_codes(&job),
        ["TaskFailureThresholdExceeded"],
        "{job}"
    );
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(stored.planned && stored.total_tasks < 600, "{stored:?}");
    assert_accounted(&stored);
    assert_report_of_what_ran(&stack, &target, &job_id, &job).await;
}

/// A copy job of 50 objects, planned one chunk per invocation on a stack with no workers,
/// whose first planner invocation queues chunk 0 and activates the job, then cannot save its
/// checkpoint (each of `invocations` invocations meets five throttled SDK tries) and fails —
/// as if it died there. Returns once the job is `Active`.
async fn a_planner_that_dies_after_its_first_chunk(
    prefix: &str,
    invocations: u32,
) -> (
    batchops_tests::faults::FaultProxy,
    TestStack,
    batchops_tests::Seeded,
    String,
) {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..50).map(|i| format!("{prefix}/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    proxy.fail_next_checkpoints(5 * invocations);
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    (proxy, stack, seeded, job_id)
}

/// Hands every chunk message on the work queue to the worker, as its event source would.
async fn run_queued_chunks(stack: &TestStack) {
    loop {
        let messages = stack.receive_chunks(0).await;
        if messages.is_empty() {
            return;
        }
        let event = batchops_tests::sqs_event(&messages, 1);
        let response = batchops_worker::handle(&stack.dev.deps, event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_after_a_planner_died_past_its_checkpoint_still_counts_the_chunks_it_sent() {
    // Twice over: the retried invocation cannot save its checkpoint either.
    let (proxy, stack, _, job_id) = a_planner_that_dies_after_its_first_chunk("g", 2).await;
    let deps = stack.dev.deps.clone();
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    // Wait for the planner to close planning.
    for _ in 0..600 {
        if deps.store.require(&job_id).await.unwrap().planned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The throttling meant for the planner's checkpoints that the cancel spared it is not the
    // worker's to meet.
    proxy.clear_rules();
    // Now a worker gets whatever was queued: chunk 0, perhaps more than once.
    run_queued_chunks(&stack).await;
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let stored = deps.store.require(&job_id).await.unwrap();
    assert!(
        stored.total_tasks >= 5,
        "chunk 0 was queued, so it is part of the job: {stored:?}"
    );
    assert_accounted(&stored);
    assert_eq!(stored.chunks_done, stored.chunks_total, "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pausing_a_job_with_nothing_left_to_run_is_paused_and_resumes_to_complete() {
    let stack = TestStack::start_with_dev(StackOptions::default(), no_finalizer).await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..3).map(|i| format!("z/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    // Every chunk counted; the finalize message waits unread.
    stack
        .until(&job_id, 60, |j| {
            j["ProgressSummary"]["NumberOfTasksSucceeded"] == 3
        })
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.until(&job_id, 10, |j| j["Status"] != "Pausing").await;
    assert_eq!(
        job["Status"], "Paused",
        "nothing runs, so the pause has settled: {job}"
    );
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(code, 200, "{answer}");
    batchops_core::finalizer::finalize_job(&deps, &job_id)
        .await
        .unwrap();
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["Status"], "Complete", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn result_files_live_as_long_as_the_job_and_are_deleted_after_its_report() {
    let stack = TestStack::start().await;
    let keys: Vec<String> = (0..7).map(|i| format!("e/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 7, "the report was written from them");
    // The clean-up follows the final status.
    stack.until_cleaned_up(&job_id, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_that_nothing_settles_is_settled_by_the_sweep() {
    // No workers and no automatic sweep: nothing will ever deliver the queued chunk, so no
    // worker can see the pause.
    let stack = stack_swept_by_hand(0).await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..5).map(|i| format!("q/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    stack.until(&job_id, 30, |j| j["Status"] == "Active").await;
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Status"], "Pausing", "{answer}");
    // Past a quarter of the timeout, nothing of the job can still be running.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(summary.settled_pauses, 1, "{summary:?}");
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["Status"], "Paused", "{job}");
    // From there the user's resume runs the job to its end.
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(code, 200, "{answer}");
    let event = batchops_tests::sqs_event(&stack.receive_chunks(1).await, 1);
    assert!(
        batchops_worker::handle(&deps, event)
            .await
            .batch_item_failures
            .is_empty()
    );
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_that_changes_while_its_job_is_paused_fails_the_job_after_resume() {
    let (stack, seeded, job_id) = a_job_being_planned(400, "m").await;
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    stack.until(&job_id, 60, |j| j["Status"] == "Paused").await;
    // Replaced while paused: what is left to plan is no longer the list the job started on.
    let other: Vec<(String, String)> = (0..400)
        .map(|i| (seeded.source.clone(), format!("m/{:04}", 399 - i)))
        .collect();
    stack.put_manifest(&seeded.source, "m.csv", &other).await;
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ManifestETagMismatch"], "{job}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(stored.planned && stored.total_tasks < 400, "{stored:?}");
    assert_accounted(&stored);
    assert_report_of_what_ran(&stack, &seeded.target, &job_id, &job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_gone_after_a_planner_died_past_its_first_chunk_fails_the_job() {
    // By the failed invocation's retry the manifest is gone.
    let (_proxy, stack, seeded, job_id) = a_planner_that_dies_after_its_first_chunk("v", 1).await;
    let deps = stack.dev.deps.clone();
    stack
        .s3
        .delete_object()
        .bucket(&seeded.source)
        .key("m.csv")
        .send()
        .await
        .unwrap();
    stack.until(&job_id, 60, |j| j["Status"] != "Active").await;
    // The chunk that was queued is part of the job, and counted when a worker gets it.
    run_queued_chunks(&stack).await;
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ManifestReadFailure"], "{job}");
    let stored = deps.store.require(&job_id).await.unwrap();
    assert_eq!(stored.total_tasks, 5, "chunk 0's rows: {stored:?}");
    assert_accounted(&stored);
}

/// A stack with no workers whose job of `n` objects (five a chunk) is `Active` with every
/// chunk message received and held by the test: `(stack, job id, chunks)`.
async fn a_job_with_its_chunks_in_hand(
    n: usize,
    prefix: &str,
    dev: fn(&mut DevOptions),
) -> (TestStack, String, Vec<batchops_core::chunk::Chunk>) {
    let stack = TestStack::start_with_dev(
        StackOptions {
            workers: 0,
            tune: |c| {
                c.chunk_size = 5;
                c.preparing_timeout = Duration::from_secs(4);
            },
        },
        dev,
    )
    .await;
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}/{i:03}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let want = n.div_ceil(5);
    let messages = stack.receive_chunks(want).await;
    assert_eq!(messages.len(), want, "every chunk queued once");
    // Acknowledged, as the event source mapping does once the handler returns.
    for m in &messages {
        stack
            .sqs
            .delete_message()
            .queue_url(&stack.dev.deps.config.work_queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let chunks = messages
        .iter()
        .map(|m| batchops_core::chunk::Chunk::from_body(m.body().unwrap()).unwrap())
        .collect();
    stack.until(&job_id, 30, |j| j["Status"] == "Active").await;
    (stack, job_id, chunks)
}

fn counts(job: &batchops_core::job::Job) -> [u64; 4] {
    [job.succeeded, job.failed, job.not_run, job.chunks_done]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_that_arrives_after_its_job_ended_changes_no_count() {
    let (stack, job_id, chunks) = a_job_with_its_chunks_in_hand(5, "a", |_| {}).await;
    let deps = stack.dev.deps.clone();
    batchops_core::worker::process_chunk(&deps, &chunks[0])
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let ended = deps.store.require(&job_id).await.unwrap();
    // A copy numbered past the plan's end (a stale planner's late send), delivered to a
    // worker and, failing that, dead-lettered.
    let stray = batchops_core::chunk::Chunk {
        chunk: ended.chunks_total,
        ..chunks[0].clone()
    };
    let delivered = batchops_core::worker::process_chunk(&deps, &stray).await;
    assert!(
        delivered.is_ok(),
        "acknowledged, not retried: {delivered:?}"
    );
    batchops_core::worker::account_failed_chunk(&deps, &stray, "dead-lettered")
        .await
        .unwrap();
    let after = deps.store.require(&job_id).await.unwrap();
    assert_eq!(counts(&after), counts(&ended), "{after:?}");
    assert_accounted(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_past_the_closed_plan_of_a_cancelled_job_is_not_counted() {
    let (stack, job_id, chunks) = a_job_with_its_chunks_in_hand(10, "b", |_| {}).await;
    let deps = stack.dev.deps.clone();
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    for chunk in &chunks {
        batchops_core::worker::process_chunk(&deps, chunk)
            .await
            .unwrap();
    }
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let ended = deps.store.require(&job_id).await.unwrap();
    let stray = batchops_core::chunk::Chunk {
        chunk: ended.chunks_total,
        ..chunks[1].clone()
    };
    batchops_core::worker::process_chunk(&deps, &stray)
        .await
        .unwrap();
    let after = deps.store.require(&job_id).await.unwrap();
    assert_eq!(counts(&after), counts(&ended), "{after:?}");
    assert_accounted(&after);
}

/// Chunk messages waiting on the work queue, visible, in flight or delayed.
async fn queued(stack: &TestStack) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.dev.deps.config.work_queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    out.attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// Receives from the work queue until every one of `chunks` has come back, and returns what
/// was received. Leaving a pause queues the parked chunks again, and the sweep (every 2 s in
/// these stacks) may race it and queue some a second time — a redelivery the chunk record
/// counts once — so a copy may come back twice before another comes back at all.
async fn receive_every_chunk(
    stack: &TestStack,
    chunks: &[batchops_core::chunk::Chunk],
) -> Vec<aws_sdk_sqs::types::Message> {
    let want: std::collections::BTreeSet<u64> = chunks.iter().map(|c| c.chunk).collect();
    let numbers = |ms: &[aws_sdk_sqs::types::Message]| {
        ms.iter()
            .map(|m| {
                batchops_core::chunk::Chunk::from_body(m.body().unwrap())
                    .unwrap()
                    .chunk
            })
            .collect::<std::collections::BTreeSet<u64>>()
    };
    let mut back = stack.receive_chunks(chunks.len()).await;
    for _ in 0..10 {
        if numbers(&back) == want {
            break;
        }
        back.extend(stack.receive_chunks(1).await);
    }
    assert_eq!(numbers(&back), want, "every parked chunk queued again");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_jobs_chunks_wait_off_the_queue_and_run_after_resume() {
    let (stack, job_id, chunks) = a_job_with_its_chunks_in_hand(15, "w", |_| {}).await;
    let deps = stack.dev.deps.clone();
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    for chunk in &chunks {
        let result = batchops_core::worker::process_chunk(&deps, chunk)
            .await
            .unwrap();
        assert_eq!(result, batchops_core::worker::ChunkResult::Deferred);
    }
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["Status"], "Paused", "{job}");
    // Parked, not cycling through the queue for the length of the pause.
    assert_eq!(
        queued(&stack).await,
        0,
        "nothing on the work queue while paused"
    );
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(code, 200, "{answer}");
    let back = receive_every_chunk(&stack, &chunks).await;
    let event = batchops_tests::sqs_event(&back, 1);
    assert!(
        batchops_worker::handle(&deps, event)
            .await
            .batch_item_failures
            .is_empty()
    );
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 15,
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_paused_job_accounts_its_parked_chunks_as_not_run() {
    let (stack, job_id, chunks) = a_job_with_its_chunks_in_hand(10, "x", |_| {}).await;
    let deps = stack.dev.deps.clone();
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    for chunk in &chunks {
        batchops_core::worker::process_chunk(&deps, chunk)
            .await
            .unwrap();
    }
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    let back = receive_every_chunk(&stack, &chunks).await;
    let event = batchops_tests::sqs_event(&back, 1);
    assert!(
        batchops_worker::handle(&deps, event)
            .await
            .batch_item_failures
            .is_empty()
    );
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let stored = deps.store.require(&job_id).await.unwrap();
    assert_eq!(stored.not_run, 10, "{stored:?}");
    assert_accounted(&stored);
}

/// Plan messages waiting on the plan queue.
async fn plans_queued(stack: &TestStack) -> u64 {
    let out = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.dev.deps.config.plan_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes()
        .and_then(|a| a.values().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_job_waiting_for_its_planner_is_requeued_once_not_on_every_sweep() {
    // No planner: the job stays `New`, as behind a long plan queue.
    let stack = TestStack::start_with_dev(
        StackOptions {
            workers: 0,
            tune: |c| c.preparing_timeout = Duration::from_secs(8),
        },
        |d| {
            d.sweep_interval = Duration::ZERO;
            d.planner = false;
        },
    )
    .await;
    let deps = stack.dev.deps.clone();
    let seeded = stack.seed(&["y/0".to_string()], &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    assert_eq!(
        plans_queued(&stack).await,
        1,
        "the create's own plan message"
    );
    // Past a tenth of the timeout the sweep suspects a lost message and sends one more …
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let first = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(first.replanned, 1, "{first:?}");
    // … and not one more on each of the following sweeps.
    for _ in 0..3 {
        let again = batchops_core::finalizer::sweep(&deps).await.unwrap();
        assert_eq!(again.replanned, 0, "{again:?}");
    }
    assert_eq!(plans_queued(&stack).await, 2);
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["Status"], "New", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_queues_again_the_parked_chunks_of_a_job_no_longer_paused() {
    let (stack, job_id, chunks) =
        a_job_with_its_chunks_in_hand(10, "u", |d| d.sweep_interval = Duration::ZERO).await;
    let deps = stack.dev.deps.clone();
    let (code, answer) = set_status(&stack, &job_id, "Paused").await;
    assert_eq!(code, 200, "{answer}");
    for chunk in &chunks {
        batchops_core::worker::process_chunk(&deps, chunk)
            .await
            .unwrap();
    }
    // A resume whose status write landed and which died before queuing the parked chunks.
    deps.store
        .transition(
            &job_id,
            &[JobStatus::Paused],
            JobStatus::Active,
            Default::default(),
        )
        .await
        .unwrap();
    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(summary.unparked, 2, "{summary:?}");
    run_queued_chunks(&stack).await;
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 10,
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finalizer_that_loses_the_race_to_a_pause_writes_no_report_until_the_job_ends() {
    let proxy = batchops_tests::faults::FaultProxy::start(batchops_tests::emulator().await).await;
    let stack = TestStack::start_with_sdk_dev(
        batchops_tests::sdk_at(&proxy.url()).await,
        StackOptions {
            workers: 0,
            tune: |_| {},
        },
        no_finalizer,
    )
    .await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..5).map(|i| format!("r/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let messages = stack.receive_chunks(1).await;
    stack.until(&job_id, 30, |j| j["Status"] == "Active").await;
    let chunk = batchops_core::chunk::Chunk::from_body(messages[0].body().unwrap()).unwrap();
    batchops_core::worker::process_chunk(&deps, &chunk)
        .await
        .unwrap();
    // The user's pause lands between the finalizer's read of the job and its `→ Completing`.
    let direct = batchops_core::adapters::dynamo::JobStore::new(
        aws_sdk_dynamodb::Client::new(&batchops_tests::sdk().await),
        deps.store.table().to_string(),
    );
    let (id, store) = (job_id.clone(), direct.clone());
    proxy.before_next(
        "POST",
        "UpdateItem",
        "\"Completing\"",
        std::sync::Arc::new(move || {
            let (id, store) = (id.clone(), store.clone());
            Box::pin(async move {
                store
                    .transition(
                        &id,
                        &[JobStatus::Active],
                        JobStatus::Pausing,
                        Default::default(),
                    )
                    .await
                    .unwrap();
            })
        }),
    );
    let raced = batchops_core::finalizer::finalize_job(&deps, &job_id)
        .await
        .unwrap();
    assert_eq!(raced, batchops_core::finalizer::Finalized::NotReady);
    let reports = stack
        .s3
        .list_objects_v2()
        .bucket(&seeded.target)
        .prefix("reports/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        reports.key_count(),
        Some(0),
        "no report of a job that has not ended"
    );
    let paused = deps.store.require(&job_id).await.unwrap();
    assert_eq!(paused.report_date, None, "{paused:?}");
    // Resumed, it ends with its report.
    let (code, answer) = set_status(&stack, &job_id, "Active").await;
    assert_eq!(code, 200, "{answer}");
    let ended = batchops_core::finalizer::finalize_job(&deps, &job_id)
        .await
        .unwrap();
    assert!(
        matches!(
            ended,
            batchops_core::finalizer::Finalized::Ended(JobStatus::Complete, Some(_))
        ),
        "{ended:?}"
    );
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 5);
}

/// A tagging job generated from `source`'s listing, keeping the keys ending `.hit`, writing
/// its generated manifest to `out` and its report to `reports`.
fn selective_generator_job(source: &str, out: &str, reports: &str) -> Value {
    serde_json::json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "batch", "Value": "done"}]}},
        "ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": format!("arn:aws:s3:::{source}"),
            "EnableManifestOutput": true,
            "ManifestOutputLocation": {"Bucket": format!("arn:aws:s3:::{out}"),
                                       "ManifestPrefix": "generated",
                                       "ManifestFormat": "S3InventoryReport_CSV_20211130"},
            "Filter": {"KeyNameConstraint": {"MatchAnySuffix": [".hit"]}}
        }},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{reports}"),
                   "Format": "Report_CSV_20180820", "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 10
    })
}

/// `n` objects `k/0000.dat` …, except that those numbered in `hits` end `.hit`.
async fn listing(stack: &TestStack, n: usize, hits: &[usize]) -> (String, Vec<String>) {
    let source = stack.bucket("gen").await;
    let keys: Vec<String> = (0..n)
        .map(|i| {
            let ext = if hits.contains(&i) { "hit" } else { "dat" };
            format!("k/{i:04}.{ext}")
        })
        .collect();
    stack.put_objects(&source, &keys).await;
    (source, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_selective_generator_reaches_a_checkpoint_within_its_budget() {
    // A zero budget: every invocation should stop at its first chunk boundary. Three keys in
    // 400 pass the filter, so no chunk of five ever fills: only the scan span (100 listed
    // keys) gives the planner somewhere to stop.
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| {
            one_chunk_per_invocation(c);
            c.generator_scan_span = 100;
        },
    })
    .await;
    let (source, _) = listing(&stack, 400, &[30, 170, 310]).await;
    let out = stack.bucket("out").await;
    let job_id = stack
        .api
        .create(&selective_generator_job(&source, &out, &out))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 3, "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 3, "{job}");
    // The planner stopped part-way, counted on the job item (the plan checkpoint is gone
    // once the job ended).
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(
        stored.plan_continuations >= 4,
        "one invocation per 100 listed keys: {} continuations",
        stored.plan_continuations
    );
    // The generated manifest still lists the three, once each, across the invocations.
    let manifest: Value = serde_json::from_slice(
        &stack
            .get(&out, &format!("generated/job-{job_id}/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    let mut listed = 0;
    for f in manifest["files"].as_array().unwrap() {
        let body = stack.get(&out, f["key"].as_str().unwrap()).await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        listed += text.lines().count();
    }
    assert_eq!(listed, 3, "{manifest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generated_manifest_that_cannot_be_written_fails_the_job_naming_it() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| c.chunk_size = 5,
    })
    .await;
    let (source, _) = listing(&stack, 12, &[1, 2, 3, 4, 5, 6, 7]).await;
    let reports = stack.bucket("rep").await;
    let missing = unique("no-such-bucket");
    let job_id = stack
        .api
        .create(&selective_generator_job(&source, &missing, &reports))
        .await
        .unwrap();
    let job = stack
        .until(&job_id, 60, |j| {
            JobStatus::parse(j["Status"].as_str().unwrap_or_default())
                .is_some_and(|s| s.is_terminal())
        })
        .await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ManifestOutputWriteFailed"], "{job}");
    // What was queued before the write failed ran and is accounted.
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert_accounted(&stored);
    assert_eq!(stored.total_tasks, 7, "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_read_that_fails_for_now_mid_plan_is_retried_from_the_checkpoint() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 2,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..60).map(|i| format!("h/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    // Planning is under way (one chunk per invocation): a later invocation's ranged read of
    // the manifest meets more 503s than the SDK's retries absorb.
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    proxy.fail_next("GET", "/m.csv", 6);
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 60, "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 60,
        "{job}"
    );
    assert_report_of_what_ran(&stack, &seeded.target, &job_id, &job).await;
    let s3 = Some(proxy.errors("s3"));
    assert_eq!(s3, Some(6), "all six injected errors were met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_that_cannot_be_written_fails_a_job_planned_across_invocations() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..30).map(|i| format!("w/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let body = copy_job(
        &seeded.source,
        "m.csv",
        Some(&seeded.etag),
        &seeded.target,
        &unique("no-such-bucket"),
        "AllTasks",
    );
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ReportWriteFailed"], "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 30,
        "{job}"
    );
    assert_accounted(&stack.dev.deps.store.require(&job_id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_confirmed_job_while_it_is_planned_ends_cancelled_with_what_ran_accounted() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..300).map(|i| format!("j/{i:03}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    stack
        .until(&job_id, 120, |j| j["Status"] == "Suspended")
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Ready").await;
    assert_eq!(code, 200, "{answer}");
    // At once: the confirmed plan has barely started (it is `Ready` or just `Active`).
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(stored.planned && stored.total_tasks < 300, "{stored:?}");
    assert_accounted(&stored);
    assert_report_of_what_ran(&stack, &seeded.target, &job_id, &job).await;
    // Nothing changes after the end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert_eq!(counts(&later), counts(&stored), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_without_an_etag_is_pinned_on_first_read_so_a_retried_plan_cuts_the_same_chunks()
{
    // No `Location.ETag`, and a first planner invocation (retried twice) that queues chunk 0,
    // then cannot checkpoint: the retry reads the manifest from the start again.
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 2,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..50).map(|i| format!("q/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    proxy.fail_next_checkpoints(15);
    let body = copy_job(
        &seeded.source,
        "m.csv",
        None,
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    let job_id = stack.api.create(&body).await.unwrap();
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    // Replaced before the retry: the same keys in another order (unpinned, the retry would
    // cut a different chunk 0 — one row lost, another run twice).
    let reversed: Vec<(String, String)> = keys
        .iter()
        .rev()
        .map(|k| (seeded.source.clone(), k.clone()))
        .collect();
    stack.put_manifest(&seeded.source, "m.csv", &reversed).await;
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ManifestETagMismatch"], "{job}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert_accounted(&stored);
    assert_report_of_what_ran(&stack, &seeded.target, &job_id, &job).await;
    // The job is the chunk queued from the list as first read (its tasks ran, or were
    // dropped unrun once the job was failing), nothing of the replaced list.
    assert_eq!(stored.total_tasks, 5, "{stored:?}");
    if stored.succeeded + stored.failed > 0 {
        let report = stack.report(&seeded.target, "reports", &job_id).await;
        let first = ["q/00", "q/01", "q/02", "q/03", "q/04"];
        assert!(
            report.rows.iter().all(|r| first.contains(&r.key.as_str())),
            "{:?}",
            report.rows
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_job_while_its_rows_are_counted_ends_cancelled() {
    // ConfirmationRequired: the planner counts a 600-row manifest one chunk per invocation.
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: one_chunk_per_invocation,
    })
    .await;
    let keys: Vec<String> = (0..600).map(|i| format!("cc/{i:03}")).collect();
    let seeded = stack.seed(&keys[..1], &[]).await;
    let rows: Vec<(String, String)> = keys
        .iter()
        .map(|k| (seeded.source.clone(), k.clone()))
        .collect();
    let etag = stack.put_manifest(&seeded.source, "count.csv", &rows).await;
    let mut body = copy_job(
        &seeded.source,
        "count.csv",
        Some(&etag),
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    body["ConfirmationRequired"] = true.into();
    let job_id = stack.api.create(&body).await.unwrap();
    stack
        .until(&job_id, 60, |j| j["Status"] == "Preparing")
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 0,
        "nothing ran"
    );
    assert_accounted(&stack.dev.deps.store.require(&job_id).await.unwrap());
}

/// A report bucket that keeps answering 503 must not hold the job `Completing` forever: once
/// it has been completing for `BATCHOPS_REPORT_RETRY_SECS` (0 here), a report write that still
/// fails ends the job `Failed` with `ReportWriteFailed`, its counts as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_that_keeps_failing_for_now_fails_the_job_after_the_retry_window() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 2,
        tune: |c| c.report_retry_window = Duration::ZERO,
    })
    .await;
    let keys: Vec<String> = (0..5).map(|i| format!("rw/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    // Every write of the report: far more than the SDK's retries and the redeliveries absorb.
    proxy.fail_next("PUT", "/reports/job-", 100_000);
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack
        .until(&job_id, 90, |j| {
            JobStatus::parse(j["Status"].as_str().unwrap_or_default())
                .is_some_and(|s| s.is_terminal())
        })
        .await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(failure_codes(&job), ["ReportWriteFailed"], "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 5, "{job}");
    assert!(proxy.errors("s3") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_chunk_message_was_lost_is_failed_by_the_sweep_and_ends() {
    // No workers: this test delivers chunks by hand, and loses one. No sweep but its own.
    let stack = TestStack::start_with_dev(
        StackOptions {
            workers: 0,
            tune: |c| {
                c.chunk_size = 5;
                c.stall_timeout = Duration::from_secs(2);
            },
        },
        |d| d.sweep_interval = Duration::ZERO,
    )
    .await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..15).map(|i| format!("lost/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let messages = stack.receive_chunks(3).await;
    assert_eq!(messages.len(), 3, "15 rows in chunks of 5");
    // Two chunks run; the third message is gone (past SQS's retention, say).
    let response =
        batchops_worker::handle(&deps, batchops_tests::sqs_event(&messages[..2], 1)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let before = deps.store.require(&job_id).await.unwrap();
    assert_eq!((before.status, before.chunks_done), (JobStatus::Active, 2));
    // Not before the stall timeout.
    let early = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(early.stalled, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let swept = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(swept.stalled, 1, "{swept:?}");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(
        job["FailureReasons"][0]["FailureCode"], "ChunksLost",
        "{job}"
    );
    let stored = deps.store.require(&job_id).await.unwrap();
    assert_eq!(
        (stored.succeeded, stored.failed, stored.not_run),
        (10, 0, 5),
        "the lost chunk's tasks counted as not run"
    );
    assert_accounted(&stored);
    // The lost message turns up after all: it runs nothing and changes no count.
    let late = batchops_worker::handle(&deps, batchops_tests::sqs_event(&messages[2..], 2)).await;
    assert!(late.batch_item_failures.is_empty(), "{late:?}");
    let after = deps.store.require(&job_id).await.unwrap();
    assert_eq!(counts(&after), counts(&stored));
}

/// Accounting §2: chunk N always holds the same rows. A generator's planner that queued its
/// chunks and then died is run again while objects are being created in the bucket it lists:
/// the retry must queue the chunks it queued before, not a new listing's (which would shift
/// every row: one run twice, another never).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generator_planner_run_again_over_a_live_bucket_queues_the_chunks_it_queued_before() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 2,
        tune: |c| c.chunk_size = 5,
    })
    .await;
    let source = stack.bucket("live").await;
    let keys: Vec<String> = (0..10).map(|i| format!("k/{i:02}")).collect();
    stack.put_objects(&source, &keys).await;
    let reports = stack.bucket("rep").await;
    // Once the planner sends its chunks: objects appear amid the listed keys and after them,
    // and the planner's next writes fail, so it dies having queued them (SQS plans it again).
    let (p, direct, bucket) = (proxy.clone(), stack.s3.clone(), source.clone());
    proxy.before_next(
        "POST",
        "SendMessageBatch",
        "",
        std::sync::Arc::new(move || {
            let (p, direct, bucket) = (p.clone(), direct.clone(), bucket.clone());
            Box::pin(async move {
                for key in ["k/00a", "k/04a", "k/99"] {
                    direct
                        .put_object()
                        .bucket(&bucket)
                        .key(key)
                        .body(batchops_tests::body_of(key).into())
                        .send()
                        .await
                        .unwrap();
                }
                p.fail_next("POST", "UpdateItem", 1000);
            })
        }),
    );
    let job_id = stack
        .api
        .create(&serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "batch", "Value": "done"}]}},
            "ManifestGenerator": {"S3JobManifestGenerator": {
                "SourceBucket": format!("arn:aws:s3:::{source}"),
                "EnableManifestOutput": false
            }},
            "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{reports}"),
                       "Format": "Report_CSV_20180820", "Prefix": "reports", "ReportScope": "AllTasks"},
            "Priority": 10
        }))
        .await
        .unwrap();
    // The planner's write after the send failed on all its 5 tries: it died.
    for _ in 0..600 {
        if proxy.errors("dynamodb") >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(proxy.errors("dynamodb") >= 5, "the planner's write failed");
    proxy.clear_rules();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert_accounted(&stored);
    let report = stack.report(&reports, "reports", &job_id).await;
    let mut reported: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    reported.sort_unstable();
    // The listing as first read, each key once: what it queued is the job.
    assert_eq!(
        reported,
        keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(stored.total_tasks, 10, "{stored:?}");
    // The definitions are gone once planning is done.
    let left = stack
        .s3
        .list_objects_v2()
        .bucket(&stack.dev.deps.config.bucket)
        .prefix(format!("plan/{job_id}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stall_repair_that_died_after_failing_the_job_is_finished_by_the_next_sweep() {
    let stack = TestStack::start_with_dev(
        StackOptions {
            workers: 0,
            tune: |c| {
                c.chunk_size = 5;
                c.stall_timeout = Duration::from_secs(2);
            },
        },
        |d| d.sweep_interval = Duration::ZERO,
    )
    .await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..10).map(|i| format!("died/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let messages = stack.receive_chunks(2).await;
    assert_eq!(messages.len(), 2, "10 rows in chunks of 5");
    // One chunk runs; the other message is lost.
    let response =
        batchops_worker::handle(&deps, batchops_tests::sqs_event(&messages[..1], 1)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A sweep failed the stalled job, then died before counting its lost chunk.
    deps.store
        .transition(
            &job_id,
            &[JobStatus::Active],
            JobStatus::Failing,
            batchops_core::adapters::dynamo::StatusChange::default()
                .failure(batchops_core::finalizer::CHUNKS_LOST, "lost"),
        )
        .await
        .unwrap();
    // The next sweep finishes the repair at once, not a stall timeout later.
    let swept = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(swept.stalled, 1, "{swept:?}");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    let stored = deps.store.require(&job_id).await.unwrap();
    assert_eq!(
        (stored.succeeded, stored.failed, stored.not_run),
        (5, 0, 5),
        "{stored:?}"
    );
    assert_accounted(&stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_while_a_confirmation_job_is_being_counted_ends_cancelled_at_once() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions::default()).await;
    let keys: Vec<String> = (0..3).map(|i| format!("cc/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    // Every S3 call now takes 2 s: the planner's count of the manifest outlasts the cancel.
    proxy.set(
        "s3",
        batchops_tests::faults::Faults {
            latency: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let job_id = stack.api.create(&body).await.unwrap();
    stack
        .until(&job_id, 30, |j| j["Status"] == "Preparing")
        .await;
    let (code, answer) = set_status(&stack, &job_id, "Cancelled").await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Status"], "Cancelling", "the count is under way");
    proxy.set("s3", Default::default());
    // Not left Cancelling until the sweep's re-plan (a quarter of the preparing timeout).
    let job = stack
        .until(&job_id, 30, |j| j["Status"] != "Cancelling")
        .await;
    assert_eq!(job["Status"], "Cancelled", "{job}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(stored.planned, "planning was closed: {stored:?}");
    assert_accounted(&stored);
}
