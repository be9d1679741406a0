//! The `batchops` binary against a running dev stack (moto underneath).

use batchops_tests::{TestStack, body_of, emulator};
use serde_json::Value;
use std::process::Output;

/// Runs the binary with the emulator's endpoint and the stack's API.
async fn batchops(stack: &TestStack, args: &[&str]) -> Output {
    let endpoint = emulator().await.to_string();
    let base = stack.base_url.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_batchops"))
            .args(&args)
            .env("BATCHOPS_API_URL", base)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("BATCHOPS_S3_PATH_STYLE", "true")
            .env("RUST_LOG", "error")
            .output()
            .expect("run batchops")
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_drives_a_job_from_create_to_report() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..15).map(|i| format!("cli/{i} k")).collect();
    stack.put_objects(&source, &keys).await;
    let mut rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    rows.push((source.clone(), "cli/missing".into()));
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let manifest = format!("s3://{source}/m.csv");

    // create with flags, awaiting confirmation
    let out = batchops(
        &stack,
        &[
            "--json",
            "create",
            "--operation",
            "copy",
            "--manifest",
            &manifest,
            "--manifest-etag",
            &etag,
            "--target-bucket",
            &target,
            "--target-prefix",
            "via-cli",
            "--report-bucket",
            &target,
            "--confirmation-required",
            "--description",
            "from the cli",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let job_id = json_of(&out)["JobId"].as_str().unwrap().to_string();

    // describe until Suspended, human output names the status
    let mut suspended = false;
    for _ in 0..100 {
        let out = batchops(&stack, &["describe", &job_id]).await;
        assert!(out.status.success(), "{out:?}");
        if stdout(&out).contains("Suspended") {
            assert!(stdout(&out).contains("of 16 tasks"), "{}", stdout(&out));
            assert!(
                stdout(&out).contains("cost: Estimate over 16 tasks: batchops $"),
                "describe shows the cost estimate: {}",
                stdout(&out)
            );
            suspended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(suspended);

    // list shows it; pause is refused with a clear message and a non-zero exit
    let out = batchops(&stack, &["list", "--status", "Suspended"]).await;
    assert!(stdout(&out).contains(&job_id), "{}", stdout(&out));
    let out = batchops(&stack, &["pause", &job_id]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "{out:?}"
    );

    let out = batchops(&stack, &["priority", &job_id, "77"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = batchops(&stack, &["confirm", &job_id, "--reason", "looks right"]).await;
    assert!(stdout(&out).contains("Ready"), "{out:?}");

    // watch exits 0 when the job completes
    let out = batchops(&stack, &["--json", "watch", &job_id, "--every", "0.2"]).await;
    assert!(out.status.success(), "{out:?}");
    let job = json_of(&out);
    assert_eq!(job["Status"], "Complete");
    assert_eq!(job["Priority"], 77);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 15);
    assert_eq!(
        stack.get(&target, "via-cli/cli/3 k").await,
        Some(body_of("cli/3 k"))
    );

    // report: counts by status and error code, first failures
    let out = batchops(&stack, &["--json", "report", &job_id]).await;
    assert!(out.status.success(), "{out:?}");
    let report = json_of(&out);
    assert_eq!(report["Rows"], 16);
    assert_eq!(report["ByStatus"]["succeeded"], 15);
    assert_eq!(report["ByErrorCode"]["NoSuchKey"], 1);
    assert_eq!(report["FirstFailures"][0]["Key"], "cli/missing");
    let out = batchops(&stack, &["report", &job_id]).await;
    assert!(
        stdout(&out).contains("error NoSuchKey: 1"),
        "{}",
        stdout(&out)
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_exits_non_zero_for_a_cancelled_job_and_create_reads_files() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let etag = stack
        .put_manifest(&source, "m.csv", &[(source.clone(), "x".into())])
        .await;
    let body =
        batchops_tests::copy_job(&source, "m.csv", Some(&etag), &source, &source, "AllTasks");
    let mut with_confirm = body.clone();
    with_confirm["ConfirmationRequired"] = true.into();
    let file = std::env::temp_dir().join(format!("{}.json", batchops_tests::unique("job")));
    std::fs::write(&file, with_confirm.to_string()).unwrap();
    let out = batchops(&stack, &["create", "--file", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{out:?}");
    let job_id = stdout(&out).trim().rsplit(' ').next().unwrap().to_string();
    for _ in 0..100 {
        if stack.api.describe(&job_id).await.unwrap()["Status"] == "Suspended" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = batchops(&stack, &["cancel", &job_id]).await;
    assert!(stdout(&out).contains("Cancelled"), "{out:?}");
    let out = batchops(&stack, &["watch", &job_id]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = batchops(
        &stack,
        &[
            "create",
            "--operation",
            "teleport",
            "--manifest",
            "s3://a/b",
        ],
    )
    .await;
    assert!(!out.status.success());
    let out = batchops(&stack, &["describe", "no-such-job"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
    std::fs::remove_file(file).ok();
    stack.dev.stop().await;
}
