//! `batchops`: the local dev runner and a client of the batchops API.

use anyhow::Context;
use batchops_cli::client::{ApiClient, download_report};
use batchops_cli::dev::{Dev, DevOptions};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "batchops", version, about = "S3 Batch Operations, self-hosted")]
struct Cli {
    /// Base URL of the batchops API.
    #[arg(
        long,
        global = true,
        env = "BATCHOPS_API_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    api_url: String,
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
    },
    /// Create a job from a CreateJob JSON file.
    Create { file: std::path::PathBuf },
    /// Describe a job.
    Describe { job_id: String },
    /// Wait for a job to end, showing its progress; exits non-zero unless it is Complete.
    Watch { job_id: String },
    /// Download a job's completion report and summarise it.
    Report { job_id: String },
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    batchops_core::telemetry::init();
    let cli = Cli::parse();
    let api = ApiClient::new(&cli.api_url);
    match cli.command {
        Command::Dev {
            api_addr,
            stack,
            workers,
        } => {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            let mut opts = DevOptions::new(stack, api_addr);
            opts.workers = workers;
            let dev = Dev::start(&sdk, opts).await?;
            println!("batchops dev: API on http://{}", dev.addr);
            dev.run_until_signal().await;
        }
        Command::Create { file } => {
            let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            println!("{}", api.create(&body).await?);
        }
        Command::Describe { job_id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&api.describe(&job_id).await?)?
            );
        }
        Command::Watch { job_id } => {
            let job = api
                .wait(&job_id, Duration::from_secs(1), |j| {
                    let p = &j["ProgressSummary"];
                    eprintln!(
                        "{} {}/{} succeeded, {} failed",
                        j["Status"].as_str().unwrap_or("?"),
                        p["NumberOfTasksSucceeded"],
                        p["TotalNumberOfTasks"],
                        p["NumberOfTasksFailed"]
                    );
                })
                .await?;
            if job["Status"] != "Complete" {
                std::process::exit(1);
            }
        }
        Command::Report { job_id } => {
            let job = api.describe(&job_id).await?;
            let report = &job["Report"];
            let bucket = report["Bucket"]
                .as_str()
                .and_then(batchops_core::job::spec::parse_bucket_arn)
                .context("the job's report has no bucket")?;
            let dir = batchops_core::report::report_dir(report["Prefix"].as_str(), &job_id);
            let s3 = s3_client(cli.path_style).await;
            let r = download_report(&s3, &bucket, &dir).await?;
            let (by_status, by_code) = r.summary();
            println!(
                "{} rows; by status {by_status:?}; errors by code {by_code:?}",
                r.rows.len()
            );
            for row in r.rows.iter().filter(|r| r.status == "failed").take(10) {
                println!(
                    "  failed: {} {} {} {}",
                    row.key, row.http_status, row.error_code, row.message
                );
            }
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
