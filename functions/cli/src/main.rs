//! `batchops`: the local dev runner and a client of the batchops API.

use anyhow::{Context, bail};
use batchops_cli::client::{ApiClient, Signer, download_report};
use batchops_cli::dev::{Dev, DevOptions};
use batchops_cli::request::{CreateFlags, create_body};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "batchops", version, about = "S3 Batch Operations, self-hosted")]
struct Cli {
    /// Base URL of the batchops API (`batchops dev` by default, or the deployed API's URL).
    #[arg(
        long,
        global = true,
        env = "BATCHOPS_API_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    api_url: String,
    /// Sign requests with SigV4 (default credential chain): `auto` signs https URLs.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    sign: Sign,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Path-style S3 addressing (needed by local emulators).
    #[arg(
        long,
        global = true,
        env = "BATCHOPS_S3_PATH_STYLE",
        default_value_t = false
    )]
    path_style: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Sign {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack locally against an emulator (AWS_ENDPOINT_URL).
    Dev {
        #[arg(long, env = "BATCHOPS_API_ADDR", default_value = "127.0.0.1:9000")]
        api_addr: SocketAddr,
        #[arg(long, env = "BATCHOPS_STACK", default_value = "batchops-dev")]
        stack: String,
        /// Concurrent worker pollers.
        #[arg(long, env = "BATCHOPS_DEV_WORKERS", default_value_t = 4)]
        workers: usize,
        /// Visibility timeout of received messages, seconds (as the queue's in AWS).
        #[arg(long, env = "BATCHOPS_DEV_VISIBILITY_TIMEOUT", default_value_t = 60)]
        visibility_timeout: i32,
        /// Seconds between the finalizer's sweeps (0: none).
        #[arg(long, env = "BATCHOPS_DEV_SWEEP_SECS", default_value_t = 60)]
        sweep_secs: u64,
    },
    /// Let stock AWS clients (aws s3control, boto3, the SDKs) reach a deployed stack: listen on
    /// a loopback port and forward each request to --api-url signed for execute-api with your
    /// AWS credentials.
    Proxy {
        #[arg(long, env = "BATCHOPS_PROXY_ADDR", default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
    },
    /// Open the web console of a deployed stack: the proxy above on its own port, serving the
    /// console at /console from --api-url and signing its calls with your AWS credentials.
    Console {
        #[arg(long, env = "BATCHOPS_CONSOLE_ADDR", default_value = "127.0.0.1:9002")]
        listen: SocketAddr,
    },
    /// Create a job from a CreateJob JSON file, or from flags.
    Create(Box<CreateFlags>),
    /// Describe a job.
    Describe { job_id: String },
    /// List jobs, newest first.
    List {
        /// Only jobs in these statuses (repeatable).
        #[arg(long = "status")]
        statuses: Vec<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 100)]
        max: u32,
    },
    /// Confirm a job that awaits confirmation (Suspended → Ready).
    Confirm {
        job_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a job.
    Cancel {
        job_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Pause an active job.
    Pause {
        job_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused job.
    Resume {
        job_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change a job's priority.
    Priority { job_id: String, priority: i64 },
    /// Follow a job's progress until it ends; exits 0 only if it is Complete.
    Watch {
        job_id: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        every: f64,
    },
    /// Download a job's completion report and summarise it.
    Report {
        job_id: String,
        /// Failures to show.
        #[arg(long, default_value_t = 10)]
        first: usize,
    },
    /// Seed sample objects, run a copy job through the API and print its report.
    Demo {
        /// Numbered objects to add to the tricky-key samples.
        #[arg(long, default_value_t = 200)]
        objects: usize,
    },
}

async fn s3_client(path_style: bool) -> aws_sdk_s3::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build(),
    )
}

fn print(json_out: bool, value: &Value, human: impl FnOnce() -> String) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", human());
    }
}

fn progress_line(job: &Value) -> String {
    let p = &job["ProgressSummary"];
    format!(
        "{} {}: {} of {} tasks succeeded, {} failed",
        job["JobId"].as_str().unwrap_or("?"),
        job["Status"].as_str().unwrap_or("?"),
        p["NumberOfTasksSucceeded"],
        p["TotalNumberOfTasks"],
        p["NumberOfTasksFailed"]
    )
}

/// DescribeJob's `CostEstimate` in one line: what batchops costs, what AWS would charge.
fn cost_line(cost: &Value) -> Option<String> {
    let usd = |v: &Value| v.as_f64().map(|x| format!("${x:.6}"));
    Some(format!(
        "{} over {} tasks: batchops {} (S3 requests {}, control plane {}), Amazon S3 Batch \
         Operations {} ({} prices of {})",
        cost["Basis"].as_str()?,
        cost["Tasks"],
        usd(&cost["BatchopsUSD"])?,
        usd(&cost["S3Requests"]["USD"])?,
        usd(&cost["ControlPlane"]["USD"])?,
        usd(&cost["AmazonS3BatchOperationsUSD"])?,
        cost["Region"].as_str()?,
        cost["PriceDate"].as_str()?,
    ))
}

/// `BATCHOPS_DEV_HOSTS`: host names besides loopback and `*.localhost` that name this
/// machine (comma-separated), for the local runners' DNS-rebinding guard.
fn extra_hosts() -> Vec<String> {
    std::env::var("BATCHOPS_DEV_HOSTS")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    batchops_core::telemetry::init();
    let cli = Cli::parse();
    let mut api = ApiClient::new(&cli.api_url);
    let sign = match cli.sign {
        Sign::Always => true,
        Sign::Never => false,
        Sign::Auto => cli.api_url.starts_with("https://"),
    };
    if sign
        && !matches!(
            cli.command,
            Command::Dev { .. } | Command::Proxy { .. } | Command::Console { .. }
        )
    {
        api = api.with_signer(Signer::from_env().await?);
    }
    let j = cli.json;
    match cli.command {
        Command::Dev {
            api_addr,
            stack,
            workers,
            visibility_timeout,
            sweep_secs,
        } => {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            let mut opts = DevOptions::new(stack, api_addr);
            opts.workers = workers;
            opts.visibility_timeout = visibility_timeout;
            opts.sweep_interval = Duration::from_secs(sweep_secs);
            opts.extra_hosts = extra_hosts();
            let dev = Dev::start(&sdk, opts).await?;
            println!("batchops dev: API on http://{}", dev.addr);
            println!("batchops dev: console on http://{}/console", dev.addr);
            dev.run_until_signal().await;
        }
        Command::Proxy { listen } => {
            let upstream =
                batchops_cli::proxy::Upstream::new(&cli.api_url, Signer::from_env().await?)?;
            batchops_cli::proxy::serve(listen, upstream, extra_hosts()).await?;
        }
        Command::Console { listen } => {
            let upstream =
                batchops_cli::proxy::Upstream::new(&cli.api_url, Signer::from_env().await?)?;
            let listener = batchops_cli::proxy::bind(listen).await?;
            println!(
                "batchops console: http://{}/console (calls to {} signed for execute-api in {})",
                listener.local_addr()?,
                upstream.base,
                upstream.signer.region
            );
            batchops_cli::proxy::serve_on(listener, upstream, extra_hosts()).await?;
        }
        Command::Create(flags) => {
            let body = create_body(&flags)?;
            let id = api.create(&body).await?;
            print(j, &json!({ "JobId": id }), || format!("Created job {id}"));
        }
        Command::Describe { job_id } => {
            let job = api.describe(&job_id).await?;
            print(j, &job, || {
                let mut out = progress_line(&job);
                for k in [
                    "Description",
                    "Priority",
                    "CreationTime",
                    "TerminationDate",
                    "StatusUpdateReason",
                ] {
                    if !job[k].is_null() {
                        out.push_str(&format!(
                            "\n  {k}: {}",
                            job[k]
                                .as_str()
                                .map(String::from)
                                .unwrap_or(job[k].to_string())
                        ));
                    }
                }
                for r in job["FailureReasons"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n  failure: {} — {}",
                        r["FailureCode"].as_str().unwrap_or(""),
                        r["FailureReason"].as_str().unwrap_or("")
                    ));
                }
                if let Some(line) = cost_line(&job["CostEstimate"]) {
                    out.push_str(&format!("\n  cost: {line}"));
                }
                out
            });
        }
        Command::List { statuses, max } => {
            let mut jobs = Vec::new();
            let mut token: Option<String> = None;
            while jobs.len() < max as usize {
                let want = (max as usize - jobs.len()).min(1000) as u32;
                let page = api.list(&statuses, Some(want), token.as_deref()).await?;
                jobs.extend(page["Jobs"].as_array().cloned().unwrap_or_default());
                match page["NextToken"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
            let value = json!({ "Jobs": jobs });
            print(j, &value, || {
                let mut out = format!(
                    "{:<36}  {:<10}  {:>8}  {:<18}  {:>9}  {:>9}  {:>9}",
                    "JobId", "Status", "Priority", "Operation", "Total", "Succeeded", "Failed"
                );
                for job in &jobs {
                    let p = &job["ProgressSummary"];
                    out.push_str(&format!(
                        "\n{:<36}  {:<10}  {:>8}  {:<18}  {:>9}  {:>9}  {:>9}",
                        job["JobId"].as_str().unwrap_or(""),
                        job["Status"].as_str().unwrap_or(""),
                        job["Priority"],
                        job["Operation"].as_str().unwrap_or(""),
                        p["TotalNumberOfTasks"],
                        p["NumberOfTasksSucceeded"],
                        p["NumberOfTasksFailed"]
                    ));
                }
                out
            });
        }
        Command::Confirm { job_id, reason } => status(&api, j, &job_id, "Ready", reason).await?,
        Command::Cancel { job_id, reason } => status(&api, j, &job_id, "Cancelled", reason).await?,
        Command::Pause { job_id, reason } => status(&api, j, &job_id, "Paused", reason).await?,
        Command::Resume { job_id, reason } => status(&api, j, &job_id, "Active", reason).await?,
        Command::Priority { job_id, priority } => {
            let answer = api.set_priority(&job_id, priority).await?;
            print(j, &answer, || format!("{job_id}: priority {priority}"));
        }
        Command::Watch { job_id, every } => {
            let job = api
                .watch(&job_id, Duration::from_secs_f64(every.max(0.1)), !j)
                .await?;
            print(j, &job, || progress_line(&job));
            if job["Status"] != "Complete" {
                std::process::exit(1);
            }
        }
        Command::Report { job_id, first } => {
            let job = api.describe(&job_id).await?;
            let report = &job["Report"];
            if report["Enabled"] != true {
                bail!("job {job_id} has no completion report (Report.Enabled is false)");
            }
            let bucket = report["Bucket"]
                .as_str()
                .and_then(batchops_core::job::spec::parse_bucket_arn)
                .context("the job's report names no bucket; it is in the stack bucket")?;
            let dir = batchops_core::report::report_dir(report["Prefix"].as_str(), &job_id);
            let s3 = s3_client(cli.path_style).await;
            let r = download_report(&s3, &bucket, &dir)
                .await
                .with_context(|| format!("reading the report at s3://{bucket}/{dir}/"))?;
            let (by_status, by_code) = r.summary();
            let failures: Vec<Value> = r
                .rows
                .iter()
                .filter(|row| row.status == "failed")
                .take(first)
                .map(|row| json!({"Bucket": row.bucket, "Key": row.key, "VersionId": row.version_id, "HTTPStatusCode": row.http_status, "ErrorCode": row.error_code, "ResultMessage": row.message}))
                .collect();
            let value = json!({
                "Location": format!("s3://{bucket}/{dir}/manifest.json"),
                "Rows": r.rows.len(),
                "ByStatus": by_status,
                "ByErrorCode": by_code,
                "FirstFailures": failures,
            });
            print(j, &value, || {
                let mut out = format!(
                    "Report s3://{bucket}/{dir}/manifest.json: {} rows",
                    r.rows.len()
                );
                for (s, n) in &by_status {
                    out.push_str(&format!("\n  {s}: {n}"));
                }
                for (c, n) in &by_code {
                    out.push_str(&format!("\n  error {c}: {n}"));
                }
                for f in &failures {
                    out.push_str(&format!(
                        "\n  failed {}/{} {} {}: {}",
                        f["Bucket"].as_str().unwrap_or(""),
                        f["Key"].as_str().unwrap_or(""),
                        f["HTTPStatusCode"].as_str().unwrap_or(""),
                        f["ErrorCode"].as_str().unwrap_or(""),
                        f["ResultMessage"].as_str().unwrap_or("")
                    ));
                }
                out
            });
        }
        Command::Demo { objects } => {
            let s3 = s3_client(cli.path_style).await;
            if !batchops_cli::demo::run(&api, &s3, objects).await? {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

async fn status(
    api: &ApiClient,
    json_out: bool,
    job_id: &str,
    status: &str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let answer = api.set_status(job_id, status, reason.as_deref()).await?;
    print(json_out, &answer, || {
        format!("{job_id}: {}", answer["Status"].as_str().unwrap_or("?"))
    });
    Ok(())
}
