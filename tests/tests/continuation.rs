//! Planner continuation: a manifest too long for one invocation is planned across several,
//! each stopping at a chunk boundary, checkpointing and re-enqueuing itself — and a plan
//! message run again from an old checkpoint (a redelivery after a crash, or two planners at
//! once) never makes a chunk count twice. Also: planning a large manifest holds a bounded
//! number of rows, whatever its length.

use batchops_core::Deps;
use batchops_core::chunk::Chunk;
use batchops_core::job::{CreateJobRequest, Job};
use batchops_core::manifest::STREAM_BUFFER_ROWS;
use batchops_core::planner::{CHUNKS_PER_ROUND, ROUNDS_IN_FLIGHT, plan_job};
use batchops_tests::{StackOptions, TestStack, unique};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// A manifest of `rows` rows in which only `valid` (by index) name real objects; the others
/// name an invalid bucket, so they fail as `InvalidManifestRow` without an S3 call (the
/// emulator does ~200 requests/s: this keeps 20,000 tasks quick while counting every one).
fn manifest_text(source: &str, rows: usize, valid: &BTreeSet<usize>) -> String {
    let mut text = String::with_capacity(rows * 24);
    for i in 0..rows {
        if valid.contains(&i) {
            text.push_str(&format!("{source},real/{i:05}\n"));
        } else {
            text.push_str(&format!("Not_A_Bucket,row/{i:05}\n"));
        }
    }
    text
}

fn copy_job(source: &str, key: &str, target: &str) -> Value {
    json!({
        "Operation": {"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}"), "TargetKeyPrefix": "copy"}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{source}/{key}")}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{target}"), "Format": "Report_CSV_20180820",
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "FailureThreshold": {"MinTasks": 1000000000, "Percent": 100},
        "Priority": 10
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_20000_row_manifest_planned_over_several_continuations_has_exact_counts() {
    let stack = TestStack::start_with(StackOptions {
        workers: 4,
        // A budget this small makes every invocation stop after its first chunk.
        tune: |c| c.planner_budget = Duration::from_millis(1),
    })
    .await;
    let source = stack.bucket("cont-src").await;
    let target = stack.bucket("cont-dst").await;
    let valid: BTreeSet<usize> = (0..20_000).step_by(2_222).collect();
    let keys: Vec<String> = valid.iter().map(|i| format!("real/{i:05}")).collect();
    stack.put_objects(&source, &keys).await;
    let text = manifest_text(&source, 20_000, &valid);
    stack
        .put_raw_manifest(&source, "big.csv", text.into_bytes())
        .await;

    let job_id = stack
        .api
        .create(&copy_job(&source, "big.csv", &target))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(300)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(p["TotalNumberOfTasks"], 20_000, "{job}");
    assert_eq!(p["NumberOfTasksSucceeded"], valid.len(), "{job}");
    assert_eq!(p["NumberOfTasksFailed"], 20_000 - valid.len(), "{job}");

    // Planning stopped part-way, counted on the job item (the plan checkpoint is gone once
    // the job ended).
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(
        stored.plan_continuations >= 3,
        "20 chunks with a 1 ms budget: {} continuations",
        stored.plan_continuations
    );
    for k in &keys {
        assert!(stack.get(&target, &format!("copy/{k}")).await.is_some());
    }
    // Every manifest row exactly once in the report.
    let report = stack.report(&target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 20_000);
    let reported: BTreeSet<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(reported.len(), 20_000);
    stack.dev.stop().await;
}

/// Dependencies whose plan queue is the test's own, so that no dev planner picks up the
/// plan messages a test's direct `plan_job` calls enqueue.
async fn private_deps(stack: &TestStack, chunk_size: usize) -> Deps {
    let plan_queue = stack
        .sqs
        .create_queue()
        .queue_name(unique("plan-private"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let mut config = stack.dev.deps.config.clone();
    config.plan_queue_url = plan_queue;
    config.chunk_size = chunk_size;
    Deps::new(config, &stack.sdk)
}

/// Stores a job without queueing a plan message (the test plans it by hand).
async fn stored_job(deps: &Deps, body: Value) -> String {
    let request: CreateJobRequest = serde_json::from_value(body).unwrap();
    request.validate().unwrap();
    let job_id = uuid::Uuid::new_v4().to_string();
    let job = Job::new(job_id.clone(), request, batchops_core::time::now_iso());
    deps.store.create(&job).await.unwrap();
    job_id
}

async fn drain(stack: &TestStack, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = stack
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            empty += 1;
        }
        out.extend(got);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_message_run_again_from_an_old_checkpoint_never_counts_a_chunk_twice() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = private_deps(&stack, 250).await;
    let source = stack.bucket("replay-src").await;
    let target = stack.bucket("replay-dst").await;
    let text = manifest_text(&source, 5_000, &BTreeSet::new());
    stack
        .put_raw_manifest(&source, "m.csv", text.into_bytes())
        .await;
    let job_id = stored_job(&deps, copy_job(&source, "m.csv", &target)).await;

    // A deadline already past: each invocation queues one chunk, then checkpoints.
    let now = Instant::now;
    let first = plan_job(&deps, &job_id, now()).await.unwrap();
    assert!(first.continued);
    assert_eq!((first.tasks, first.chunks), (250, 1));
    let mut steps = 1;
    loop {
        let (seq, before) = deps.store.get_checkpoint(&job_id).await.unwrap().unwrap();
        let summary = plan_job(&deps, &job_id, now()).await.unwrap();
        steps += 1;
        if !summary.continued {
            break;
        }
        match steps % 3 {
            // As if that invocation died before its checkpoint: put the old one back and
            // run the same plan message again. It re-queues the same chunk.
            0 => {
                let (now_seq, _) = deps.store.get_checkpoint(&job_id).await.unwrap().unwrap();
                assert_eq!(now_seq, seq + 1);
                assert!(
                    deps.store
                        .save_checkpoint(
                            &job_id,
                            Some(now_seq),
                            &before,
                            before.row,
                            before.next_chunk
                        )
                        .await
                        .unwrap()
                );
                let again = plan_job(&deps, &job_id, now()).await.unwrap();
                assert!(again.continued);
                assert_eq!(again.chunks, summary.chunks, "the same chunk again");
            }
            // Two planners from one checkpoint at once: both queue the chunk, one goes on.
            1 => {
                let (a, b) = tokio::join!(
                    plan_job(&deps, &job_id, now()),
                    plan_job(&deps, &job_id, now())
                );
                let (a, b) = (a.unwrap(), b.unwrap());
                assert!(
                    !(a.continued && b.continued),
                    "only one of two racing planners may re-enqueue: {a:?} {b:?}"
                );
                if !a.continued && !b.continued && a.chunks == 20 {
                    break;
                }
            }
            _ => {}
        }
        assert!(steps < 100, "planning does not end");
    }
    let job = deps.store.require(&job_id).await.unwrap();
    assert!(job.planned);
    assert_eq!((job.total_tasks, job.chunks_total), (5_000, 20));

    // The work queue: chunk numbers dense, a chunk queued twice identical each time, and
    // every row in exactly one chunk number.
    let messages = drain(&stack, &deps.config.work_queue_url).await;
    assert!(messages.len() > 20, "the replays queued chunks again");
    let mut by_number: BTreeMap<u64, Chunk> = BTreeMap::new();
    for m in &messages {
        let chunk = Chunk::from_body(m.body().unwrap()).unwrap();
        if let Some(seen) = by_number.get(&chunk.chunk) {
            assert_eq!(seen, &chunk, "chunk {} differs between sends", chunk.chunk);
        }
        by_number.insert(chunk.chunk, chunk);
    }
    assert_eq!(
        by_number.keys().copied().collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    let rows: Vec<u64> = by_number
        .values()
        .flat_map(|c| c.tasks.iter().map(|t| t.row))
        .collect();
    assert_eq!(rows, (0..5_000).collect::<Vec<_>>());

    // Workers count every delivery, duplicates included, once per chunk number.
    for m in &messages {
        let chunk = Chunk::from_body(m.body().unwrap()).unwrap();
        batchops_core::worker::process_chunk(&deps, &chunk)
            .await
            .unwrap();
    }
    let job = deps.store.require(&job_id).await.unwrap();
    assert_eq!(job.chunks_done, 20);
    assert_eq!((job.succeeded, job.failed, job.not_run), (0, 5_000, 0));
    // The dev stack's finalizer ends it.
    let ended = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(ended["Status"], "Complete", "{ended}");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_manifest_is_planned_holding_a_bounded_number_of_rows() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = private_deps(&stack, 1000).await;
    let source = stack.bucket("large-src").await;
    let target = stack.bucket("large-dst").await;
    const ROWS: usize = 120_000;
    let text = manifest_text(&source, ROWS, &BTreeSet::new());
    stack
        .put_raw_manifest(&source, "large.csv", text.into_bytes())
        .await;
    let job_id = stored_job(&deps, copy_job(&source, "large.csv", &target)).await;

    let far = Instant::now() + Duration::from_secs(3600);
    let summary = plan_job(&deps, &job_id, far).await.unwrap();
    assert!(!summary.continued);
    assert_eq!((summary.tasks, summary.chunks), (ROWS as u64, 120));
    // Rows between the reader and the planner never exceed the channel's bound…
    assert!(summary.max_buffered_rows > 0);
    assert!(
        summary.max_buffered_rows <= STREAM_BUFFER_ROWS,
        "{summary:?}"
    );
    // …and the planner itself holds one open chunk plus the rounds waiting and in flight:
    // a bound set by the configuration, not by the manifest's 120,000 rows.
    let bound = 1000 * (1 + CHUNKS_PER_ROUND * (ROUNDS_IN_FLIGHT + 1));
    assert!(summary.max_tasks_held <= bound, "{summary:?}");
    assert!(summary.max_tasks_held < ROWS / 2, "{summary:?}");
    let job = deps.store.require(&job_id).await.unwrap();
    assert_eq!((job.total_tasks, job.chunks_total), (ROWS as u64, 120));
    assert!(job.planned);
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planner_facing_full_work_queues_queues_no_more_until_they_drain() {
    // No workers: chunks wait in the queue until this test runs them.
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |c| {
            c.chunk_size = 1;
            c.planner_max_backlog = 5;
            c.planner_backoff = Duration::from_secs(1);
        },
    })
    .await;
    let keys: Vec<String> = (0..120).map(|i| format!("bp/{i:03}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    // The first invocation queues rounds until it sees the backlog (one round past it at
    // most); the continuations then wait.
    stack.until(&job_id, 60, |j| j["Status"] == "Active").await;
    let deps = stack.dev.deps.clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waiting = deps.queues.work_backlog().await.unwrap();
    // Several continuations later (one a second), still no more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(deps.queues.work_backlog().await.unwrap(), waiting);
    // Past the limit: the rounds still being sent when it was seen, the round that saw it and
    // the chunk that round had open.
    let bound = ((ROUNDS_IN_FLIGHT + 1) * CHUNKS_PER_ROUND) as u64 + 1;
    assert!(
        (5..=bound).contains(&waiting),
        "queued up to the limit and the rounds under way, then no more: {waiting}"
    );
    assert!(!deps.store.require(&job_id).await.unwrap().planned);
    // Drain the queue as workers would; planning goes on each time it falls below the limit.
    let started = Instant::now();
    let mut most = waiting;
    while started.elapsed() < Duration::from_secs(120) {
        let job = deps.store.require(&job_id).await.unwrap();
        if job.status == batchops_core::job::JobStatus::Complete {
            break;
        }
        let messages = stack.receive_chunks(0).await;
        if !messages.is_empty() {
            let event = batchops_tests::sqs_event(&messages, 1);
            let response = batchops_worker::handle(&deps, event).await;
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
            // Done with, as the event source mapping deletes them.
            for m in &messages {
                stack
                    .sqs
                    .delete_message()
                    .queue_url(&deps.config.work_queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        most = most.max(deps.queues.work_backlog().await.unwrap());
    }
    let job = stack.wait(&job_id, Duration::from_secs(30)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 120,
        "{job}"
    );
    assert!(
        most <= bound,
        "the backlog never grew past the limit and the rounds under way: {most}"
    );
}
