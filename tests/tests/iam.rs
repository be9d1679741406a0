//! IAM exercised, not only linted (security issue §6): template.yaml deployed on an emulator
//! that enforces identity policies (moto with `INITIAL_NO_AUTH_ACTION_COUNT`), and the dev
//! runner's API, planner, worker and finalizer pollers each acting with temporary credentials
//! of *its own role from the template* (`infra/iam-stack.py`). A permission a function needs
//! and its role lacks fails a job here; template-check asserts there is nothing beyond.

use aws_config::SdkConfig;
use batchops_cli::client::ApiClient;
use batchops_cli::dev::{Dev, DevOptions, FunctionRoles};
use batchops_core::config::StackNames;
use batchops_tests::{Row, TestStack, assert_counts, start_emulator, unique, venv_python};
use serde_json::{Value, json};
use std::time::Duration;

async fn sdk(endpoint: &str, creds: &Value) -> SdkConfig {
    let s = |k: &str| creds[k].as_str().map(String::from);
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            s("access_key_id").unwrap(),
            s("secret_access_key").unwrap(),
            s("session_token"),
            None,
            "iam-stack",
        ))
        .load()
        .await
}

/// The emulator enforcing IAM, the stack deployed on it, and a dev runner whose functions
/// each act as their own role.
async fn iam_stack(
    buckets: &[&str],
    role_pattern: &str,
    job_roles: &[String],
    tune: fn(&mut batchops_core::Config),
) -> (TestStack, Value, String) {
    let endpoint = start_emulator(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]).await;
    let script = format!("{}/../infra/iam-stack.py", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(venv_python())
        .arg(script)
        .args(["--endpoint", &endpoint, "--stack", &unique("iam")])
        .args(["--allowed-buckets", &buckets.join(",")])
        .args(["--role-arn-pattern", role_pattern])
        .args(job_roles.iter().flat_map(|r| ["--job-role", r.as_str()]))
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("run infra/iam-stack.py");
    assert!(
        out.status.success(),
        "iam-stack.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stack: Value = serde_json::from_slice(&out.stdout).unwrap();
    let admin = sdk(&endpoint, &stack["admin"]).await;
    let (api, planner, worker, finalizer) = (
        sdk(&endpoint, &stack["roles"]["api"]).await,
        sdk(&endpoint, &stack["roles"]["planner"]).await,
        sdk(&endpoint, &stack["roles"]["worker"]).await,
        sdk(&endpoint, &stack["roles"]["finalizer"]).await,
    );
    let n = &stack["names"];
    let name = |k: &str| n[k].as_str().unwrap().to_string();
    let mut opts = DevOptions::new(unique("iam"), "127.0.0.1:0".parse().unwrap());
    opts.workers = 2;
    // What the template's Globals set from its parameters (the dev runner reads the rest).
    opts.tune = tune;
    opts.sweep_interval = Duration::from_secs(2);
    opts.existing = Some(StackNames {
        table: name("table"),
        bucket: name("bucket"),
        plan_queue_url: name("plan_queue_url"),
        work_queue_url: name("work_queue_url"),
        work_high_queue_url: name("work_high_queue_url"),
        finalize_queue_url: name("finalize_queue_url"),
        intake_queue_url: name("intake_queue_url"),
        work_dlq_urls: n["work_dlq_urls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect(),
    });
    opts.roles = Some(FunctionRoles {
        api,
        planner,
        worker,
        finalizer,
    });
    let dev = Dev::start(&admin, opts)
        .await
        .expect("start the dev runner");
    let base_url = format!("http://{}", dev.addr);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&admin)
            .force_path_style(true)
            .build(),
    );
    // A pattern (`*`, `data-*`) names no bucket to make.
    for b in buckets.iter().filter(|b| !b.contains(['*', '?'])) {
        s3.create_bucket().bucket(*b).send().await.unwrap();
    }
    let test = TestStack {
        api: ApiClient::new(&base_url),
        sqs: aws_sdk_sqs::Client::new(&admin),
        s3,
        sdk: admin,
        base_url,
        dev,
    };
    (test, stack, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_runs_end_to_end_with_each_function_acting_as_its_own_role() {
    batchops_core::telemetry::init();
    let source = unique("iamsrc");
    let target = unique("iamdst");
    let (stack, deployed, endpoint) = iam_stack(&[&source, &target], "", &[], |_| {}).await;
    let own = stack.dev.deps.config.bucket.clone();

    // The emulator does enforce the roles: the planner may not read other jobs' results, the
    // worker may not write outside the allowed buckets.
    let planner = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk(&endpoint, &deployed["roles"]["planner"]).await)
            .force_path_style(true)
            .build(),
    );
    stack
        .put(&own, "results/other/rows.csv", b"x".to_vec())
        .await;
    let denied = planner
        .get_object()
        .bucket(&own)
        .key("results/other/rows.csv")
        .send()
        .await
        .expect_err("the planner's role reads nothing under results/");
    assert_eq!(
        denied.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{denied:?}"
    );

    let keys: Vec<String> = (0..20).map(|i| format!("iam/{i}")).collect();
    stack.put_objects(&source, &keys).await;
    let rows: Vec<Row> = keys.iter().map(|k| Row::new(&source, k)).collect();
    let (job, report) = stack
        .run_job(
            &source,
            &rows,
            json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}")}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 20, 0);
    for k in &keys {
        assert!(stack.get(&target, k).await.is_some(), "{k} copied");
    }

    // A report without Report.Bucket: in the stack bucket under reports/, where the
    // finalizer's role may write (and nowhere else there).
    let body = json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "again", "Value": "iam"}]}},
        "Manifest": job["Manifest"].clone(),
        "Report": {"Enabled": true, "ReportScope": "AllTasks"},
        "Priority": 1
    });
    let default_report = stack.api.create(&body).await.unwrap();
    let ended = stack.wait(&default_report, Duration::from_secs(90)).await;
    assert_eq!(ended["Status"], "Complete", "{ended}");
    let report = stack.report(&own, "reports", &default_report).await;
    assert_counts(&ended, &report, 20, 0);

    // A generator job writing its manifest to the stack bucket's generated/ (the planner
    // could not, before its role was granted that prefix), tagging every object.
    let body = json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "seen", "Value": "iam"}]}},
        "ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": format!("arn:aws:s3:::{source}"),
            "EnableManifestOutput": true,
            "ManifestOutputLocation": {"Bucket": format!("arn:aws:s3:::{own}"),
                "ManifestPrefix": "generated", "ManifestFormat": "S3InventoryReport_CSV_20211130"},
            "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["iam/"]}}
        }},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{target}"),
            "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 1
    });
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(90)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(
        job["ProgressSummary"]["NumberOfTasksSucceeded"], 20,
        "{job}"
    );
    let listed = stack
        .s3
        .list_objects_v2()
        .bucket(&own)
        .prefix("generated/")
        .send()
        .await
        .unwrap();
    assert!(
        !listed.contents().is_empty(),
        "the generated manifest is under generated/"
    );
    // The finalizer's role may clear what the run left: its records and result files.
    stack.until_cleaned_up(&job_id, 60).await;
    stack.dev.stop().await;
}

/// The HTTP status of a failed S3 call.
fn status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Security issue §1: with every bucket allowed (`AllowedBuckets=*`, whose user-bucket
/// statements then cover the stack bucket too), each role's explicit denies still keep the
/// stack bucket's prefixes out of reach: the worker can neither write under intake/ (a job), nor
/// read reports, nor tag, ACL or lock anything there, not even its own results; the finalizer
/// writes reports under reports/ only; the planner reads no results and writes no intake.
/// Tried straight with each role's credentials, past the API's and the worker's own refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_bucket_allowed_no_role_reaches_beyond_its_own_prefixes_of_the_stack_bucket() {
    let (stack, deployed, endpoint) = iam_stack(&["*"], "", &[], |_| {}).await;
    let own = stack.dev.deps.config.bucket.clone();
    stack
        .put(&own, "results/j/000000000000/a.csv", b"rows".to_vec())
        .await;
    stack
        .put(&own, "reports/job-j/manifest.json", b"{}".to_vec())
        .await;
    let role = |name: &'static str| {
        let deployed = deployed.clone();
        let endpoint = endpoint.clone();
        async move {
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk(&endpoint, &deployed["roles"][name]).await)
                    .force_path_style(true)
                    .build(),
            )
        }
    };
    let (worker, finalizer, planner) = (
        role("worker").await,
        role("finalizer").await,
        role("planner").await,
    );
    let put = |c: &aws_sdk_s3::Client, key: &str| {
        c.put_object()
            .bucket(&own)
            .key(key)
            .body(b"x".to_vec().into())
            .send()
    };

    // What the roles must still do.
    assert!(
        put(&worker, "results/j/000000000001/b.csv").await.is_ok(),
        "the worker writes its results"
    );
    assert!(
        put(&finalizer, "reports/job-j/results/x.csv").await.is_ok(),
        "the finalizer writes reports"
    );
    // What they must not.
    for (who, client, key) in [
        ("worker", &worker, "intake/made-by-a-job.csv"),
        ("worker", &worker, "reports/job-j/manifest.json"),
        ("worker", &worker, "generated/j/manifest.json"),
        ("finalizer", &finalizer, "intake/report-as-manifest.csv"),
        ("finalizer", &finalizer, "results/j/000000000000/a.csv"),
        ("planner", &planner, "intake/made-by-the-planner.csv"),
        ("planner", &planner, "results/j/000000000000/a.csv"),
    ] {
        let e = put(client, key)
            .await
            .expect_err(&format!("{who} wrote {key}"));
        assert_eq!(status(&e), Some(403), "{who} {key}: {e:?}");
    }
    for (who, client, key) in [
        ("worker", &worker, "reports/job-j/manifest.json"),
        ("planner", &planner, "reports/job-j/manifest.json"),
    ] {
        let e = client
            .get_object()
            .bucket(&own)
            .key(key)
            .send()
            .await
            .expect_err(&format!("{who} read {key}"));
        assert_eq!(status(&e), Some(403), "{who} {key}: {e:?}");
    }
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("k")
                .value("v")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = worker
        .put_object_tagging()
        .bucket(&own)
        .key("results/j/000000000000/a.csv")
        .tagging(tagging)
        .send()
        .await
        .expect_err("the worker tagged a result file");
    assert_eq!(status(&e), Some(403), "{e:?}");
    let e = worker
        .put_object_acl()
        .bucket(&own)
        .key("results/j/000000000000/a.csv")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::Private)
        .send()
        .await
        .expect_err("the worker set a result file's ACL");
    assert_eq!(status(&e), Some(403), "{e:?}");
    // Nothing the attempts wrote is there.
    let listed = stack
        .s3
        .list_objects_v2()
        .bucket(&own)
        .prefix("intake/")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    stack.dev.stop().await;
}

/// Security issue §2: with a RoleArnPattern, a job's tasks run as its RoleArn (assumed by the
/// worker), not as the stack's role; a RoleArn outside the pattern, or none, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_role_pattern_a_jobs_tasks_run_as_its_own_role() {
    let source = unique("iamrole");
    const PATTERN: &str = "arn:aws:iam::123456789012:role/batchops-job-*";
    let pattern = PATTERN;
    let roles = [
        format!(
            "batchops-job-tagger=s3:PutObjectTagging,s3:PutObjectVersionTagging,s3:GetObject,s3:ListBucket@{source}"
        ),
        format!("batchops-job-idle=s3:ListBucket@{source}"),
    ];
    let (stack, deployed, _) = iam_stack(&[&source], pattern, &roles, |c| {
        c.role_arn_pattern = Some(PATTERN.into())
    })
    .await;
    let role = |n: &str| deployed["job_roles"][n].as_str().unwrap().to_string();
    let (tagger, idle) = (role("batchops-job-tagger"), role("batchops-job-idle"));
    let keys: Vec<String> = (0..6).map(|i| format!("r/{i}")).collect();
    stack.put_objects(&source, &keys).await;
    let rows: Vec<Row> = keys.iter().map(|k| Row::new(&source, k)).collect();
    let tagging = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "by", "Value": "job-role"}]}});

    let (job, report) = stack
        .run_job(&source, &rows, tagging.clone(), json!({"RoleArn": tagger}))
        .await;
    assert_counts(&job, &report, 6, 0);
    // The worker's own role may tag objects in this bucket; the idle role may not: its job
    // fails task by task, so the tasks ran as the job's role.
    let (job, report) = stack
        .run_job(&source, &rows, tagging.clone(), json!({"RoleArn": idle}))
        .await;
    assert_counts(&job, &report, 0, 6);
    for r in &report.rows {
        batchops_tests::assert_failed_row(r, "403", "AccessDenied");
    }
    // Outside the pattern, or no role at all: refused, naming RoleArn.
    let manifest = stack
        .put_manifest(&source, "m.csv", &[(source.clone(), keys[0].clone())])
        .await;
    for role in [Some("arn:aws:iam::123456789012:role/admin"), None] {
        let mut body = json!({
            "Operation": tagging,
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::{source}/m.csv"), "ETag": manifest}},
            "Report": {"Enabled": false}, "Priority": 1
        });
        if let Some(r) = role {
            body["RoleArn"] = r.into();
        }
        let (status, answer) = stack.post_jobs_raw(body.to_string()).await;
        assert_eq!(status, 403, "{role:?}: {answer}");
        assert!(answer.to_string().contains("RoleArn"), "{answer}");
    }
    stack.dev.stop().await;
}
