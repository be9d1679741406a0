//! Job events: every status change of a job puts one "Job Status Change" event on the
//! EventBridge bus (the emulator's default bus here), numbered per job; a rule with an SQS
//! target receives them. A failing bus never stops a job: its events wait in the job's
//! outbox and arrive once the bus recovers.

use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::QueueAttributeName;
use batchops_tests::{StackOptions, TestStack, unique};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A queue that a rule on the default bus fills with batchops' events.
async fn subscribe(stack: &TestStack) -> String {
    let queue = stack
        .sqs
        .create_queue()
        .queue_name(unique("events"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let events = aws_sdk_eventbridge::Client::new(&stack.sdk);
    let rule = unique("batchops-jobs");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name("default")
        .event_pattern(r#"{"source": ["batchops"], "detail-type": ["Job Status Change"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name("default")
        .targets(Target::builder().id("queue").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    queue
}

/// The job's events the queue holds, by sequence number, read until one is `last` (or
/// `secs` pass); a sequence seen twice must be the same event.
async fn events_of(
    stack: &TestStack,
    queue: &str,
    job_id: &str,
    last: &str,
    secs: u64,
) -> BTreeMap<u64, Value> {
    let mut seen: BTreeMap<u64, Value> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(event["source"], "batchops", "{event}");
            assert_eq!(event["detail-type"], "Job Status Change", "{event}");
            let detail = event["detail"].clone();
            if detail["jobId"] != job_id {
                continue;
            }
            let seq = detail["sequence"].as_u64().unwrap();
            if let Some(before) = seen.get(&seq) {
                assert_eq!(before, &detail, "a duplicate is the same event");
            }
            seen.insert(seq, detail);
        }
        let done = seen.values().any(|d| d["status"] == last)
            && seen.keys().copied().eq(1..=seen.len() as u64);
        if done {
            return seen;
        }
    }
    panic!("the events of job {job_id} up to {last} did not all arrive: {seen:?}");
}

/// Sequence numbers run 1, 2, 3 …; each event's previous status is the one before it.
fn assert_chained(events: &BTreeMap<u64, Value>) -> Vec<String> {
    let mut previous = Value::Null;
    let mut statuses = Vec::new();
    for (seq, d) in events {
        assert_eq!(d["previousStatus"], previous, "event {seq}: {d}");
        previous = d["status"].clone();
        statuses.push(d["status"].as_str().unwrap().to_string());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_status_change_of_a_job_arrives_on_the_bus_in_sequence_with_the_final_counts() {
    let stack = TestStack::start().await;
    let queue = subscribe(&stack).await;
    let keys: Vec<String> = (0..3).map(|i| format!("ev/{i}")).collect();
    let seeded = stack.seed(&keys, &["ev/missing".to_string()]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = true.into();
    body["Description"] = "evented".into();
    body["Tags"] = serde_json::json!([{"Key": "team", "Value": "data"}]);
    let job_id = stack.api.create(&body).await.unwrap();
    stack
        .until(&job_id, 60, |j| j["Status"] == "Suspended")
        .await;
    stack
        .api
        .set_status(&job_id, "Ready", Some("looks right"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");

    let events = events_of(&stack, &queue, &job_id, "Complete", 60).await;
    let statuses = assert_chained(&events);
    assert_eq!(statuses.first().map(String::as_str), Some("New"));
    assert_eq!(statuses.last().map(String::as_str), Some("Complete"));
    for expected in ["Preparing", "Suspended", "Ready", "Active", "Completing"] {
        assert!(
            statuses.iter().any(|s| s == expected),
            "{expected} in {statuses:?}"
        );
    }
    assert_eq!(
        statuses.len(),
        statuses
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "one event per status change: {statuses:?}"
    );
    let ready = events.values().find(|d| d["status"] == "Ready").unwrap();
    assert_eq!(ready["statusUpdateReason"], "looks right");
    let complete = events.values().last().unwrap();
    assert_eq!(
        complete["progressSummary"]["TotalNumberOfTasks"], 4,
        "{complete}"
    );
    assert_eq!(complete["progressSummary"]["NumberOfTasksSucceeded"], 3);
    assert_eq!(complete["progressSummary"]["NumberOfTasksFailed"], 1);
    assert_eq!(complete["description"], "evented");
    assert_eq!(
        complete["tags"],
        serde_json::json!([{"Key": "team", "Value": "data"}])
    );
    // The report's manifest.json, where the finalizer wrote it.
    let manifest = complete["reportManifest"].as_str().unwrap();
    let (bucket, key) = manifest
        .strip_prefix("arn:aws:s3:::")
        .unwrap()
        .split_once('/')
        .unwrap();
    assert!(stack.get(bucket, key).await.is_some(), "{manifest}");
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert_eq!(stored.pending_events, 0, "the outbox is empty");
}

/// Whether the job is in the open-jobs index (where the sweep looks).
async fn is_open(stack: &TestStack, job_id: &str) -> bool {
    let (open, _) = stack
        .dev
        .deps
        .store
        .open_jobs_page(100, None)
        .await
        .unwrap();
    open.iter().any(|j| j.job_id == job_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_bus_does_not_stop_the_job_and_its_events_arrive_once_it_recovers() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions::default()).await;
    let queue = subscribe(&stack).await;
    let keys: Vec<String> = (0..3).map(|i| format!("down/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    proxy.set(
        "events",
        batchops_tests::faults::Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(
        job["Status"], "Complete",
        "the job ran without its bus: {job}"
    );
    let stored = stack.dev.deps.store.require(&job_id).await.unwrap();
    assert!(
        stored.pending_events >= 5,
        "its events wait in the outbox: {stored:?}"
    );
    // A sweep while the bus is still down tries, fails, counts it and says so.
    let before = stack.dev.deps.store.events_unpublished();
    let swept = batchops_core::finalizer::sweep(&stack.dev.deps)
        .await
        .unwrap();
    assert!(swept.events_unpublished > before, "{swept:?}");
    assert_eq!(swept.events_published, 0, "{swept:?}");
    assert!(
        is_open(&stack, &job_id).await,
        "ended, it stays where the sweep looks until its events are out"
    );

    // The bus recovers: the sweep (every 2 s here) publishes the outbox, in order.
    proxy.set("events", Default::default());
    let events = events_of(&stack, &queue, &job_id, "Complete", 60).await;
    let statuses = assert_chained(&events);
    assert_eq!(statuses.first().map(String::as_str), Some("New"));
    assert_eq!(statuses.last().map(String::as_str), Some("Complete"));
    assert_eq!(
        events.values().last().unwrap()["progressSummary"]["NumberOfTasksSucceeded"],
        3
    );
    // The outbox is emptied, and the ended job leaves the open-jobs index, just after the
    // publish the events came by.
    let mut settled = (usize::MAX, true);
    for _ in 0..100 {
        let pending = stack
            .dev
            .deps
            .store
            .require(&job_id)
            .await
            .unwrap()
            .pending_events;
        settled = (pending, is_open(&stack, &job_id).await);
        if settled == (0, false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        settled,
        (0, false),
        "published, the outbox is empty and the ended job leaves the open-jobs index"
    );
}
