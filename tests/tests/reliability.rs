//! No lost work, no double counting: poison chunks, dead letters, lost finalize messages and
//! stuck jobs are all repaired, each with a reason a user can read.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use batchops_core::chunk::{Chunk, Task};
use batchops_core::job::{CreateJobRequest, Job, JobStatus};
use batchops_tests::{StackOptions, TestStack, copy_job};
use std::collections::HashMap;
use std::time::Duration;

fn chunk_of(job_id: &str, bucket: &str, n: usize) -> Chunk {
    Chunk {
        job_id: job_id.into(),
        chunk: 0,
        tasks: (0..n as u64)
            .map(|row| Task {
                row,
                bucket: bucket.into(),
                key: format!("p/{row}"),
                version_id: None,
                invalid: None,
            })
            .collect(),
    }
}

fn delivery(chunk: &Chunk, receive_count: u32) -> SqsEvent {
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("m-{receive_count}"));
    m.body = Some(serde_json::to_string(chunk).unwrap());
    m.attributes = HashMap::from([(
        "ApproximateReceiveCount".to_string(),
        receive_count.to_string(),
    )]);
    let mut e = SqsEvent::default();
    e.records = vec![m];
    e
}

/// An Active, fully planned job of one chunk, stored directly.
async fn active_job(stack: &TestStack, body: serde_json::Value, tasks: u64) -> Job {
    let request: CreateJobRequest = serde_json::from_value(body).unwrap();
    let mut job = Job::new(
        batchops_tests::unique("job"),
        request,
        batchops_core::time::now_iso(),
    );
    job.status = JobStatus::Active;
    job.planned = true;
    job.chunks_total = 1;
    job.total_tasks = tasks;
    stack.dev.deps.store.create(&job).await.unwrap();
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_chunk_is_reported_as_failed_tasks_on_its_last_delivery() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = stack.dev.deps.clone();
    let bucket = stack.bucket("poison").await;
    let mut body = copy_job(&bucket, "m.csv", None, &bucket, &bucket, "AllTasks");
    // A job record without an operation: every delivery of its chunk fails.
    body.as_object_mut().unwrap().remove("Operation");
    let job = active_job(&stack, body, 10).await;
    let chunk = chunk_of(&job.job_id, &bucket, 10);

    for receive in 1..5 {
        let r = batchops_worker::handle(&deps, delivery(&chunk, receive)).await;
        assert_eq!(
            r.batch_item_failures.len(),
            1,
            "delivery {receive} fails and is retried"
        );
    }
    let j = deps.store.require(&job.job_id).await.unwrap();
    assert_eq!(
        (j.succeeded, j.failed, j.chunks_done),
        (0, 0, 0),
        "nothing counted before the last delivery"
    );

    let r = batchops_worker::handle(&deps, delivery(&chunk, 5)).await;
    assert!(
        r.batch_item_failures.is_empty(),
        "the last delivery is accounted, not dead-lettered"
    );
    let done = stack.wait(&job.job_id, Duration::from_secs(60)).await;
    assert_eq!(done["Status"], "Complete", "{done}");
    assert_eq!(done["ProgressSummary"]["NumberOfTasksFailed"], 10);
    let report = stack.report(&bucket, "reports", &job.job_id).await;
    assert_eq!(report.rows.len(), 10);
    for row in &report.rows {
        assert_eq!(
            (row.status.as_str(), row.error_code.as_str()),
            ("failed", "InternalError")
        );
        assert!(
            row.message.contains("all 5 deliveries") && row.message.contains("no Operation"),
            "{}",
            row.message
        );
    }
    // A redelivery after that changes nothing.
    assert!(
        batchops_worker::handle(&deps, delivery(&chunk, 6))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(deps.store.require(&job.job_id).await.unwrap().failed, 10);
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_accounts_dead_lettered_chunks() {
    let stack = TestStack::start_with_dev(
        StackOptions {
            workers: 0,
            tune: |_| {},
        },
        |d| d.sweep_interval = Duration::ZERO,
    )
    .await;
    let deps = stack.dev.deps.clone();
    let bucket = stack.bucket("dead").await;
    let job = active_job(
        &stack,
        copy_job(&bucket, "m.csv", None, &bucket, &bucket, "AllTasks"),
        7,
    )
    .await;
    let chunk = chunk_of(&job.job_id, &bucket, 7);
    // What SQS's redrive does after maxReceiveCount.
    stack
        .dead_letter(&serde_json::to_string(&chunk).unwrap())
        .await;
    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(summary.dead_chunks, 1);
    let done = stack.wait(&job.job_id, Duration::from_secs(60)).await;
    assert_eq!(done["Status"], "Complete", "{done}");
    assert_eq!(done["ProgressSummary"]["NumberOfTasksFailed"], 7);
    let report = stack.report(&bucket, "reports", &job.job_id).await;
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.message.contains("dead-lettered"))
    );
    assert_eq!(
        batchops_core::finalizer::sweep(&deps)
            .await
            .unwrap()
            .dead_chunks,
        0,
        "the DLQ is empty now"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_finishes_a_job_whose_finalize_message_was_lost() {
    let stack = TestStack::start_with_dev(StackOptions::default(), |d| {
        d.finalizer = false;
        d.sweep_interval = Duration::ZERO;
    })
    .await;
    let deps = stack.dev.deps.clone();
    let source = stack.bucket("src").await;
    let keys: Vec<String> = (0..8).map(|i| format!("l{i}")).collect();
    stack.put_objects(&source, &keys).await;
    let rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "m.csv",
            Some(&etag),
            &source,
            &source,
            "AllTasks",
        ))
        .await
        .unwrap();
    let mut reconciled = false;
    for _ in 0..300 {
        let j = deps.store.require(&job_id).await.unwrap();
        if j.reconciled() {
            assert_eq!(j.status, JobStatus::Active, "no finalizer is running");
            reconciled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reconciled);
    // The worker's finalize message is lost.
    stack.lose_finalize_messages().await;
    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(summary.finalize_queued, 1);
    assert!(stack.run_finalize_messages().await >= 1);
    let job = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(job["Status"], "Complete");
    assert_eq!(
        stack.report(&source, "reports", &job_id).await.rows.len(),
        8
    );
    assert_eq!(
        batchops_core::finalizer::sweep(&deps)
            .await
            .unwrap()
            .finalize_queued,
        0,
        "once only"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_fails_stuck_preparing_jobs_and_replans_lost_new_ones() {
    let stack = TestStack::start_with_dev(StackOptions::default(), |d| {
        d.sweep_interval = Duration::ZERO
    })
    .await;
    let deps = stack.dev.deps.clone();
    let source = stack.bucket("src").await;
    stack.put_objects(&source, &["s0".to_string()]).await;
    let etag = stack
        .put_manifest(&source, "m.csv", &[(source.clone(), "s0".into())])
        .await;
    let body = copy_job(&source, "m.csv", Some(&etag), &source, &source, "AllTasks");
    let long_ago = "2020-01-01T00:00:00.000Z".to_string();

    let request: CreateJobRequest = serde_json::from_value(body.clone()).unwrap();
    let mut stuck = Job::new(
        batchops_tests::unique("stuck"),
        request.clone(),
        long_ago.clone(),
    );
    stuck.status = JobStatus::Preparing;
    deps.store.create(&stuck).await.unwrap();
    // A job whose plan message never arrived.
    let lost = Job::new(batchops_tests::unique("lost"), request, long_ago);
    deps.store.create(&lost).await.unwrap();

    let summary = batchops_core::finalizer::sweep(&deps).await.unwrap();
    assert_eq!(
        (summary.failed_stuck, summary.replanned),
        (1, 1),
        "{summary:?}"
    );
    let failed = stack.api.describe(&stuck.job_id).await.unwrap();
    assert_eq!(failed["Status"], "Failed");
    assert_eq!(
        failed["FailureReasons"][0]["FailureCode"],
        "PreparingTimeout"
    );
    let replanned = stack.wait(&lost.job_id, Duration::from_secs(60)).await;
    assert_eq!(replanned["Status"], "Complete", "{replanned}");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_assembled_across_many_finalizer_invocations_has_every_row_once() {
    // A zero finalizer budget: each invocation adds one batch of chunk files to the report,
    // saves its progress and queues the next; report files roll over every ~300 bytes.
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| {
            c.chunk_size = 2;
            c.finalizer_budget = Duration::ZERO;
            c.report_file_max_bytes = 300;
        },
    })
    .await;
    let keys: Vec<String> = (0..100).map(|i| format!("rep/{i:03}")).collect();
    let seeded = stack.seed(&keys[10..], &keys[..10]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    batchops_tests::assert_counts(&job, &report, 90, 10);
    let mut reported: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    reported.sort_unstable();
    reported.dedup();
    assert_eq!(reported.len(), 100, "every row once");
    let (_, progress) = stack
        .dev
        .deps
        .store
        .report_progress(&job_id)
        .await
        .unwrap()
        .expect("the report was assembled in steps");
    assert!(progress.continuations >= 6, "{progress:?}");
    // Each invocation that stopped part-way wrote the rows it had read as files of their own.
    assert!(
        report.manifest.results.len() as u64 >= progress.continuations,
        "{} files",
        report.manifest.results.len()
    );
    // Its summary counts every row once, across the invocations.
    let summary = &job["ReportSummary"];
    assert_eq!(
        (summary["Succeeded"].as_u64(), summary["Failed"].as_u64()),
        (Some(90), Some(10)),
        "{job}"
    );
    assert_eq!(summary["ByErrorCode"]["NoSuchKey"], 10);
    let mut first: Vec<&str> = summary["FirstFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Key"].as_str().unwrap())
        .collect();
    first.sort_unstable();
    assert_eq!(
        first,
        keys[..10].iter().map(String::as_str).collect::<Vec<_>>()
    );
}
