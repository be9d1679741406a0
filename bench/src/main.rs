//! # bench-harness
//!
//! The measuring half of `make bench` (`bench/run.sh` starts the servers and calls it). Each
//! subcommand prints one JSON object per line; `report` turns those lines into the table of
//! `bench/results.md`. No subcommand asserts on time: these are measurements, not tests.
//!
//! ## Layout
//! - `parse`: planner parse + chunk + message-body rate over an in-memory manifest, one thread.
//! - `seed` / `plan`: a real planner run over a large manifest object in the emulator, in a
//!   process of its own so `/usr/bin/time -v` sees its peak RSS alone.
//! - `e2e`: N small-object copies through the dev runner (the code `batchops dev` runs), then
//!   the same copies with `s5cmd run`, side by side; SQS and DynamoDB calls counted from the
//!   emulator's request recorder.
//! - `seed-results` / `finalize`: a job of `rows` counted tasks (its chunk records and result
//!   files written directly), then the finalizer assembling its report in a process of its
//!   own (peak RSS), invocation after invocation until the job ends.
//! - `chaos`: a copy job through the dev runner with every DynamoDB, SQS and S3 call going
//!   through the tests' fault proxy, which refuses a share of DynamoDB writes as DynamoDB does
//!   under contention and delivers every chunk message twice; counts the copies the proxy
//!   forwarded, so the tasks run again because of a conflict or a duplicate are measured.
//! - `cold-start`: each Lambda binary from process start to its first request for an event,
//!   against a stand-in of the Lambda Runtime API.
//! - `report`: the table.

use anyhow::{Context, Result, bail};
use aws_sdk_s3::primitives::ByteStream;
use batchops_core::adapters::Clients;
use batchops_core::adapters::stack::ensure_stack;
use batchops_core::chunk::Chunker;
use batchops_core::job::spec::manifest_columns;
use batchops_core::job::{CreateJobRequest, Job};
use batchops_core::manifest::csv::Rows;
use batchops_core::{Config, Deps};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse + chunk + serialise `rows` rows of an in-memory manifest on one thread.
    Parse {
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
    },
    /// Creates a stack, a manifest of `rows` rows and a job for it; prints the job id.
    Seed {
        #[arg(long)]
        stack: String,
        #[arg(long)]
        rows: u64,
        /// ConfirmationRequired: planning reads and chunks every row but queues nothing.
        #[arg(long)]
        count_only: bool,
    },
    /// Plans a seeded job in this process (one invocation, no time limit).
    Plan {
        #[arg(long)]
        stack: String,
        #[arg(long)]
        job: String,
    },
    /// N copies through the dev runner, then through `s5cmd run`.
    E2e {
        #[arg(long)]
        n: usize,
        #[arg(long)]
        label: String,
        #[arg(long)]
        s5cmd: String,
        /// The emulator serving SQS and DynamoDB, for its request recorder.
        #[arg(long)]
        moto: String,
        /// Runs of each tool, alternating which goes first; medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Creates a stack and a job of `rows` tasks, all counted (chunk records and result files
    /// written directly, as workers would); prints the job id.
    SeedResults {
        #[arg(long)]
        stack: String,
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 1000)]
        chunk_size: u64,
    },
    /// Finalizes a seeded job in this process: finalizer invocations until it ends.
    Finalize {
        #[arg(long)]
        stack: String,
        #[arg(long)]
        job: String,
    },
    /// A copy job of `n` objects under injected DynamoDB conflicts and duplicate deliveries.
    Chaos {
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// The emulator serving S3, SQS and DynamoDB, behind the fault proxy.
        #[arg(long)]
        moto: String,
        /// Share of DynamoDB writes refused as under contention.
        #[arg(long, default_value_t = 0.05)]
        conflict_rate: f64,
        /// Share of SQS sends forwarded twice.
        #[arg(long, default_value_t = 1.0)]
        duplicate_rate: f64,
    },
    /// Cold start of each Lambda binary given.
    ColdStart {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        bins: Vec<String>,
    },
    /// Writes the results table from the JSON lines in `input`.
    Report {
        #[arg(long)]
        input: String,
        #[arg(long)]
        out: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Parse { rows } => parse(rows),
        Command::Seed {
            stack,
            rows,
            count_only,
        } => seed(&stack, rows, count_only).await,
        Command::Plan { stack, job } => plan(&stack, &job).await,
        Command::E2e {
            n,
            label,
            s5cmd,
            moto,
            rounds,
        } => e2e(n, rounds, &label, &s5cmd, &moto).await,
        Command::SeedResults {
            stack,
            rows,
            chunk_size,
        } => seed_results(&stack, rows, chunk_size).await,
        Command::Finalize { stack, job } => finalize(&stack, &job).await,
        Command::Chaos {
            n,
            moto,
            conflict_rate,
            duplicate_rate,
        } => chaos(n, &moto, conflict_rate, duplicate_rate).await,
        Command::ColdStart { runs, bins } => cold_start(runs, &bins).await,
        Command::Report { input, out } => report(&input, &out),
    }
}

/// A manifest that exists only as a repeated in-memory block of rows.
struct Synthetic {
    block: Vec<u8>,
    rows_per_block: u64,
    blocks_left: u64,
    pos: usize,
}

impl Synthetic {
    fn new(rows: u64) -> Self {
        let rows_per_block = 100_000.min(rows.max(1));
        let mut block = Vec::new();
        for i in 0..rows_per_block {
            block.extend_from_slice(
                format!(
                    "bench-source-bucket,photos/2026/{:03}/IMG {i:08}+edit.jpg\n",
                    i % 997
                )
                .as_bytes(),
            );
        }
        Self {
            block,
            rows_per_block,
            blocks_left: rows.div_ceil(rows_per_block),
            pos: 0,
        }
    }
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.block.len() {
            if self.blocks_left <= 1 {
                return Ok(0);
            }
            self.blocks_left -= 1;
            self.pos = 0;
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn parse(rows: u64) -> Result<()> {
    let input = Synthetic::new(rows);
    let total_rows = input.rows_per_block * input.blocks_left;
    let columns = manifest_columns(None).map_err(anyhow::Error::msg)?;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut chunker = Chunker::new("00000000-0000-0000-0000-000000000000", 1000, 0);
    let (mut tasks, mut chunks, mut bytes) = (0u64, 0u64, 0usize);
    let mut emit = |chunk: batchops_core::chunk::Chunk| -> Result<()> {
        // What the planner sends: the chunk's message body.
        bytes += serde_json::to_string(&chunk)?.len();
        chunks += 1;
        Ok(())
    };
    for task in Rows::new(
        std::io::BufReader::with_capacity(1 << 16, input),
        columns,
        0,
    ) {
        let task = task?;
        tasks += 1;
        if let Some(chunk) = chunker.push(task) {
            emit(chunk)?;
        }
    }
    if let Some(chunk) = chunker.finish() {
        emit(chunk)?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu0).max(0.01);
    anyhow::ensure!(tasks == total_rows, "parsed {tasks} of {total_rows} rows");
    println!(
        "{}",
        json!({"kind": "parse", "rows": tasks, "chunks": chunks, "message_bytes": bytes,
               "wall_secs": wall, "cpu_secs": cpu,
               "rows_per_sec_wall": tasks as f64 / wall, "rows_per_cpu_sec": tasks as f64 / cpu})
    );
    Ok(())
}

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

async fn stack_deps(stack: &str) -> Result<Deps> {
    let sdk = sdk().await;
    let clients = Clients::new(&sdk, true);
    let names = ensure_stack(&clients, stack, 60).await?;
    Ok(Deps::new(Config::for_stack(names), &sdk))
}

fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

async fn seed(stack: &str, rows: u64, count_only: bool) -> Result<()> {
    let deps = stack_deps(stack).await?;
    let sdk = sdk().await;
    let s3 = s3_client(&sdk);
    let bucket = format!("{stack}-src");
    let _ = s3.create_bucket().bucket(&bucket).send().await;
    // Written to a file and streamed from it: this process never holds the manifest.
    let path = std::env::temp_dir().join(format!("{stack}-manifest.csv"));
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        std::io::copy(&mut Synthetic::new(rows), &mut out)?;
    }
    s3.put_object()
        .bucket(&bucket)
        .key("manifest.csv")
        .body(ByteStream::from_path(&path).await?)
        .send()
        .await
        .context("upload the manifest")?;
    std::fs::remove_file(&path)?;
    let request: CreateJobRequest = serde_json::from_value(json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820"},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{bucket}/manifest.csv")}},
        "Report": {"Enabled": false},
        "ConfirmationRequired": count_only
    }))?;
    let job_id = uuid::Uuid::new_v4().to_string();
    deps.store
        .create(&Job::new(
            job_id.clone(),
            request,
            batchops_core::time::now_iso(),
        ))
        .await?;
    println!("{job_id}");
    Ok(())
}

async fn plan(stack: &str, job: &str) -> Result<()> {
    let deps = stack_deps(stack).await?;
    let t0 = Instant::now();
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    let summary = batchops_core::planner::plan_job(&deps, job, far).await?;
    let stored = deps.store.require(job).await?;
    println!(
        "{}",
        json!({"kind": "plan", "rows": summary.tasks, "chunks": summary.chunks,
               "status": stored.status.as_str(), "secs": t0.elapsed().as_secs_f64(),
               "max_buffered_rows": summary.max_buffered_rows,
               "max_tasks_held": summary.max_tasks_held})
    );
    Ok(())
}

async fn seed_results(stack: &str, rows: u64, chunk_size: u64) -> Result<()> {
    let deps = stack_deps(stack).await?;
    let s3 = s3_client(&sdk().await);
    let reports = format!("{stack}-rep");
    let _ = s3.create_bucket().bucket(&reports).send().await;
    let job_id = batchops_tests::seed_counted_job(&deps, rows, chunk_size, &reports, |row| {
        format!("photos/2026/{:03}/IMG {row:08}+edit.jpg", row % 997)
    })
    .await?;
    println!("{job_id}");
    Ok(())
}

async fn finalize(stack: &str, job: &str) -> Result<()> {
    use batchops_core::finalizer::Finalized;
    let deps = stack_deps(stack).await?;
    let t0 = Instant::now();
    let mut invocations = 0u64;
    let status = loop {
        invocations += 1;
        match batchops_core::finalizer::finalize_job(&deps, job).await? {
            Finalized::Continued => continue,
            Finalized::Ended(status, _) | Finalized::AlreadyEnded(status) => break status,
            Finalized::NotReady => bail!("job {job} is not reconciled"),
        }
    };
    let stored = deps.store.require(job).await?;
    let secs = t0.elapsed().as_secs_f64();
    let rows = stored.succeeded + stored.failed;
    println!(
        "{}",
        json!({"kind": "finalize", "rows": rows, "chunks": stored.chunks_total,
               "status": status.as_str(), "secs": secs, "rows_per_sec": rows as f64 / secs,
               "invocations": invocations,
               "budget_secs": deps.config.finalizer_budget.as_secs()})
    );
    Ok(())
}

/// The X-Amz-Target of every request the emulator recorded, counted.
async fn recorded_targets(moto: &str) -> Result<BTreeMap<String, u64>> {
    let text = reqwest::get(format!("{moto}/moto-api/recorder/download-recording"))
        .await?
        .text()
        .await?;
    // moto's server writes its records from several threads, and a large record (a
    // SendMessageBatch of chunk messages) can be split by another record, so the file is not
    // always one JSON object a line. Each record's `X-Amz-Target` header stays whole (request
    // bodies are base64 or escaped JSON, which never hold it): count those.
    const HEADER: &str = "\"x-amz-target\": \"";
    let lower = text.to_ascii_lowercase();
    let mut counts = BTreeMap::new();
    for (at, _) in lower.match_indices(HEADER) {
        let value = &text[at + HEADER.len()..];
        let target = &value[..value.find('"').unwrap_or(0)];
        *counts.entry(target.to_string()).or_insert(0) += 1;
    }
    Ok(counts)
}

async fn recorder(moto: &str, action: &str) -> Result<()> {
    reqwest::Client::new()
        .post(format!("{moto}/moto-api/recorder/{action}"))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Creates the buckets `src` and `dst`, `n` objects `<prefix>/<i:06>.dat` in `src` (64 PUTs
/// in flight, `body` gives each its bytes) and `src/manifest.csv` listing them; returns the
/// keys.
async fn seed_copy_source(
    s3: &aws_sdk_s3::Client,
    src: &str,
    dst: &str,
    n: usize,
    prefix: &str,
    body: impl Fn(&str) -> Vec<u8>,
) -> Result<Vec<String>> {
    use futures::StreamExt;
    for b in [src, dst] {
        s3.create_bucket().bucket(b).send().await?;
    }
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}/{i:06}.dat")).collect();
    let puts = keys.iter().map(|k| {
        s3.put_object()
            .bucket(src)
            .key(k)
            .body(ByteStream::from(body(k)))
            .send()
    });
    let results: Vec<_> = futures::stream::iter(puts)
        .buffer_unordered(64)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let manifest: String = keys.iter().map(|k| format!("{src},{k}\n")).collect();
    s3.put_object()
        .bucket(src)
        .key("manifest.csv")
        .body(ByteStream::from(manifest.into_bytes()))
        .send()
        .await?;
    Ok(keys)
}

async fn e2e(n: usize, rounds: usize, label: &str, s5cmd: &str, moto: &str) -> Result<()> {
    let sdk = sdk().await;
    let s3 = s3_client(&sdk);
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (src, dst) = (format!("bench-src-{tag}"), format!("bench-dst-{tag}"));
    let keys = seed_copy_source(&s3, &src, &dst, n, "objects", |_| vec![b'x'; 1024]).await?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .context("AWS_ENDPOINT_URL_S3")?;
    let e2e = E2e {
        sdk: &sdk,
        s3: &s3,
        src: &src,
        dst: &dst,
        keys: &keys,
        moto,
    };

    // Rounds alternate which tool goes first, so that neither always meets the server (and the
    // disk's write-back of the objects just written) in the same state; medians are reported.
    let (mut ours, mut theirs, mut first) = (Vec::new(), Vec::new(), None);
    for round in 0..rounds.max(1) {
        let prefix = format!("r{round}");
        if round % 2 == 1 {
            theirs.push(e2e.s5cmd(s5cmd, &endpoint, &prefix).await?);
        }
        let run = e2e.batchops(&format!("{tag}-{round}"), &prefix).await?;
        ours.push(run.secs);
        first.get_or_insert(run);
        if round % 2 == 0 {
            theirs.push(e2e.s5cmd(s5cmd, &endpoint, &prefix).await?);
        }
    }
    let run = first.context("no round ran")?;
    let (batchops_secs, s5cmd_secs) = (median(&mut ours), median(&mut theirs));
    let sum = |prefix: &str| -> u64 {
        run.calls
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    println!(
        "{}",
        json!({"kind": "e2e", "label": label, "n": n, "rounds": ours.len(),
               "batchops_secs": batchops_secs, "batchops_tps": n as f64 / batchops_secs,
               "batchops_secs_all": ours,
               "s5cmd_secs": s5cmd_secs, "s5cmd_tps": n as f64 / s5cmd_secs,
               "s5cmd_secs_all": theirs,
               "ratio": s5cmd_secs / batchops_secs,
               "sqs_calls": sum("AmazonSQS."), "ddb_calls": sum("DynamoDB_"), "calls": run.calls,
               "s3_control_put": run.result_files + run.report_files,
               "s3_control_get": run.result_files + 1})
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One seeded source bucket and its manifest, copied by either tool into `dst`.
struct E2e<'a> {
    sdk: &'a aws_config::SdkConfig,
    s3: &'a aws_sdk_s3::Client,
    src: &'a str,
    dst: &'a str,
    keys: &'a [String],
    moto: &'a str,
}

/// What one batchops run measured.
struct BatchopsRun {
    secs: f64,
    /// SQS and DynamoDB calls during the job, by `X-Amz-Target`.
    calls: BTreeMap<String, u64>,
    result_files: u64,
    report_files: u64,
}

impl E2e<'_> {
    async fn count_objects(&self, bucket: &str, prefix: &str) -> Result<u64> {
        let pages: Vec<_> = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send()
            .try_collect()
            .await?;
        Ok(pages.iter().map(|p| p.contents().len() as u64).sum())
    }

    /// The copy job through the dev runner's stack (API, planner, 4 workers, finalizer) in
    /// this process, from `POST /jobs` to `Complete`.
    async fn batchops(&self, stack: &str, prefix: &str) -> Result<BatchopsRun> {
        let n = self.keys.len() as u64;
        let opts =
            batchops_cli::dev::DevOptions::new(format!("bench-{stack}"), "127.0.0.1:0".parse()?);
        let dev = batchops_cli::dev::Dev::start(self.sdk, opts).await?;
        let api = format!("http://{}", dev.addr);
        let http = reqwest::Client::new();
        let (src, dst) = (self.src, self.dst);
        let body = json!({
            "Operation": {"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}"), "TargetKeyPrefix": format!("batchops-{prefix}")}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::{src}/manifest.csv")}},
            "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{dst}"), "Format": "Report_CSV_20180820",
                       "Prefix": format!("reports-{prefix}"), "ReportScope": "AllTasks"},
            "Priority": 10
        });
        recorder(self.moto, "reset-recording").await?;
        recorder(self.moto, "start-recording").await?;
        let t0 = Instant::now();
        let created: Value = http
            .post(format!("{api}/jobs"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let job_id = created["JobId"].as_str().context("JobId")?.to_string();
        let mut polls = 0u64;
        let job = loop {
            polls += 1;
            let job: Value = http
                .get(format!("{api}/jobs/{job_id}"))
                .send()
                .await?
                .json()
                .await?;
            let status = job["Job"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ["Complete", "Failed", "Cancelled"].contains(&status.as_str()) {
                break job;
            }
            if t0.elapsed() > Duration::from_secs(900) {
                bail!("job {job_id} did not end: {job}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let secs = t0.elapsed().as_secs_f64();
        recorder(self.moto, "stop-recording").await?;
        let mut calls = recorded_targets(self.moto).await?;
        // The harness's own DescribeJob polls are one GetItem each: not the pipeline's.
        if let Some(gets) = calls.get_mut("DynamoDB_20120810.GetItem") {
            *gets = gets.saturating_sub(polls);
        }
        recorder(self.moto, "reset-recording").await?;
        let succeeded = job["Job"]["ProgressSummary"]["NumberOfTasksSucceeded"]
            .as_u64()
            .unwrap_or(0);
        if succeeded != n {
            bail!("batchops copied {succeeded} of {n}: {job}");
        }
        // S3 control-plane calls, from what the pipeline left: one result file per chunk
        // (PUT by a worker, GET by the finalizer), the report's files (PUT), the manifest (GET).
        let result_files = self
            .count_objects(&dev.deps.config.bucket, &format!("results/{job_id}/"))
            .await?;
        let report_files = self
            .count_objects(dst, &format!("reports-{prefix}/job-{job_id}/"))
            .await?;
        dev.stop().await;
        Ok(BatchopsRun {
            secs,
            calls,
            result_files,
            report_files,
        })
    }

    /// The same server-side copies with `s5cmd run`, to another prefix; its process run time.
    async fn s5cmd(&self, s5cmd: &str, endpoint: &str, prefix: &str) -> Result<f64> {
        let (src, dst, n) = (self.src, self.dst, self.keys.len() as u64);
        let commands = std::env::temp_dir().join(format!("s5cmd-{dst}-{prefix}.txt"));
        let text: String = self
            .keys
            .iter()
            .map(|k| format!("cp s3://{src}/{k} s3://{dst}/s5cmd-{prefix}/{k}\n"))
            .collect();
        std::fs::write(&commands, text)?;
        let t1 = Instant::now();
        let out = tokio::process::Command::new(s5cmd)
            .args(["--endpoint-url", endpoint, "--log", "error", "run"])
            .arg(&commands)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .await?;
        let secs = t1.elapsed().as_secs_f64();
        std::fs::remove_file(&commands)?;
        if !out.status.success() {
            bail!("s5cmd failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let copied = self.count_objects(dst, &format!("s5cmd-{prefix}/")).await?;
        if copied != n {
            bail!("s5cmd copied {copied} of {n}");
        }
        Ok(secs)
    }
}

/// A copy job of `n` objects on the emulator, every call of the dev runner going through the
/// fault proxy: `conflict_rate` of DynamoDB writes refused as under contention
/// (`TransactionConflict`, `TransactionConflictException`), `duplicate_rate` of SQS sends
/// forwarded twice (so two deliveries of a chunk race). A task run again is a copy forwarded
/// beyond the `n` the job needs.
async fn chaos(n: usize, moto: &str, conflict_rate: f64, duplicate_rate: f64) -> Result<()> {
    use batchops_tests::faults::{FaultProxy, Faults};
    let direct = sdk().await;
    let s3 = s3_client(&direct);
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (src, dst) = (format!("chaos-src-{tag}"), format!("chaos-dst-{tag}"));
    let keys = seed_copy_source(&s3, &src, &dst, n, "chaos", |k| k.as_bytes().to_vec()).await?;

    let proxy = FaultProxy::start(moto).await;
    let through = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .load()
        .await;
    let mut opts =
        batchops_cli::dev::DevOptions::new(format!("chaos-{tag}"), "127.0.0.1:0".parse()?);
    // Chunks of 100: twenty chunk commits (and their claims) for 2,000 tasks.
    opts.tune = |c| c.chunk_size = 100;
    let dev = batchops_cli::dev::Dev::start(&through, opts).await?;
    proxy.set(
        "dynamodb",
        Faults {
            conflict_rate,
            ..Default::default()
        },
    );
    proxy.set(
        "sqs",
        Faults {
            duplicate_rate,
            ..Default::default()
        },
    );
    let api = format!("http://{}", dev.addr);
    let http = reqwest::Client::new();
    let body = json!({
        "Operation": {"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{src}/manifest.csv")}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{dst}"), "Format": "Report_CSV_20180820",
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 10
    });
    let t0 = Instant::now();
    let created: Value = http
        .post(format!("{api}/jobs"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let job_id = created["JobId"].as_str().context("JobId")?.to_string();
    let job = loop {
        let job: Value = http
            .get(format!("{api}/jobs/{job_id}"))
            .send()
            .await?
            .json()
            .await?;
        if ["Complete", "Failed", "Cancelled"]
            .contains(&job["Job"]["Status"].as_str().unwrap_or(""))
        {
            break job;
        }
        if t0.elapsed() > Duration::from_secs(900) {
            bail!("job {job_id} did not end: {job}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let secs = t0.elapsed().as_secs_f64();
    dev.stop().await;
    let progress = &job["Job"]["ProgressSummary"];
    let succeeded = progress["NumberOfTasksSucceeded"].as_u64().unwrap_or(0);
    let failed = progress["NumberOfTasksFailed"].as_u64().unwrap_or(0);
    let copied = E2e {
        sdk: &direct,
        s3: &s3,
        src: &src,
        dst: &dst,
        keys: &keys,
        moto,
    }
    .count_objects(&dst, "chaos/")
    .await?;
    let copies = proxy.copies();
    let counts: BTreeMap<String, [u64; 4]> = proxy.counts().into_iter().collect();
    println!(
        "{}",
        json!({"kind": "chaos", "n": n, "status": job["Job"]["Status"], "succeeded": succeeded,
               "failed": failed, "objects_copied": copied, "copies_forwarded": copies,
               "tasks_run_again": copies.saturating_sub(n as u64),
               "conflict_rate": conflict_rate, "duplicate_rate": duplicate_rate,
               "conflicts_injected": proxy.errors("dynamodb"),
               "dynamodb_requests": counts.get("dynamodb").map_or(0, |c| c[0]),
               "sqs_sends_duplicated": counts.get("sqs").map_or(0, |c| c[3]),
               "secs": secs})
    );
    Ok(())
}

/// A stand-in of the Lambda Runtime API: notes when each process first asks for an event,
/// then never answers (the process is killed).
async fn cold_start(runs: usize, bins: &[String]) -> Result<()> {
    use axum::routing::get;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let app = axum::Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        get(move || {
            let _ = tx.send(Instant::now());
            std::future::pending::<&'static str>()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    for bin in bins {
        let name = std::path::Path::new(bin)
            .file_name()
            .map_or(bin.clone(), |n| n.to_string_lossy().into_owned());
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let mut child = tokio::process::Command::new(bin)
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", &name)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("BATCHOPS_TABLE", "t")
                .env("BATCHOPS_BUCKET", "b")
                .env("BATCHOPS_PLAN_QUEUE_URL", "http://127.0.0.1:1/q/plan")
                .env("BATCHOPS_WORK_QUEUE_URL", "http://127.0.0.1:1/q/work")
                .env(
                    "BATCHOPS_FINALIZE_QUEUE_URL",
                    "http://127.0.0.1:1/q/finalize",
                )
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("start {bin}"))?;
            let ready = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .with_context(|| format!("{bin} never asked for an event"))?
                .context("runtime API stopped")?;
            times.push(ready.duration_since(started).as_secs_f64() * 1000.0);
            child.kill().await?;
        }
        times.sort_by(f64::total_cmp);
        let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
        println!(
            "{}",
            json!({"kind": "cold_start", "function": name, "runs": runs,
                   "median_ms": times[times.len() / 2], "min_ms": times[0],
                   "max_ms": times[times.len() - 1], "binary_bytes": size})
        );
    }
    Ok(())
}

/// Public prices used for the cost figures (us-east-1, on-demand, standard queue).
const SQS_PER_M: f64 = 0.40;
const DDB_WRITE_PER_M: f64 = 1.25;
const DDB_READ_PER_M: f64 = 0.25;
const S3_PUT_PER_M: f64 = 5.0;
const S3_GET_PER_M: f64 = 0.4;

fn report(input: &str, out: &str) -> Result<()> {
    let text = std::fs::read_to_string(input)?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &'static str| lines.iter().filter(move |v| v["kind"] == kind);
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut md = String::from("# batchops benchmark results\n\n");
    md.push_str(&format!(
        "Measured by `make bench` on this machine ({} cores), {}.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        batchops_core::time::now_iso()
    ));
    md.push_str("## Planner\n\n| measure | value | target |\n|---|---|---|\n");
    for p in of("parse") {
        md.push_str(&format!(
            "| parse + chunk + serialise, in-memory manifest of {} rows, one thread | {:.2} M rows/CPU-s ({:.2} M rows/s wall) | ≥ 1 M rows/s/core |\n",
            p["rows"],
            f(p, "rows_per_cpu_sec") / 1e6,
            f(p, "rows_per_sec_wall") / 1e6
        ));
    }
    for p in of("plan_rss") {
        md.push_str(&format!(
            "| peak RSS, real planner run: {} rows {} ({} chunks, {:.1} s, ≤ {} rows buffered) | {:.1} MiB | ≤ 64 MiB |\n",
            p["rows"],
            p["mode"].as_str().unwrap_or(""),
            p["chunks"],
            f(p, "secs"),
            p["max_buffered_rows"],
            f(p, "max_rss_kib") / 1024.0
        ));
    }
    md.push_str("\n## Finalizer\n\n| measure | value | target |\n|---|---|---|\n");
    for p in of("finalize_rss") {
        md.push_str(&format!(
            "| report of a {}-task job ({} chunk files and the report on s3s-fs, DynamoDB on moto), {} finalizer invocation(s) of a {} s budget | {:.0} report rows/s ({:.1} s) | — |\n",
            p["rows"],
            p["chunks"],
            p["invocations"],
            p["budget_secs"],
            f(p, "rows_per_sec"),
            f(p, "secs"),
        ));
        md.push_str(&format!(
            "| peak RSS of that finalizer | {:.1} MiB | ≤ 64 MiB |\n",
            f(p, "max_rss_kib") / 1024.0
        ));
    }
    md.push_str(
        "\n## Chaos: a copy job under injected DynamoDB conflicts and duplicate deliveries\n\n",
    );
    md.push_str("Every call of the dev runner goes through the tests' fault proxy (moto behind it, DynamoDB isolated by `infra/emulator.py`): it refuses a share of DynamoDB writes as DynamoDB does under contention (`UpdateItem` with `TransactionConflictException`, `TransactWriteItems` cancelled with `TransactionConflict`) and forwards a share of SQS sends twice, so two deliveries of a chunk race. A task run again is an S3 copy the proxy forwarded beyond the job's N.\n\n");
    md.push_str("| N | conflict rate | conflicts injected (of DynamoDB requests) | chunk sends duplicated | status, succeeded / failed | tasks run again | target |\n|---|---|---|---|---|---|---|\n");
    for c in of("chaos") {
        md.push_str(&format!(
            "| {} | {} | {} (of {}) | {} | {} {} / {} ({:.1} s) | {} | 0 |\n",
            c["n"],
            c["conflict_rate"],
            c["conflicts_injected"],
            c["dynamodb_requests"],
            c["sqs_sends_duplicated"],
            c["status"].as_str().unwrap_or(""),
            c["succeeded"],
            c["failed"],
            f(c, "secs"),
            c["tasks_run_again"],
        ));
    }
    md.push_str("\n## End to end: N small-object copies, batchops vs `s5cmd run`, same server, same run\n\n");
    md.push_str("| S3 data plane | N | batchops tasks/s | s5cmd copies/s | batchops / s5cmd |\n|---|---|---|---|---|\n");
    for e in of("e2e") {
        md.push_str(&format!(
            "| {} | {} | {:.0} ({:.1} s) | {:.0} ({:.1} s) | {:.2} |\n",
            e["label"].as_str().unwrap_or(""),
            e["n"],
            f(e, "batchops_tps"),
            f(e, "batchops_secs"),
            f(e, "s5cmd_tps"),
            f(e, "s5cmd_secs"),
            f(e, "ratio")
        ));
    }
    let rounds = of("e2e")
        .map(|e| e["rounds"].as_u64().unwrap_or(1))
        .max()
        .unwrap_or(1);
    md.push_str(&format!("\nEach figure is the median of {rounds} rounds, the two tools taking turns to go first (every round's time is in `bench/results.jsonl`). "));
    md.push_str("batchops time runs from `POST /jobs` to the job's `Complete` (planning, every copy, the completion report); s5cmd time is its process run time (one `CopyObject` per copy, its default 256 workers; batchops: 4 worker pollers, 32 tasks in flight per chunk, chunks of 1,000). SQS and DynamoDB are on moto in every row.\n");
    md.push_str("\n## Control-plane calls per task and their cost\n\n");
    md.push_str(&format!(
        "Prices used (public, us-east-1, on-demand): SQS ${SQS_PER_M}/M requests, DynamoDB ${DDB_WRITE_PER_M}/M write request units and ${DDB_READ_PER_M}/M read request units, S3 PUT ${S3_PUT_PER_M}/M and GET ${S3_GET_PER_M}/M. A `TransactWriteItems` of two items is counted as 4 write units (transactions cost double), a strongly consistent read as 1 read unit (items < 4 KiB), each SQS call as one request except that every chunk message sent counts as one request of its own (SQS bills each 64 KiB of payload; a chunk of 1,000 short keys is about 60 KiB). S3 control-plane calls are derived from the objects the job left (one result file per chunk, PUT by a worker and GET by the finalizer; the report's files; the manifest GET); the copies themselves are the data plane and are not counted. SQS long-polling by idle pollers is included (it is counted during the job).\n\n"
    ));
    md.push_str("| run | N | SQS calls | DynamoDB calls | S3 PUT + GET (control) | calls/task | control-plane $ per M tasks |\n|---|---|---|---|---|---|---|\n");
    // (label, N, the run's control-plane cost in millionths of a dollar): for the marginal
    // cost per task below.
    let mut totals: Vec<(String, f64, f64)> = Vec::new();
    for e in of("e2e") {
        let n = f(e, "n");
        let calls = &e["calls"];
        let c = |op: &str| calls[op].as_f64().unwrap_or(0.0);
        let ddb_writes = 4.0 * c("DynamoDB_20120810.TransactWriteItems")
            + c("DynamoDB_20120810.UpdateItem")
            + c("DynamoDB_20120810.PutItem")
            + c("DynamoDB_20120810.DeleteItem");
        let ddb_reads = c("DynamoDB_20120810.GetItem") + c("DynamoDB_20120810.Query");
        let sqs = f(e, "sqs_calls");
        // SQS bills each 64 KiB of payload as a request: a chunk message (≤ 250 KiB, ~60 KiB
        // for 1,000 short keys) is a request of its own even inside a SendMessageBatch.
        let chunks = f(e, "s3_control_get") - 1.0;
        let sqs_billed = sqs - c("AmazonSQS.SendMessageBatch") + chunks;
        let puts = f(e, "s3_control_put");
        let gets = f(e, "s3_control_get");
        let dollars = (sqs_billed * SQS_PER_M
            + ddb_writes * DDB_WRITE_PER_M
            + ddb_reads * DDB_READ_PER_M
            + puts * S3_PUT_PER_M
            + gets * S3_GET_PER_M)
            / n;
        totals.push((
            e["label"].as_str().unwrap_or("").to_string(),
            n,
            dollars * n,
        ));
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} + {} | {:.4} | ${:.3} |\n",
            e["label"].as_str().unwrap_or(""),
            e["n"],
            sqs,
            f(e, "ddb_calls"),
            puts,
            gets,
            (sqs + f(e, "ddb_calls") + puts + gets) / n,
            dollars
        ));
    }
    // A job's fixed calls (create, plan, finalize, report, idle polls) weigh on a small N; the
    // difference between two runs on the same data plane is the cost that grows with tasks.
    for (i, (label, n_a, usd_a)) in totals.iter().enumerate() {
        if let Some((_, n_b, usd_b)) = totals[i + 1..]
            .iter()
            .find(|(l, n, _)| l == label && n > n_a)
        {
            md.push_str(&format!(
                "\nMarginal control-plane cost on {label}, from N = {n_a} to N = {n_b}: ${:.3} per M tasks (the fixed per-job calls cancel out).\n",
                (usd_b - usd_a) / (n_b - n_a)
            ));
        }
    }
    if let Some(e) = of("e2e").next_back() {
        md.push_str(&format!(
            "\nCalls by operation in the last run: `{}`\n",
            e["calls"]
        ));
    }
    md.push_str("\n## Cold starts: process start to first request for an event (Lambda Runtime API stand-in)\n\n| function | median ms | min–max ms | binary |\n|---|---|---|---|\n");
    for c in of("cold_start") {
        md.push_str(&format!(
            "| {} | {:.1} | {:.1}–{:.1} | {:.1} MiB |\n",
            c["function"].as_str().unwrap_or(""),
            f(c, "median_ms"),
            f(c, "min_ms"),
            f(c, "max_ms"),
            f(c, "binary_bytes") / 1048576.0
        ));
    }
    std::fs::write(out, &md)?;
    print!("{md}");
    Ok(())
}
