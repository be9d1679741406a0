//! Bounded everything: whatever a manifest or a function returns, every message and report
//! row stays within its limits, and the job ends with a clear answer per row.

use aws_sdk_dynamodb::types::AttributeValue;
use batchops_tests::{StackOptions, TestStack, copy_job};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_rows_with_oversized_fields_are_failed_rows_and_the_job_completes() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["b/ok".to_string()], &[]).await;
    let source = &seeded.source;
    // A bucket field of 300 KB (one such task alone is over SQS's 256 KiB), a version id of
    // 2 KB, and a key that decodes to 1,025 bytes: each a failed row, none a stuck job.
    let huge_bucket = "x".repeat(300 * 1024);
    let long_version = "v".repeat(2048);
    let long_key = "k".repeat(1025);
    let manifest = format!(
        "{source},b/ok,\n{huge_bucket},b/any,\n{source},b/ok,{long_version}\n{source},{long_key},v1\n"
    );
    let etag = stack
        .put_raw_manifest(source, "big-fields.csv", manifest.into_bytes())
        .await;
    let mut body = copy_job(
        source,
        "big-fields.csv",
        Some(&etag),
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    body["Manifest"]["Spec"]["Fields"] = serde_json::json!(["Bucket", "Key", "VersionId"]);
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 4, "{job}");
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 4);
    for row in &report.rows {
        assert!(
            row.bucket.len() <= 1024 && row.key.len() <= 1024 && row.message.len() <= 4096,
            "bounded: {} / {} / {} bytes",
            row.bucket.len(),
            row.key.len(),
            row.message.len()
        );
    }
    // (The first row fails too: a manifest with a VersionId column needs one on every row.)
    assert!(
        report.rows.iter().all(|r| r.status == "failed"),
        "{:?}",
        report.rows
    );
    let reason = |key: &str, version: &str| {
        report
            .rows
            .iter()
            .find(|r| r.key == key && r.version_id == version)
            .map(|r| r.message.clone())
            .unwrap_or_else(|| panic!("a row for {key} {version}"))
    };
    // A 300 KiB row is past the 64 KiB record bound: cut there, not read whole.
    assert!(
        report
            .rows
            .iter()
            .any(|r| r.message.contains("is longer than 65536 bytes")),
        "{:?}",
        report.rows
    );
    let truncated_version = &long_version[..1024];
    assert!(
        reason("b/ok", truncated_version).contains("version id"),
        "{}",
        reason("b/ok", truncated_version)
    );
    assert!(reason(&long_key[..1024], "v1").contains("1024"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_request_over_64_kib_is_refused_with_413_naming_the_limit() {
    let stack = TestStack::start_with(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let source = stack.bucket("gen").await;
    // 3,000 prefixes of 30 bytes: a 100 KB request, well under the 1 MiB body limit, but a
    // job item that large would multiply the write units of every count and status change.
    let prefixes: Vec<String> = (0..3000)
        .map(|i| format!("some/long/prefix/{i:013}"))
        .collect();
    let body = |prefixes: &[String]| {
        serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "ManifestGenerator": {"S3JobManifestGenerator": {
                "SourceBucket": format!("arn:aws:s3:::{source}"),
                "EnableManifestOutput": false,
                "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": prefixes}}
            }},
            "Report": {"Enabled": false},
            "Priority": 1
        })
    };
    let (status, answer) = stack.post_jobs_raw(body(&prefixes).to_string()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["Code"], "EntityTooLarge", "{answer}");
    assert!(
        answer["Message"].as_str().unwrap().contains("65536"),
        "names the limit: {answer}"
    );
    let (status, answer) = stack
        .post_jobs_raw(body(&prefixes[..100]).to_string())
        .await;
    assert_eq!(status, 200, "a smaller one is fine: {answer}");
}

/// Accounting issue §4: an ended job is kept 90 days, as AWS keeps it, then DynamoDB's TTL
/// removes it (`expires_at`, the table's TTL attribute) instead of every sweep and ListJobs
/// scanning every job ever created. A running job has no expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_job_expires_ninety_days_after_it_ends_and_a_running_one_never() {
    let stack = TestStack::start().await;
    let seeded = stack.seed(&["ttl/0".to_string()], &[]).await;
    let mut held = seeded.copy_job("AllTasks");
    held["ConfirmationRequired"] = true.into();
    let held_id = stack.api.create(&held).await.unwrap();
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let expires = |id: String| {
        let ddb = ddb.clone();
        let table = stack.dev.deps.config.table.clone();
        async move {
            let item = ddb
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(format!("JOB#{id}")))
                .key("sk", AttributeValue::S("JOB".into()))
                .send()
                .await
                .unwrap();
            item.item()
                .and_then(|i| i.get("expires_at"))
                .and_then(|v| v.as_n().ok())
                .map(|n| n.parse::<i64>().unwrap())
        }
    };
    let ended = time::OffsetDateTime::parse(
        job["TerminationDate"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    let at = expires(job_id).await.expect("an ended job has expires_at");
    assert!(
        (at - ended - 90 * 24 * 3600).abs() < 120,
        "expires_at {at} is 90 days after {ended}"
    );
    stack
        .until(&held_id, 30, |j| j["Status"] == "Suspended")
        .await;
    assert_eq!(
        expires(held_id).await,
        None,
        "a job not ended never expires"
    );
}

/// A chunk on the work queue, received (hidden for 300 s) and acknowledged, as the event
/// source mapping does once the handler has it.
async fn take_chunk(stack: &TestStack) -> batchops_core::chunk::Chunk {
    let messages = stack.receive_chunks(1).await;
    assert_eq!(messages.len(), 1, "one chunk message");
    stack
        .sqs
        .delete_message()
        .queue_url(&stack.dev.deps.config.work_queue_url)
        .receipt_handle(messages[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    batchops_core::chunk::Chunk::from_body(messages[0].body().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_that_outlasts_its_worker_deadline_keeps_what_ran_and_runs_only_the_rest() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |c| {
            c.chunk_size = 20;
            c.task_concurrency = 1;
            // Deadline 20 s out: no task starts after 2 s; running ones get 9 s more.
            c.worker_margin = Duration::from_secs(18);
        },
    })
    .await;
    let deps = stack.dev.deps.clone();
    let keys: Vec<String> = (0..20).map(|i| format!("slow/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let chunk = take_chunk(&stack).await;
    assert_eq!(chunk.tasks.len(), 20);
    // Every S3 call takes 150 ms: one task at a time, 20 tasks need longer than 2 s.
    proxy.set(
        "s3",
        batchops_tests::faults::Faults {
            latency: Duration::from_millis(150),
            ..Default::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first =
        batchops_core::worker::process_delivery_until(&deps, &chunk, false, Some(deadline)).await;
    assert!(
        matches!(
            first,
            Ok(batchops_core::worker::ChunkResult::Continued { .. })
        ),
        "{first:?}"
    );
    let ran = proxy.copies();
    assert!(
        ran > 0 && ran < 20,
        "some tasks ran before the cut-off: {ran}"
    );
    let job = deps.store.require(&job_id).await.unwrap();
    assert_eq!(job.chunks_done, 0, "nothing counted yet: {job:?}");
    // The chunk went back on the queue; its next delivery runs only what is left.
    proxy.set("s3", Default::default());
    let again = take_chunk(&stack).await;
    assert_eq!(again.chunk, chunk.chunk);
    let second = batchops_core::worker::process_chunk(&deps, &again).await;
    assert!(
        matches!(second, Ok(batchops_core::worker::ChunkResult::Counted(c)) if c.succeeded == 20),
        "{second:?}"
    );
    assert_eq!(proxy.copies(), 20, "each task copied once");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 20,
        "{job}"
    );
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    let mut reported: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
    reported.sort();
    assert_eq!(
        reported,
        keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        report.rows.iter().all(|r| r.status == "succeeded"),
        "{:?}",
        report.rows
    );
    // Nothing of the partial record is left behind.
    let left = stack
        .s3
        .list_objects_v2()
        .bucket(&deps.config.bucket)
        .prefix(format!("results/{job_id}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multipart_copy_cut_off_at_the_deadline_is_aborted_and_copied_by_the_next_delivery() {
    const MIB: usize = 1 << 20;
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |c| {
            c.task_concurrency = 2;
            c.multipart_threshold = 5 * MIB as u64;
            c.multipart_part_size = 5 * MIB as u64;
            // Deadline 6 s out: no task starts after 2 s; running ones are cut off at 4 s.
            c.worker_margin = Duration::from_secs(4);
        },
    })
    .await;
    let deps = stack.dev.deps.clone();
    let source = stack.bucket("cutsrc").await;
    let target = stack.bucket("cutdst").await;
    let big: Vec<u8> = (0..6 * MIB).map(|i| (i % 251) as u8).collect();
    stack.put(&source, "big.bin", big.clone()).await;
    stack.put(&source, "small.txt", b"small".to_vec()).await;
    let rows = [
        (source.clone(), "small.txt".to_string()),
        (source.clone(), "big.bin".to_string()),
    ];
    let etag = stack.put_manifest(&source, "cut.csv", &rows).await;
    let mut body = copy_job(
        &source,
        "cut.csv",
        Some(&etag),
        &target,
        &target,
        "AllTasks",
    );
    body["Operation"]["S3PutObjectCopy"]["TargetKeyPrefix"] = serde_json::Value::Null;
    let job_id = stack.api.create(&body).await.unwrap();
    let chunk = take_chunk(&stack).await;
    // The big object's first part copy hangs for 10 s: its task is still running at the cut-off.
    proxy.before_next(
        "PUT",
        &format!("/{target}/big.bin"),
        "",
        std::sync::Arc::new(|| Box::pin(tokio::time::sleep(Duration::from_secs(10)))),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let first =
        batchops_core::worker::process_delivery_until(&deps, &chunk, false, Some(deadline)).await;
    assert!(
        matches!(
            first,
            Ok(batchops_core::worker::ChunkResult::Continued { .. })
        ),
        "{first:?}"
    );
    let uploads = stack
        .s3
        .list_multipart_uploads()
        .bucket(&target)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "the cut-off upload was aborted: {uploads:?}"
    );
    let again = take_chunk(&stack).await;
    let second = batchops_core::worker::process_chunk(&deps, &again).await;
    assert!(
        matches!(second, Ok(batchops_core::worker::ChunkResult::Counted(c)) if c.succeeded == 2),
        "{second:?}"
    );
    let small_copies = proxy
        .s3_requests()
        .iter()
        .filter(|r| {
            r.method == "PUT"
                && r.bucket() == target
                && r.target.contains("small.txt")
                && r.amz_headers.contains_key("x-amz-copy-source")
        })
        .count();
    assert_eq!(small_copies, 1, "the task that finished is not run again");
    assert_eq!(stack.get(&target, "big.bin").await, Some(big));
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 2, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_that_never_finishes_before_the_deadline_is_failed_on_the_last_delivery() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |c| c.worker_margin = Duration::from_secs(4),
    })
    .await;
    let deps = stack.dev.deps.clone();
    let seeded = stack.seed(&["hang/one".to_string()], &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let messages = stack.receive_chunks(1).await;
    assert_eq!(messages.len(), 1);
    let chunk = batchops_core::chunk::Chunk::from_body(messages[0].body().unwrap()).unwrap();
    let hang = || -> batchops_tests::faults::Hook {
        std::sync::Arc::new(|| Box::pin(tokio::time::sleep(Duration::from_secs(10))))
    };
    // An early delivery gets nothing done: it fails (to be delivered again), keeping nothing.
    proxy.before_next("PUT", "/copy/hang/one", "", hang());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let early =
        batchops_core::worker::process_delivery_until(&deps, &chunk, false, Some(deadline)).await;
    assert!(
        matches!(early, Err(batchops_core::Error::Deadline { .. })),
        "{early:?}"
    );
    // The last delivery, cut off the same way, reports the task failed with the cause.
    proxy.before_next("PUT", "/copy/hang/one", "", hang());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let event = batchops_tests::sqs_event(&messages, deps.config.max_receives);
    let response = batchops_worker::handle_until(&deps, event, Some(deadline)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 1, "{job}");
    let report = stack.report(&seeded.target, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 1);
    assert!(
        report.rows[0].message.contains("deadline"),
        "{:?}",
        report.rows[0]
    );
}

/// The size DynamoDB bills an item by, roughly: attribute names plus values.
fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    _ => 1,
                }
        })
        .sum()
}

/// Accounting §1: every chunk count and status change writes the job's counted item, so it
/// must stay small however big the request is: the request (and tags) live in their own item,
/// read with the job, and the indexes project only the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_counted_job_item_stays_small_whatever_the_request_size() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |_| {},
    })
    .await;
    let keys: Vec<String> = (0..3).map(|i| format!("big-request/{i}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    // 50 tags of the longest key and value: a request of about 20 KB.
    body["Tags"] = (0..50)
        .map(|i| serde_json::json!({"Key": format!("{i:02}{}", "k".repeat(126)), "Value": "v".repeat(256)}))
        .collect::<Vec<_>>()
        .into();
    body["Description"] = "a job with a big request".into();
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(90)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 3, "{job}");
    let ddb = aws_sdk_dynamodb::Client::new(&batchops_tests::sdk().await);
    let item = |sk: &str| {
        let ddb = ddb.clone();
        let (table, pk, sk) = (
            stack.dev.deps.store.table().to_string(),
            format!("JOB#{job_id}"),
            sk.to_string(),
        );
        async move {
            ddb.get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item
                .unwrap_or_default()
        }
    };
    let counted = item("JOB").await;
    assert!(!counted.contains_key("request") && !counted.contains_key("tags"));
    assert!(
        item_bytes(&counted) < 2048,
        "counted item of {} bytes: {counted:?}",
        item_bytes(&counted)
    );
    let request = item("JOB#REQUEST").await;
    assert!(item_bytes(&request) > 20_000, "the request is whole there");
    // The job reads whole: DescribeJob, GetJobTagging and ListJobs show what was asked.
    assert_eq!(job["Description"], "a job with a big request", "{job}");
    let tags = stack
        .api
        .call(
            reqwest::Method::GET,
            &format!("/jobs/{job_id}/tagging"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(tags["Tags"].as_array().map(Vec::len), Some(50), "{tags}");
    let listed = stack.api.list(&[], None, None).await.unwrap();
    let entry = listed["Jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["JobId"] == job_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["Operation"], "S3PutObjectCopy", "{entry}");
    assert_eq!(entry["Description"], "a job with a big request", "{entry}");
    assert_eq!(
        entry["ProgressSummary"]["NumberOfTasksSucceeded"], 3,
        "{entry}"
    );
    // Neither index holds the request.
    let table = ddb
        .describe_table()
        .table_name(stack.dev.deps.store.table())
        .send()
        .await
        .unwrap();
    for index in table.table().unwrap().global_secondary_indexes() {
        let projection = index.projection().unwrap();
        assert_eq!(
            projection.projection_type(),
            Some(&aws_sdk_dynamodb::types::ProjectionType::Include),
            "{index:?}"
        );
        assert!(
            !projection
                .non_key_attributes()
                .contains(&"request".to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_job_keeps_only_its_job_and_request_items() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| c.chunk_size = 5,
    })
    .await;
    let keys: Vec<String> = (0..12).map(|i| format!("end/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        stack
            .report(&seeded.target, "reports", &job_id)
            .await
            .rows
            .len(),
        12
    );
    // Chunk records, claims, the plan checkpoint and the report's progress served the run
    // only: the job and its request stay (90 days, by TTL), nothing else does.
    stack.until_cleaned_up(&job_id, 30).await;
    // Described as before.
    let again = stack.api.describe(&job_id).await.unwrap();
    assert_eq!(
        again["ProgressSummary"]["NumberOfTasksSucceeded"], 12,
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_up_cut_short_is_finished_when_the_finalize_message_comes_again() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 2,
        tune: |c| c.chunk_size = 5,
    })
    .await;
    let keys: Vec<String> = (0..12).map(|i| format!("cut/{i:02}")).collect();
    let seeded = stack.seed(&keys, &[]).await;
    // The first clean-up's deletes of the job's records fail (each of the client's tries):
    // the job has ended, its records are left, and the finalize message fails so that it
    // comes again.
    let attempts = batchops_core::adapters::CONTROL_ATTEMPTS;
    proxy.fail_next("POST", "BatchWriteItem", attempts);
    let job_id = stack
        .api
        .create(&seeded.copy_job("AllTasks"))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    stack.until_cleaned_up(&job_id, 60).await;
    assert_eq!(
        proxy.errors("dynamodb"),
        attempts as u64,
        "the failed clean-up was met"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_cancelled_before_it_ran_keeps_only_its_job_and_request_items() {
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |_| {},
    })
    .await;
    let seeded = stack.seed(&["sus/0".to_string()], &[]).await;
    let mut body = seeded.copy_job("AllTasks");
    body["ConfirmationRequired"] = serde_json::json!(true);
    let job_id = stack.api.create(&body).await.unwrap();
    // Planned (counted, nothing queued), then cancelled by the user.
    stack
        .until(&job_id, 60, |j| j["Status"] == "Suspended")
        .await;
    let (code, answer) = {
        let resp = reqwest::Client::new()
            .post(format!("{}/jobs/{job_id}/status", stack.base_url))
            .json(&serde_json::json!({"RequestedJobStatus": "Cancelled"}))
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (code, &answer["Status"]),
        (200, &serde_json::json!("Cancelled")),
        "{answer}"
    );
    stack.until_cleaned_up(&job_id, 60).await;
}

/// A report key of about 200 bytes, so a few MiB of rows need few tasks.
fn long_key(row: u64) -> String {
    format!("deep/{}/object-{row:08}.bin", "segment".repeat(27))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_file_bigger_than_a_part_is_uploaded_in_parts_and_holds_every_row() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = stack.dev.deps.clone();
    let reports = stack.bucket("rep").await;
    // About 20 MiB of rows: one report file (the limit is 64 MiB), more than two parts.
    let rows = 90_000;
    let job_id = batchops_tests::seed_counted_job(&deps, rows, 10_000, &reports, long_key)
        .await
        .unwrap();
    // Only the finalizer is left to run: the stack's own.
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    // The rows and their MD5 (checked against the manifest's) read back whole.
    let report = stack.report(&reports, "r", &job_id).await;
    assert_eq!(report.rows.len(), rows as usize);
    let keys: std::collections::BTreeSet<&str> =
        report.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.len(), rows as usize, "every row once");
    // Sent a part at a time: never a file held whole.
    let to_reports: Vec<_> = proxy
        .s3_requests()
        .into_iter()
        .filter(|r| r.bucket() == reports && r.target.contains("/results/"))
        .collect();
    let parts = to_reports
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("partNumber="))
        .count();
    let whole = to_reports
        .iter()
        .filter(|r| r.method == "PUT" && !r.target.contains("partNumber="))
        .count();
    let min_parts = (20 << 20) / batchops_core::report::REPORT_PART_BYTES;
    assert!(parts > min_parts, "{parts} parts for about 20 MiB");
    assert_eq!(whole, 0, "no report file was sent in one request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_upload_that_fails_is_aborted_and_written_whole_when_the_finalizer_runs_again() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let deps = stack.dev.deps.clone();
    let reports = stack.bucket("rep").await;
    let rows = 50_000;
    // The second part of the report's file fails, each of the client's tries: set before the
    // job is seeded, since the stack's finalizer may take it up at once.
    let attempts = batchops_core::adapters::CONTROL_ATTEMPTS;
    proxy.fail_next("PUT", "partNumber=2", attempts);
    let job_id = batchops_tests::seed_counted_job(&deps, rows, 10_000, &reports, long_key)
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        proxy.errors("s3"),
        attempts as u64,
        "the failed part was met"
    );
    let aborted = proxy
        .s3_requests()
        .into_iter()
        .filter(|r| r.bucket() == reports && r.method == "DELETE" && r.target.contains("uploadId="))
        .count();
    assert_eq!(
        aborted, 1,
        "the unfinished upload is abandoned, not left billed"
    );
    let uploads = stack
        .s3
        .list_multipart_uploads()
        .bucket(&reports)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
    // The finalize message came again: the report was written whole.
    let report = stack.report(&reports, "r", &job_id).await;
    assert_eq!(report.rows.len(), rows as usize);
}
