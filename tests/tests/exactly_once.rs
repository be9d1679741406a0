//! Exactly-once accounting: SQS delivers at least once, so a chunk handled twice — one after
//! the other or at the same moment — must change neither the counters nor the report.

use batchops_tests::{StackOptions, TestStack, copy_job, sqs_event};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_delivered_twice_is_counted_once() {
    // No worker pollers: this test is the event source mapping for the work queue.
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |c| c.chunk_size = 10,
    })
    .await;
    let deps = stack.dev.deps.clone();
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..30).map(|i| format!("dup/{i:02}")).collect();
    // Two of them missing, so failures are counted too.
    stack.put_objects(&source, &keys[2..]).await;
    let rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
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

    // Collect the three chunk messages the planner queued.
    let messages = stack.receive_chunks(3).await;
    assert_eq!(messages.len(), 3, "30 rows in chunks of 10");
    let first = sqs_event(&messages[..1], 1);
    let rest = sqs_event(&messages[1..], 1);

    // Chunk 0 delivered twice at the same moment.
    let (a, b) = tokio::join!(
        batchops_worker::handle(&deps, first.clone()),
        batchops_worker::handle(&deps, first.clone())
    );
    // One ran it; the other found it counted, or taken (and fails, to come back later).
    assert!(
        a.batch_item_failures.len() + b.batch_item_failures.len() <= 1,
        "{a:?} {b:?}"
    );
    let after_first = deps.store.require(&job_id).await.unwrap();
    assert_eq!(after_first.chunks_done, 1);
    assert_eq!(after_first.succeeded + after_first.failed, 10);

    // The rest, then everything again.
    assert!(
        batchops_worker::handle(&deps, rest.clone())
            .await
            .batch_item_failures
            .is_empty()
    );
    let counted = deps.store.require(&job_id).await.unwrap();
    assert_eq!(
        (counted.succeeded, counted.failed, counted.chunks_done),
        (28, 2, 3)
    );
    for event in [first, rest] {
        assert!(
            batchops_worker::handle(&deps, event)
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    let again = deps.store.require(&job_id).await.unwrap();
    assert_eq!(
        (again.succeeded, again.failed, again.chunks_done),
        (28, 2, 3),
        "redelivery changed nothing"
    );

    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 28);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 2);
    let report = stack.report(&target, "reports", &job_id).await;
    let mut reported: Vec<String> = report.rows.iter().map(|r| r.key.clone()).collect();
    reported.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(
        reported, expected,
        "every manifest row exactly once in the report"
    );

    // A finalizer run again (a duplicate finalize message) changes nothing either.
    let before = report.manifest.clone();
    let again = batchops_core::finalizer::finalize_job(&deps, &job_id)
        .await
        .unwrap();
    assert_eq!(
        again,
        batchops_core::finalizer::Finalized::AlreadyEnded(batchops_core::job::JobStatus::Complete)
    );
    assert_eq!(
        stack.report(&target, "reports", &job_id).await.manifest,
        before
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deliveries_of_one_chunk_at_the_same_moment_run_its_tasks_once() {
    // SQS may hand one message to two receivers at once (the emulator does so under load).
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |c| c.chunk_size = 10,
    })
    .await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..10).map(|i| format!("twin/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let messages = stack.receive_chunks(1).await;
    assert_eq!(messages.len(), 1, "10 rows in one chunk");
    let event = sqs_event(&messages, 1);
    let (a, b) = tokio::join!(
        batchops_worker::handle(&deps, event.clone()),
        batchops_worker::handle(&deps, event.clone())
    );
    assert_eq!(
        proxy.copies(),
        10,
        "each task ran once, not once per delivery"
    );
    // The delivery that found the chunk taken fails, to be delivered again later: were the
    // first to die, the chunk would still run.
    assert!(
        a.batch_item_failures.len() + b.batch_item_failures.len() <= 1,
        "{a:?} {b:?}"
    );
    let counted = deps.store.require(&job_id).await.unwrap();
    assert_eq!((counted.succeeded, counted.chunks_done), (10, 1));
    // Delivered again later, it finds the chunk counted and changes nothing.
    assert!(
        batchops_worker::handle(&deps, event)
            .await
            .batch_item_failures
            .is_empty()
    );
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 10);
    assert_eq!(proxy.copies(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_cancelled_for_contention_is_retried_without_running_tasks_again() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 4,
        tune: |c| c.chunk_size = 5,
    })
    .await;
    let keys: Vec<String> = (0..20).map(|i| format!("hot/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    // The first commits (the job's creation is one too) meet another transaction on the job
    // item, as in DynamoDB under load.
    proxy.conflict_next(6);
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 20,
        "{job}"
    );
    let errors = proxy.errors("dynamodb");
    assert_eq!(errors, 6, "every injected conflict was met");
    assert_eq!(
        proxy.copies(),
        20,
        "each task ran once: no chunk ran again after a conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_change_that_meets_a_running_transaction_is_retried_not_refused() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["tc/0".to_string()], &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    // DynamoDB refuses a write to an item a running transaction holds (a chunk count on the
    // job item, say) with TransactionConflictException; the SDK does not retry it by itself.
    proxy.update_conflict_next(2);
    let resp = reqwest::Client::new()
        .post(format!("{}/jobs/{job_id}/status", stack.base_url))
        .json(&serde_json::json!({"RequestedJobStatus": "Cancelled"}))
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let answer: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Status"], "Cancelling", "{answer}");
    let errors = proxy.errors("dynamodb");
    assert_eq!(errors, 2, "both injected conflicts were met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_constant_write_conflicts_every_task_runs_once_and_counts_are_exact() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 4,
        tune: |c| c.chunk_size = 5,
    })
    .await;
    let keys: Vec<String> = (0..600).map(|i| format!("cc/{i:03}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    // One DynamoDB write in twenty meets a running transaction (about ten in this job; that
    // six tries of one commit all meet one is a chance of 1 in 64 million).
    proxy.set(
        "dynamodb",
        batchops_tests::faults::Faults {
            conflict_rate: 0.05,
            ..Default::default()
        },
    );
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(180)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 600,
        "{job}"
    );
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 600);
    let conflicts = proxy.errors("dynamodb");
    assert!(conflicts > 0, "conflicts were met: {conflicts}");
    assert_eq!(
        proxy.copies(),
        600,
        "no task ran twice because of a conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_whose_handler_fails_is_delivered_again_in_seconds_not_after_the_visibility_timeout()
 {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |c| c.retry_visibility_secs = 1,
    })
    .await;
    let deps = stack.dev.deps.clone();
    let queue = deps.config.work_queue_url.clone();
    // A chunk whose handling fails for now: its job is not (yet) readable.
    let chunk = serde_json::json!({"job_id": "no-such-job", "chunk": 0,
        "tasks": [{"row": 0, "bucket": "b", "key": "k"}]});
    stack
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body(chunk.to_string())
        .send()
        .await
        .unwrap();
    // Received as Lambda's event source mapping does: hidden for the queue's long timeout.
    let messages = stack.receive_chunks(1).await;
    assert_eq!(messages.len(), 1);
    let arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    let mut event = sqs_event(&messages, 1);
    event.records[0].event_source_arn = Some(arn);
    let response = batchops_worker::handle(&deps, event).await;
    assert_eq!(response.batch_item_failures.len(), 1, "the chunk failed");
    // Visible again after the retry delay (1 s on its first delivery), not after 300 s.
    let started = std::time::Instant::now();
    let again = stack.receive_chunks(1).await;
    assert_eq!(again.len(), 1, "delivered again");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// A message of a queue the stack reads but does not send to (the intake queue) whose handler
/// failed is also delivered again in seconds: its URL is found from the event's ARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_message_of_a_queue_the_stack_only_reads_is_delivered_again_in_seconds() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = stack.dev.deps.clone();
    let name = batchops_tests::unique("read-only");
    let url = stack
        .sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    stack
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let receive = |visibility: i32, wait: i32| {
        stack
            .sqs
            .receive_message()
            .queue_url(&url)
            .visibility_timeout(visibility)
            .wait_time_seconds(wait)
            .send()
    };
    let first = receive(300, 5).await.unwrap();
    let receipt = first.messages()[0].receipt_handle().unwrap().to_string();
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    deps.queues.retry_later(&arn, &receipt, 1).await.unwrap();
    // Hidden for 300 s as received; visible again after the 1-s retry.
    let mut again = Vec::new();
    for _ in 0..5 {
        again = receive(30, 2).await.unwrap().messages().to_vec();
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1, "delivered again within seconds");
}
