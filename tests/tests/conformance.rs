//! The fakes answer like the emulator. One sequence of job-store operations — the job's
//! life from creation through claims, counts, checkpoints, pages and clean-up, with every
//! refusal the pipeline relies on (a condition failed, a transaction cancelled, a claim
//! held) — runs once on the emulator's DynamoDB and once on the in-memory fake, through the
//! same `JobStore` code, clock and ids; the two transcripts must be equal line for line.

use batchops_core::adapters::JobStore;
use batchops_core::adapters::dynamo::{ChunkCounts, StatusChange};
use batchops_core::checkpoint::{Checkpoint, Phase};
use batchops_core::ids::Ids;
use batchops_core::job::{Actor, Job, JobStatus};
use batchops_core::manifest::Position;
use batchops_core::time::Clock;
use batchops_tests::fake::Fakes;
use std::fmt::Debug;
use std::time::Duration;

/// The emulator's and the fake's transcripts of one sequence, line by line.
fn assert_same(emulator: &[String], fake: &[String]) {
    for (i, (e, f)) in emulator.iter().zip(fake).enumerate() {
        assert_eq!(
            e, f,
            "line {i} differs: the emulator answered the first, the fake the second"
        );
    }
    assert_eq!(emulator.len(), fake.len(), "the transcripts' lengths");
}

/// One line of the transcript: what an operation answered (an error by whether it may be
/// retried: the messages of the two services differ).
fn line<T: Debug>(what: &str, r: batchops_core::Result<T>) -> String {
    match r {
        Ok(v) => format!("{what}: {v:?}"),
        Err(e) => format!("{what}: error (retryable: {})", e.is_retryable()),
    }
}

fn request() -> batchops_core::job::CreateJobRequest {
    serde_json::from_value(serde_json::json!({
        "Operation": {"S3DeleteObjectTagging": {}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::src/m.csv", "ETag": "e"}},
        "Report": {"Enabled": false},
        "Priority": 5,
    }))
    .unwrap()
}

async fn transcript(sdk: &aws_config::SdkConfig, table: &str) -> Vec<String> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    batchops_core::adapters::stack::ensure_table(&client, table)
        .await
        .unwrap();
    let at = time::OffsetDateTime::from_unix_timestamp(1_924_992_000).unwrap();
    let store =
        JobStore::new(client, table.to_string()).with_time(Clock::fixed(at), Ids::seeded(3));
    let mut t = Vec::new();
    let actor = Actor::api(Some("arn:aws:iam::1:user/c".into()));
    let jobs: Vec<Job> = (0..3)
        .map(|i| {
            Job::new(
                format!("job-{i}"),
                request(),
                format!("2031-01-01T00:00:0{i}.000Z"),
            )
            .created_by(&actor)
        })
        .collect();
    for j in &jobs {
        t.push(line("create", store.create(j).await));
    }
    t.push(line("create again", store.create(&jobs[0]).await));
    let id = "job-0";
    t.push(line("get", store.get(id).await));
    t.push(line("get none", store.get("job-none").await));
    let start = |from: &[JobStatus], to| {
        let store = store.clone();
        let from = from.to_vec();
        async move {
            store
                .try_transition(id, &from, to, StatusChange::default())
                .await
        }
    };
    t.push(line(
        "New→Preparing",
        start(&[JobStatus::New], JobStatus::Preparing).await,
    ));
    t.push(line(
        "New→Preparing again",
        start(&[JobStatus::New], JobStatus::Preparing).await,
    ));
    t.push(line("pin", store.pin_manifest(id, "etag-1").await));
    t.push(line("pin other", store.pin_manifest(id, "etag-2").await));
    t.push(line("record sent", store.record_sent(id, 3, 21).await));
    t.push(line(
        "record sent lower",
        store.record_sent(id, 2, 14).await,
    ));
    let cp = Checkpoint {
        phase: Phase::Plan,
        at: Position::Csv { offset: 100 },
        row: 14,
        next_chunk: 2,
        etag: "etag-1".into(),
        chunk_size: 7,
        continuations: 1,
        scan_span: None,
        saved_at: Some("2031-01-01T00:00:00.000Z".into()),
    };
    t.push(line(
        "checkpoint",
        store.save_checkpoint(id, None, &cp, 14, 2).await,
    ));
    t.push(line(
        "checkpoint stale",
        store.save_checkpoint(id, None, &cp, 14, 2).await,
    ));
    t.push(line(
        "checkpoint next",
        store.save_checkpoint(id, Some(1), &cp, 14, 2).await,
    ));
    t.push(line("plan state", store.plan_state(id).await));
    t.push(line(
        "Preparing→Active",
        start(&[JobStatus::Preparing], JobStatus::Active).await,
    ));
    let lease = Duration::from_secs(600);
    t.push(line(
        "claim",
        store.claim_chunk(id, 0, "owner-a", lease).await,
    ));
    t.push(line(
        "claim held",
        store.claim_chunk(id, 0, "owner-b", lease).await,
    ));
    t.push(line(
        "claim own",
        store.claim_chunk(id, 0, "owner-a", lease).await,
    ));
    t.push(line(
        "release other",
        store.release_chunk(id, 0, "owner-b").await,
    ));
    t.push(line(
        "claim still held",
        store.claim_chunk(id, 0, "owner-b", lease).await,
    ));
    t.push(line("release", store.release_chunk(id, 0, "owner-a").await));
    t.push(line(
        "claim freed",
        store.claim_chunk(id, 0, "owner-b", lease).await,
    ));
    let counts = ChunkCounts {
        succeeded: 6,
        failed: 1,
        not_run: 0,
    };
    t.push(line("counted?", store.chunk_counted(id, 0).await));
    t.push(line(
        "count",
        store
            .count_chunk(id, 0, counts, Some("results/a.csv"))
            .await,
    ));
    t.push(line(
        "count again",
        store
            .count_chunk(id, 0, counts, Some("results/b.csv"))
            .await,
    ));
    t.push(line("counted", store.chunk_counted(id, 0).await));
    t.push(line(
        "count 1",
        store.count_chunk(id, 1, counts, None).await,
    ));
    t.push(line(
        "finish planning",
        store.finish_planning(id, 14, 2, "etag-1").await,
    ));
    t.push(line(
        "count past the plan",
        store.count_chunk(id, 2, counts, None).await,
    ));
    t.push(line("priority", store.set_priority(id, 9).await));
    t.push(line(
        "priority of none",
        store.set_priority("job-none", 9).await,
    ));
    t.push(line("list", store.list_page(None, 10, None).await));
    let (first, next) = store.list_page(None, 2, None).await.unwrap();
    t.push(format!("list by 2: {first:?}"));
    t.push(line("list rest", store.list_page(None, 2, next).await));
    t.push(line(
        "list Active",
        store.list_page(Some(&[JobStatus::Active]), 10, None).await,
    ));
    t.push(line("open", store.open_jobs_page(10, None).await));
    for to in [JobStatus::Completing, JobStatus::Complete] {
        let from = store.status(id).await.unwrap();
        t.push(line(&format!("→{to}"), start(&[from], to).await));
    }
    t.push(line(
        "count after the end",
        store.count_chunk(id, 3, counts, None).await,
    ));
    t.push(line("open after", store.open_jobs_page(10, None).await));
    let (records, _) = store.working_records_page(id, None).await.unwrap();
    t.push(format!("working records: {records:?}"));
    t.push(line(
        "delete them",
        store.delete_working_records(id, &records).await,
    ));
    t.push(line(
        "working records after",
        store.working_records_page(id, None).await,
    ));
    t.push(line("get at the end", store.get(id).await));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_dynamodb_answers_a_jobs_life_as_the_emulator_does() {
    let table = batchops_tests::unique("conf");
    let emulator = transcript(&batchops_tests::sdk().await, &table).await;
    let fake = transcript(&Fakes::new().sdk_config().await, &table).await;
    assert!(emulator.len() > 40, "{emulator:#?}");
    assert_same(&emulator, &fake);
    // The sequence meets the refusals it is there for.
    let all = emulator.join("\n");
    for refusal in [
        "create again: error",
        "claim held: Some(",
        "count again: false",
        "checkpoint stale: false",
    ] {
        assert!(all.contains(refusal), "{refusal} in {all}");
    }
}

/// One queue's life on the raw SQS API, as the pipeline and the model's event-source
/// mapping use it: sends (one delayed), receives with their counts, visibility made zero to
/// receive again, deletes, and a redrive to the dead-letter queue after the second receive.
async fn sqs_transcript(sdk: &aws_config::SdkConfig, prefix: &str) -> Vec<String> {
    use aws_sdk_sqs::types::{
        MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
    };
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut t = Vec::new();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{prefix}-dlq"))
        .send()
        .await
        .unwrap();
    let dlq = dlq.queue_url().unwrap().to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = arn.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": 2}).to_string();
    let q = sqs
        .create_queue()
        .queue_name(prefix)
        .attributes(QueueAttributeName::VisibilityTimeout, "600")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap();
    let q = q.queue_url().unwrap().to_string();
    let name = |u: &str| u.rsplit('/').next().unwrap_or_default().to_string();
    t.push(format!(
        "urls end with: {} {}",
        name(&q) == prefix,
        name(&dlq).ends_with("-dlq")
    ));
    let counts = |url: String| {
        let sqs = sqs.clone();
        async move {
            let a = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .unwrap();
            let a = a.attributes().unwrap();
            format!(
                "visible {} in flight {}",
                a[&QueueAttributeName::ApproximateNumberOfMessages],
                a[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
            )
        }
    };
    let receive = |max: i32| {
        let (sqs, q) = (sqs.clone(), q.clone());
        async move {
            let out = sqs
                .receive_message()
                .queue_url(q)
                .max_number_of_messages(max)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let mut got: Vec<(String, String, String)> = out
                .messages()
                .iter()
                .map(|m| {
                    let count = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .cloned()
                        .unwrap_or_default();
                    (
                        m.body().unwrap_or_default().to_string(),
                        count,
                        m.receipt_handle().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            got.sort();
            got
        }
    };
    let bodies = |got: &[(String, String, String)]| -> Vec<(String, String)> {
        got.iter().map(|(b, c, _)| (b.clone(), c.clone())).collect()
    };
    sqs.send_message()
        .queue_url(&q)
        .message_body("a")
        .send()
        .await
        .unwrap();
    let batch = sqs
        .send_message_batch()
        .queue_url(&q)
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("1")
                .message_body("b")
                .build()
                .unwrap(),
        )
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("2")
                .message_body("c")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    t.push(format!(
        "batch: {} sent, {} failed",
        batch.successful().len(),
        batch.failed().len()
    ));
    sqs.send_message()
        .queue_url(&q)
        .message_body("late")
        .delay_seconds(900)
        .send()
        .await
        .unwrap();
    t.push(counts(q.clone()).await);
    let first = receive(10).await;
    t.push(format!("first receive: {:?}", bodies(&first)));
    t.push(counts(q.clone()).await);
    t.push(format!(
        "again, all in flight: {:?}",
        bodies(&receive(10).await)
    ));
    // "a" is deleted; "b" made visible again; "c" stays in flight.
    sqs.delete_message()
        .queue_url(&q)
        .receipt_handle(&first[0].2)
        .send()
        .await
        .unwrap();
    sqs.change_message_visibility()
        .queue_url(&q)
        .receipt_handle(&first[1].2)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    t.push(counts(q.clone()).await);
    let second = receive(10).await;
    t.push(format!("second receive: {:?}", bodies(&second)));
    let stale = sqs
        .change_message_visibility()
        .queue_url(&q)
        .receipt_handle(&first[1].2)
        .visibility_timeout(0)
        .send()
        .await;
    t.push(format!(
        "the first receipt of b, after b was received again: ok {}",
        stale.is_ok()
    ));
    // (That made b visible again.) b has been received twice (maxReceiveCount): the next receive moves it to the DLQ.
    t.push(format!("third receive: {:?}", bodies(&receive(10).await)));
    t.push(format!("queue: {}", counts(q.clone()).await));
    t.push(format!("dead letters: {}", counts(dlq.clone()).await));
    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    t.push(format!(
        "dead: {:?}",
        dead.messages()
            .iter()
            .map(|m| m.body().unwrap_or_default())
            .collect::<Vec<_>>()
    ));
    let gone = sqs
        .get_queue_url()
        .queue_name(format!("{prefix}-none"))
        .send()
        .await;
    t.push(format!(
        "no such queue: {}",
        gone.err()
            .and_then(|e| e
                .into_service_error()
                .is_queue_does_not_exist()
                .then_some("QueueDoesNotExist"))
            .unwrap_or("?")
    ));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_sqs_delivers_redelivers_and_dead_letters_as_the_emulator_does() {
    let prefix = batchops_tests::unique("conf");
    let emulator = sqs_transcript(&batchops_tests::sdk().await, &prefix).await;
    let fake = sqs_transcript(&Fakes::new().sdk_config().await, &prefix).await;
    assert_same(&emulator, &fake);
    let all = emulator.join("\n");
    assert!(all.contains("dead: [\"b\"]"), "{all}");
}

/// The pipeline's own S3 calls (`Objects`) on one bucket: writes plain and if absent, reads
/// whole, from an offset and only if the ETag still matches, heads, listings (after a key,
/// and of common prefixes), a multipart upload, deletes — and the failures those answer.
async fn s3_transcript(sdk: &aws_config::SdkConfig, bucket: &str) -> Vec<String> {
    let clients = batchops_core::adapters::Clients::new(sdk, true);
    clients
        .s3_control
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let o =
        batchops_core::adapters::Objects::new(clients.s3_control.clone(), clients.s3_tasks.clone());
    let mut t = Vec::new();
    let text = |r: batchops_core::Result<Vec<u8>>| match r {
        Ok(b) => format!("{:?}", String::from_utf8_lossy(&b)),
        Err(e) => format!("error (retryable: {})", e.is_retryable()),
    };
    t.push(line(
        "put",
        o.put_bytes(bucket, "dir/a b.csv", b"hello world".to_vec(), "text/csv")
            .await,
    ));
    t.push(line(
        "put if absent, present",
        o.put_bytes_if_absent(bucket, "dir/a b.csv", b"x".to_vec(), "text/csv")
            .await,
    ));
    t.push(line(
        "put if absent",
        o.put_bytes_if_absent(bucket, "dir/sub/c.json", b"{}".to_vec(), "application/json")
            .await,
    ));
    t.push(line(
        "put",
        o.put_bytes(bucket, "top.txt", b"t".to_vec(), "text/plain")
            .await,
    ));
    t.push(format!(
        "get: {}",
        text(o.get_bytes(bucket, "dir/a b.csv").await)
    ));
    t.push(line(
        "get missing",
        o.get_bytes_opt(bucket, "dir/none").await,
    ));
    let head = o.head(bucket, "dir/a b.csv").await.unwrap();
    t.push(format!(
        "head: {} {} {:?}",
        head.etag, head.size, head.content_type
    ));
    t.push(line(
        "head missing",
        o.head(bucket, "dir/none").await.map(|h| h.size),
    ));
    let from = |offset: u64, etag: Option<String>| {
        let o = o.clone();
        async move {
            match o
                .get_object_from(bucket, "dir/a b.csv", None, offset, etag.as_deref())
                .await
            {
                Ok(got) => format!(
                    "{:?} {:?}",
                    got.etag,
                    got.body.collect().await.map(|b| b.to_vec())
                ),
                Err(e) => format!("error (retryable: {})", e.is_retryable()),
            }
        }
    };
    t.push(format!(
        "from 6, pinned: {}",
        from(6, Some(head.etag.clone())).await
    ));
    t.push(format!(
        "from 6, another etag: {}",
        from(6, Some("0123".into())).await
    ));
    // Listed with their modification times' presence (the two clocks differ).
    type Page = (Vec<batchops_core::adapters::s3::Listed>, Option<String>);
    let listed = |r: batchops_core::Result<Page>| {
        r.map(|(l, next)| {
            let l: Vec<_> = l
                .into_iter()
                .map(|o| (o.key, o.size, o.last_modified_ms.is_some(), o.storage_class))
                .collect();
            (l, next)
        })
    };
    t.push(line(
        "list",
        listed(o.list_page(bucket, "", None, None).await),
    ));
    t.push(line(
        "list dir/ after a",
        listed(o.list_page(bucket, "dir/", Some("dir/a b.csv"), None).await),
    ));
    t.push(line("prefixes", o.list_prefixes(bucket, "dir/").await));
    let mut up = o
        .start_upload(bucket, "reports/r.csv", "text/csv")
        .await
        .unwrap();
    o.upload_part(&mut up, vec![b'x'; 5 * 1024 * 1024])
        .await
        .unwrap();
    o.upload_part(&mut up, b"tail".to_vec()).await.unwrap();
    t.push(line("complete", o.complete_upload(&up).await));
    t.push(line(
        "uploaded size",
        o.head(bucket, "reports/r.csv").await.map(|h| h.size),
    ));
    t.push(line("delete", o.delete(bucket, "dir/a b.csv").await));
    t.push(line("delete again", o.delete(bucket, "dir/a b.csv").await));
    t.push(line(
        "after delete",
        o.get_bytes_opt(bucket, "dir/a b.csv").await,
    ));
    t.push(line(
        "no bucket",
        o.get_bytes_opt(&format!("{bucket}-none"), "k").await,
    ));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_s3_reads_writes_and_lists_as_the_emulator_does() {
    let bucket = batchops_tests::unique("conf");
    let emulator = s3_transcript(&batchops_tests::sdk().await, &bucket).await;
    let fake = s3_transcript(&Fakes::new().sdk_config().await, &bucket).await;
    let all = emulator.join("\n");
    for answer in [
        "put if absent, present: false",
        "from 6, another etag: error (retryable: false)",
        "head missing: error (retryable: false)",
        "prefixes: [\"dir/sub/\"]",
        "uploaded size: 5242884",
    ] {
        assert!(all.contains(answer), "{answer} in {all}");
    }
    assert_same(&emulator, &fake);
}
