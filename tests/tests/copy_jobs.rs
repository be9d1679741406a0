//! End-to-end copy jobs through the HTTP API against the emulator.

use batchops_tests::{TestStack, body_of, copy_job};
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_object_copy_job_completes_and_reports_every_row_once() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..1000)
        .map(|i| match i % 5 {
            0 => format!("plain/{i}.txt"),
            1 => format!("with space/{i} file.txt"),
            2 => format!("unicode/caf\u{e9}-{i}-\u{2603}.txt"),
            3 => format!("symbols/{i}+%,\"q\".txt"),
            _ => format!("deep/a/b/c/{i}"),
        })
        .collect();
    stack.put_objects(&source, &keys).await;
    let rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&source, "manifest.csv", &rows).await;

    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "manifest.csv",
            Some(&etag),
            &target,
            &target,
            "AllTasks",
        ))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(300)).await;

    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(p["TotalNumberOfTasks"], 1000);
    assert_eq!(p["NumberOfTasksSucceeded"], 1000);
    assert_eq!(p["NumberOfTasksFailed"], 0);
    assert!(job["TerminationDate"].is_string());

    for key in &keys {
        let copied = stack.get(&target, &format!("copy/{key}")).await;
        assert_eq!(
            copied.as_deref(),
            Some(&body_of(key)[..]),
            "target of {key}"
        );
    }

    let report = stack.report(&target, "reports", &job_id).await;
    assert_eq!(report.manifest.format, "Report_CSV_20180820");
    assert!(
        report
            .manifest
            .results
            .iter()
            .all(|r| r.task_execution_status == "succeeded")
    );
    assert_eq!(report.rows.len(), 1000);
    let reported: HashSet<String> = report
        .rows
        .iter()
        .map(|r| batchops_core::manifest::csv::decode_key(&r.key).unwrap())
        .collect();
    assert_eq!(
        reported,
        keys.iter().cloned().collect::<HashSet<_>>(),
        "each manifest row exactly once"
    );
    assert!(
        report.rows.iter().all(|r| r.status == "succeeded"
            && r.http_status == "200"
            && r.message == "Successful")
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_objects_are_failed_tasks_with_no_such_key() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..100).map(|i| format!("obj-{i:03}")).collect();
    let missing: HashSet<String> = keys.iter().filter(|k| k.ends_with('7')).cloned().collect();
    assert_eq!(missing.len(), 10);
    let present: Vec<String> = keys
        .iter()
        .filter(|k| !missing.contains(*k))
        .cloned()
        .collect();
    stack.put_objects(&source, &present).await;
    let rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;

    for scope in ["AllTasks", "FailedTasksOnly"] {
        let job_id = stack
            .api
            .create(&copy_job(
                &source,
                "m.csv",
                Some(&etag),
                &target,
                &target,
                scope,
            ))
            .await
            .unwrap();
        let job = stack.wait(&job_id, Duration::from_secs(120)).await;
        assert_eq!(job["Status"], "Complete", "{job}");
        assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 90);
        assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 10);
        // DescribeJob says what the report holds (the console shows it), whatever its scope,
        // and that nothing more may be asked of an ended job.
        let summary = &job["ReportSummary"];
        assert_eq!(
            (summary["Succeeded"].as_u64(), summary["Failed"].as_u64()),
            (Some(90), Some(10)),
            "{job}"
        );
        assert_eq!(summary["ByErrorCode"], serde_json::json!({"NoSuchKey": 10}));
        let first: HashSet<String> = summary["FirstFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(first, missing);
        assert_eq!(summary["FirstFailures"][0]["HTTPStatusCode"], 404);
        assert_eq!(
            summary["ManifestArn"],
            format!("arn:aws:s3:::{target}/reports/job-{job_id}/manifest.json")
        );
        assert_eq!(
            job["AllowedUpdates"]["RequestedJobStatus"],
            serde_json::json!([])
        );

        let report = stack.report(&target, "reports", &job_id).await;
        let failed: Vec<_> = report
            .rows
            .iter()
            .filter(|r| r.status == "failed")
            .collect();
        assert_eq!(failed.len(), 10);
        assert_eq!(
            failed.iter().map(|r| r.key.clone()).collect::<HashSet<_>>(),
            missing
        );
        for r in &failed {
            assert_eq!(
                (r.http_status.as_str(), r.error_code.as_str()),
                ("404", "NoSuchKey"),
                "{r:?}"
            );
            assert!(!r.message.is_empty());
        }
        let failed_files = report
            .manifest
            .results
            .iter()
            .filter(|r| r.task_execution_status == "failed")
            .count();
        assert_eq!(failed_files, 1);
        match scope {
            "AllTasks" => assert_eq!(report.rows.len(), 100),
            _ => {
                assert_eq!(
                    report.rows.len(),
                    10,
                    "FailedTasksOnly has exactly the failed rows"
                );
                assert!(
                    report
                        .manifest
                        .results
                        .iter()
                        .all(|r| r.task_execution_status == "failed")
                );
            }
        }
    }
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_manifest_etag_fails_the_job_before_any_task_runs() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    stack.put_objects(&source, &keys).await;
    let rows: Vec<_> = keys.iter().map(|k| (source.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&source, "m.csv", &rows).await;
    let wrong = "0123456789abcdef0123456789abcdef";
    assert_ne!(etag, wrong);

    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "m.csv",
            Some(wrong),
            &target,
            &target,
            "AllTasks",
        ))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    let reasons = job["FailureReasons"].as_array().expect("FailureReasons");
    assert_eq!(reasons[0]["FailureCode"], "ManifestETagMismatch");
    assert!(
        reasons[0]["FailureReason"]
            .as_str()
            .unwrap()
            .contains(wrong)
    );
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 0);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 0);
    let listed = stack
        .s3
        .list_objects_v2()
        .bucket(&target)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.key_count(),
        Some(0),
        "no task ran, no report was written"
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_manifest_fails_the_job_with_a_reason() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let etag = stack
        .put_raw_manifest(&source, "empty.csv", b"\n\n".to_vec())
        .await;
    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "empty.csv",
            Some(&etag),
            &source,
            &source,
            "AllTasks",
        ))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Failed");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "ManifestEmpty");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_manifest_rows_are_failed_tasks_and_the_rest_runs() {
    let stack = TestStack::start().await;
    let source = stack.bucket("src").await;
    let target = stack.bucket("dst").await;
    stack
        .put_objects(&source, &["good one".to_string(), "good+two".to_string()])
        .await;
    let manifest = format!(
        "{source},good%20one\n{source},bad%zz\n{source},a,extra\n\n{source},good%2Btwo\nNot_A_Bucket,x\n"
    );
    let mut body = manifest.into_bytes();
    // A last row whose key is not UTF-8.
    body.extend_from_slice(format!("{source},").as_bytes());
    body.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let etag = stack.put_raw_manifest(&source, "mixed.csv", body).await;
    let job_id = stack
        .api
        .create(&copy_job(
            &source,
            "mixed.csv",
            Some(&etag),
            &target,
            &target,
            "AllTasks",
        ))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(60)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(p["TotalNumberOfTasks"], 6, "blank lines are not tasks");
    assert_eq!(p["NumberOfTasksSucceeded"], 2);
    assert_eq!(p["NumberOfTasksFailed"], 4);
    assert_eq!(
        stack.get(&target, "copy/good one").await,
        Some(body_of("good one"))
    );
    assert_eq!(
        stack.get(&target, "copy/good+two").await,
        Some(body_of("good+two"))
    );
    let report = stack.report(&target, "reports", &job_id).await;
    let failed: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.status == "failed")
        .collect();
    assert_eq!(failed.len(), 4);
    assert!(
        failed
            .iter()
            .all(|r| r.error_code == "InvalidManifestRow" && r.http_status == "400")
    );
    assert!(failed.iter().any(|r| r.message.contains("percent-escape")));
    assert!(failed.iter().any(|r| r.message.contains("columns")));
    assert!(failed.iter().any(|r| r.message.contains("bucket name")));
    assert!(failed.iter().any(|r| r.message.contains("UTF-8")));
    stack.dev.stop().await;
}
