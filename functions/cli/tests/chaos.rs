//! The chaos test: a copy job run by a real `batchops dev` process whose every AWS call goes
//! through a fault-injecting proxy (S3 503 SlowDown, DynamoDB throttling, SQS 500s, dropped
//! connections), with chunk messages duplicated on the queue, the process killed with SIGKILL
//! mid-run and restarted, and the finalizer run again after the end. Afterwards the job must be
//! `Complete`, succeeded + failed must equal the manifest's rows, every row must appear exactly
//! once in the report and every target object must exist.
//!
//! `make test` runs it with 1,000 tasks; `make chaos` with 10,000 (`BATCHOPS_CHAOS_TASKS`).

use batchops_tests::faults::{FaultProxy, Faults};
use batchops_tests::{body_of, copy_job, emulator, sdk, unique};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct DevProcess {
    child: Child,
}

impl DevProcess {
    fn start(proxy: &str, stack: &str, api: &str, log: &std::path::Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_batchops"))
            .arg("dev")
            .env("AWS_ENDPOINT_URL", proxy)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("BATCHOPS_STACK", stack)
            .env("BATCHOPS_API_ADDR", api)
            .env("BATCHOPS_CHUNK_SIZE", "50")
            .env("BATCHOPS_DEV_VISIBILITY_TIMEOUT", "6")
            .env("BATCHOPS_DEV_SWEEP_SECS", "5")
            .env("BATCHOPS_RETRY_BASE_MS", "20")
            .env("BATCHOPS_RETRY_CAP_MS", "500")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start batchops dev");
        Self { child }
    }

    fn kill(mut self) {
        // Child::kill is SIGKILL on Unix: no graceful shutdown, in-flight chunks abandoned.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn api_up(api: &str) {
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(format!("http://{api}/jobs/none")).await
            && r.status().as_u16() == 404
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("batchops dev did not come up on {api}");
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_copy_job_is_exactly_counted() {
    let n: usize = std::env::var("BATCHOPS_CHAOS_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let started = Instant::now();
    let moto = emulator().await;
    let sdk = sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    // Objects and manifest, straight into the emulator.
    let source = unique("chaos-src");
    let target = unique("chaos-dst");
    for b in [&source, &target] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let keys: Vec<String> = (0..n).map(|i| format!("chaos/{i:06} k")).collect();
    {
        use futures::StreamExt;
        let puts: Vec<_> = keys
            .iter()
            .map(|k| {
                s3.put_object()
                    .bucket(&source)
                    .key(k)
                    .body(body_of(k).into())
                    .send()
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(puts)
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().for_each(|r| drop(r.unwrap()));
    }
    let manifest: String = keys
        .iter()
        .map(|k| format!("{source},{}\n", batchops_core::report::encode_key(k)))
        .collect();
    let etag = s3
        .put_object()
        .bucket(&source)
        .key("m.csv")
        .body(manifest.into_bytes().into())
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .trim_matches('"')
        .to_string();

    // The proxy every call of `batchops dev` goes through.
    let proxy = FaultProxy::start(moto).await;
    let faults = |error_rate, drop_rate, latency_ms, duplicate_rate| Faults {
        error_rate,
        drop_rate,
        latency: Duration::from_millis(latency_ms),
        duplicate_rate,
        conflict_rate: 0.0,
    };
    proxy.set("s3", faults(0.05, 0.01, 2, 0.0));
    // DynamoDB also refuses one write in twenty as under contention (UpdateItem
    // TransactionConflictException, TransactWriteItems cancelled with TransactionConflict).
    proxy.set(
        "dynamodb",
        Faults {
            conflict_rate: 0.05,
            ..faults(0.03, 0.005, 0, 0.0)
        },
    );
    // Every SendMessage(Batch) call is delivered twice (a rate below 1 could, with a job of
    // two chunk batches, duplicate none), so each chunk message arrives twice at once and the
    // two deliveries race to be counted. The harness serves
    // moto through infra/emulator.py, which isolates DynamoDB requests as DynamoDB does
    // (plain moto's cancelled transactions erase concurrent writes: tests/tests/emulator.rs).
    let duplicate_rate: f64 = std::env::var("BATCHOPS_CHAOS_DUPLICATE_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    proxy.set("sqs", faults(0.03, 0.005, 0, duplicate_rate));

    let stack = unique("chaos");
    let api = free_addr();
    let log = std::env::temp_dir().join(format!("{stack}.log"));
    let dev = DevProcess::start(&proxy.url(), &stack, &api, &log);
    api_up(&api).await;

    let body = copy_job(&source, "m.csv", Some(&etag), &target, &target, "AllTasks");
    let client = batchops_cli::client::ApiClient::new(format!("http://{api}"));
    let job_id = client.create(&body).await.unwrap();

    // Kill the process with SIGKILL once about a third has run, then restart it.
    let kill_at = (n as u64) / 3;
    loop {
        let job = client.describe(&job_id).await.unwrap();
        let p = &job["ProgressSummary"];
        let done = p["NumberOfTasksSucceeded"].as_u64().unwrap_or(0)
            + p["NumberOfTasksFailed"].as_u64().unwrap_or(0);
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "no progress: {job}"
        );
        if done >= kill_at {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dev.kill();
    let killed_at = client
        .describe(&job_id)
        .await
        .err()
        .map(|_| "API down")
        .unwrap_or("API still up?");
    let _dev = DevProcess::start(&proxy.url(), &stack, &api, &log);
    api_up(&api).await;

    let job = tokio::time::timeout(
        Duration::from_secs(1800),
        client.wait(&job_id, Duration::from_millis(500), |_| {}),
    )
    .await
    .expect("the job ends")
    .unwrap();

    // The finalizer again: a second finalize message, and a direct run.
    let report_key = format!("reports/job-{job_id}/manifest.json");
    let before = s3
        .get_object()
        .bucket(&target)
        .key(&report_key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let finalize_queue = sqs
        .get_queue_url()
        .queue_name(format!("{stack}-finalize"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    sqs.send_message()
        .queue_url(&finalize_queue)
        .message_body(serde_json::json!({"job_id": job_id}).to_string())
        .send()
        .await
        .unwrap();
    let clients = batchops_core::adapters::Clients::new(&sdk, true);
    let names = batchops_core::adapters::stack::ensure_stack(&clients, &stack, 6)
        .await
        .unwrap();
    let deps = batchops_core::Deps::new(batchops_core::Config::for_stack(names), &sdk);
    let again = batchops_core::finalizer::finalize_job(&deps, &job_id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = s3
        .get_object()
        .bucket(&target)
        .key(&report_key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();

    // Verify.
    let duplicated = proxy
        .counts()
        .iter()
        .find(|(s, _)| s == "sqs")
        .map(|(_, c)| c[3])
        .unwrap_or(0);
    assert!(
        duplicate_rate == 0.0 || duplicated > 0,
        "chunk messages were duplicated"
    );
    let report =
        batchops_cli::client::download_report(&s3, &target, &format!("reports/job-{job_id}"))
            .await
            .unwrap();
    let failures: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.status == "failed")
        .take(3)
        .collect();
    assert_eq!(
        job["Status"], "Complete",
        "{job}\nfirst failures: {failures:?}"
    );
    let p = &job["ProgressSummary"];
    let (ok, failed) = (
        p["NumberOfTasksSucceeded"].as_u64().unwrap(),
        p["NumberOfTasksFailed"].as_u64().unwrap(),
    );
    assert_eq!(ok + failed, n as u64, "succeeded + failed == total");
    assert_eq!(p["TotalNumberOfTasks"].as_u64(), Some(n as u64));
    assert_eq!(
        again,
        batchops_core::finalizer::Finalized::AlreadyEnded(batchops_core::job::JobStatus::Complete)
    );
    assert_eq!(before, after, "a second finalizer rewrote nothing");
    let report =
        batchops_cli::client::download_report(&s3, &target, &format!("reports/job-{job_id}"))
            .await
            .unwrap();
    assert_eq!(report.rows.len(), n, "one row per manifest row");
    let reported: BTreeSet<String> = report
        .rows
        .iter()
        .map(|r| batchops_core::manifest::csv::decode_key(&r.key).unwrap())
        .collect();
    assert_eq!(reported.len(), n, "no row twice");
    assert_eq!(reported, keys.iter().cloned().collect::<BTreeSet<_>>());
    let mut copied = BTreeSet::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(&target)
            .prefix("copy/")
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        copied.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|k| k.trim_start_matches("copy/").to_string()),
        );
        token = out.next_continuation_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    let succeeded_keys: BTreeSet<String> = report
        .rows
        .iter()
        .filter(|r| r.status == "succeeded")
        .map(|r| batchops_core::manifest::csv::decode_key(&r.key).unwrap())
        .collect();
    assert!(
        succeeded_keys.is_subset(&copied),
        "every succeeded task's target exists"
    );
    assert_eq!(
        failed, 0,
        "with 5 tries, injected faults at these rates leave no task failed"
    );
    assert_eq!(copied.len(), n, "every target object present");

    println!("chaos: {n} tasks in {:.1?}", started.elapsed());
    println!(
        "chaos: injected per service [requests, errors, dropped connections, duplicated sends]: {:?}",
        proxy.counts()
    );
    println!("chaos: SIGKILL of batchops dev at >= {kill_at} tasks done ({killed_at}), restarted");
    println!("chaos: second finalizer: {again:?}; report manifest unchanged");
    println!(
        "chaos: verified Complete, {ok} succeeded + {failed} failed == {n}, {} report rows each once, {} target objects",
        report.rows.len(),
        copied.len()
    );
    std::fs::remove_file(&log).ok();
}
