//! The bad-input catalogue: every kind of bad input batchops can meet — API bodies, manifests,
//! intake objects and queue messages — each with the answer it must get: an HTTP 4xx with a
//! message, a `Failed` job with a reason, a failed task row, or a batch item failure. Never a
//! panic, never a 500, never silence. One test runs the whole table and prints it.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_s3::primitives::ByteStream;
use batchops_tests::{StackOptions, TestStack, copy_job};
use serde_json::{Value, json};
use std::time::Duration;

/// Buckets the catalogue's stack allows; anything else is refused.
const SRC: &str = "catalogue-src";
const DST: &str = "catalogue-dst";

enum Input {
    /// A raw body POSTed to a path.
    Api(&'static str, &'static str, String),
    /// A GET of a path.
    Get(&'static str),
    /// A manifest (its bytes) run as a copy job from SRC to DST.
    Manifest(Vec<u8>),
    /// A job whose manifest location or ETag is wrong: (manifest key, ETag).
    Location(&'static str, Option<&'static str>),
    /// An object put under `intake/`: key, body, metadata.
    Intake(&'static str, Vec<u8>, Vec<(&'static str, &'static str)>),
    /// A message body handed to a function's handler: function, body.
    Message(&'static str, String),
}

enum Expect {
    Http(u16, &'static str),
    JobFailed(&'static str, &'static str),
    /// The job completes; this many tasks fail, with this text in their message.
    TasksFailed(u64, &'static str),
    IntakeFailed(&'static str),
    BatchItemFailure,
    Handled,
}

fn event(body: &str) -> SqsEvent {
    let mut m = SqsMessage::default();
    m.message_id = Some("catalogue".into());
    m.body = Some(body.into());
    let mut e = SqsEvent::default();
    e.records = vec![m];
    e
}

fn manifest(rows: &[&str]) -> Vec<u8> {
    rows.iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

fn good_body() -> Value {
    copy_job(SRC, "good.csv", None, DST, DST, "AllTasks")
}

fn with(path: &[&str], value: Value) -> String {
    let mut b = good_body();
    let mut at = &mut b;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at[path[path.len() - 1]] = value;
    b.to_string()
}

fn catalogue() -> Vec<(&'static str, Input, Expect)> {
    use Expect::*;
    use Input::*;
    let tags = |n: usize| {
        json!(
            (0..n)
                .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
                .collect::<Vec<_>>()
        )
    };
    let long_key = format!("{SRC},{}", "x".repeat(2000));
    vec![
        // API bodies
        ("empty body", Api("POST", "/jobs", String::new()), Http(400, "InvalidRequest")),
        ("JSON null", Api("POST", "/jobs", "null".into()), Http(400, "InvalidRequest")),
        ("JSON array", Api("POST", "/jobs", "[]".into()), Http(400, "InvalidRequest")),
        ("truncated JSON", Api("POST", "/jobs", "{\"Operation\":".into()), Http(400, "InvalidRequest")),
        ("body over 1 MiB", Api("POST", "/jobs", " ".repeat(1_100_000)), Http(413, "EntityTooLarge")),
        ("two operations", Api("POST", "/jobs", with(&["Operation"], json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::catalogue-dst"}, "S3PutObjectTagging": {}}))), Http(400, "InvalidRequest")),
        ("11 object tags", Api("POST", "/jobs", with(&["Operation"], json!({"S3PutObjectTagging": {"TagSet": tags(11)}}))), Http(400, "InvalidRequest")),
        ("manifest bucket outside the allow-list", Api("POST", "/jobs", with(&["Manifest", "Location", "ObjectArn"], "arn:aws:s3:::not-allowed/m.csv".into())), Http(403, "AccessDenied")),
        ("report bucket outside the allow-list", Api("POST", "/jobs", with(&["Report", "Bucket"], "arn:aws:s3:::not-allowed".into())), Http(403, "AccessDenied")),
        ("status not requestable", Api("POST", "/jobs/x/status", json!({"RequestedJobStatus": "Complete"}).to_string()), Http(400, "InvalidRequest")),
        ("status body without the field", Api("POST", "/jobs/x/status", "{}".into()), Http(400, "InvalidRequest")),
        ("priority not a number", Api("POST", "/jobs/x/priority", json!({"Priority": "high"}).to_string()), Http(400, "InvalidRequest")),
        ("51 job tags", Api("PUT", "/jobs/x/tagging", json!({"Tags": tags(51)}).to_string()), Http(400, "InvalidRequest")),
        ("MaxResults 0", Get("/jobs?MaxResults=0"), Http(400, "InvalidRequest")),
        ("forged NextToken", Get("/jobs?NextToken=eyJwayI6IngifQ"), Http(400, "InvalidRequest")),
        ("unknown job", Get("/jobs/00000000-0000-0000-0000-000000000000"), Http(404, "NotFoundException")),
        ("unknown route", Get("/teleport"), Http(404, "NotFound")),
        // Manifests
        ("manifest with BOM and CRLF (valid)", Manifest(b"\xEF\xBB\xBFcatalogue-src,a\r\ncatalogue-src,b\r\n".to_vec()), TasksFailed(0, "")),
        ("empty manifest", Manifest(Vec::new()), JobFailed("ManifestEmpty", "empty")),
        ("manifest of blank lines", Manifest(b"\n\r\n  \n".to_vec()), JobFailed("ManifestEmpty", "empty")),
        ("wrong column count", Manifest(manifest(&["catalogue-src,a", "catalogue-src,b,extra"])), TasksFailed(1, "columns")),
        ("invalid UTF-8 in a key", Manifest(b"catalogue-src,a\ncatalogue-src,\xff\xfe\n".to_vec()), TasksFailed(1, "UTF-8")),
        ("malformed percent-escape", Manifest(manifest(&["catalogue-src,a", "catalogue-src,bad%G1"])), TasksFailed(1, "percent-escape")),
        ("huge line (2,000-byte key)", Manifest(manifest(&["catalogue-src,a", &long_key])), TasksFailed(1, "at most 1024")),
        ("row bucket outside the allow-list", Manifest(manifest(&["catalogue-src,a", "not-allowed-bucket,b"])), TasksFailed(1, "allowed buckets")),
        ("invalid bucket name in a row", Manifest(manifest(&["catalogue-src,a", "Bad_Bucket,b"])), TasksFailed(1, "bucket name")),
        ("missing object", Manifest(manifest(&["catalogue-src,a", "catalogue-src,never-put"])), TasksFailed(1, "does not exist")),
        ("manifest object missing", Location("no-such-manifest.csv", None), JobFailed("ManifestReadFailure", "could not be read")),
        ("manifest ETag mismatch", Location("good.csv", Some("ffffffffffffffffffffffffffffffff")), JobFailed("ManifestETagMismatch", "does not match")),
        // Intake objects
        ("intake CSV without operation", Intake("intake/no-op.csv", manifest(&["catalogue-src,a"]), vec![]), IntakeFailed("x-amz-meta-operation")),
        ("intake CSV with unknown operation", Intake("intake/teleport.csv", manifest(&["catalogue-src,a"]), vec![("operation", "S3Teleport")]), IntakeFailed("S3Teleport")),
        ("intake CSV with bad fields", Intake("intake/fields.csv", manifest(&["catalogue-src,a"]), vec![("operation", "S3PutObjectTagging"), ("tags", "a=1"), ("fields", "Bucket,Nope")]), IntakeFailed("Nope")),
        ("intake JSON that is not CreateJob", Intake("intake/bad.json", b"{\"hello\": 1}".to_vec(), vec![]), IntakeFailed("not a valid CreateJob")),
        ("intake JSON with a refused bucket", Intake("intake/refused.json", with(&["Operation", "S3PutObjectCopy", "TargetResource"], "arn:aws:s3:::not-allowed".into()).into_bytes(), vec![]), IntakeFailed("allowed buckets")),
        // Queue messages
        ("plan message not JSON", Message("planner", "not json".into()), BatchItemFailure),
        ("plan message for an unknown job", Message("planner", json!({"job_id": "nope"}).to_string()), BatchItemFailure),
        ("S3 event for another bucket", Message("planner", json!({"Records": [{"s3": {"bucket": {"name": "elsewhere"}, "object": {"key": "intake%2Fx.csv"}}}]}).to_string()), Handled),
        ("S3 test event", Message("planner", json!({"Service": "Amazon S3", "Event": "s3:TestEvent"}).to_string()), Handled),
        ("chunk message not JSON", Message("worker", "{\"job_id\":".into()), BatchItemFailure),
        ("chunk of an unknown job", Message("worker", json!({"job_id": "nope", "chunk": 0, "tasks": []}).to_string()), BatchItemFailure),
        ("finalize message not JSON", Message("finalizer", "<xml/>".into()), BatchItemFailure),
        ("finalize message for an unknown job", Message("finalizer", json!({"job_id": "nope"}).to_string()), BatchItemFailure),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_input_gets_its_answer() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| c.allowed_buckets = vec![SRC.into(), DST.into()],
    })
    .await;
    // The stack bucket must be allowed for intake reports.
    let stack_bucket = stack.dev.deps.config.bucket.clone();
    let deps = {
        let mut config = stack.dev.deps.config.clone();
        config.allowed_buckets.push(stack_bucket.clone());
        std::sync::Arc::new(batchops_core::Deps::new(config, &stack.sdk))
    };
    for b in [SRC, DST] {
        stack.s3.create_bucket().bucket(b).send().await.unwrap();
    }
    stack
        .put_objects(SRC, &["a".to_string(), "b".to_string()])
        .await;
    stack
        .put_raw_manifest(SRC, "good.csv", manifest(&["catalogue-src,a"]))
        .await;
    let http = reqwest::Client::new();
    let cases = catalogue();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut table = Vec::new();
    for (i, (name, input, expect)) in cases.into_iter().enumerate() {
        let outcome: String = match (input, expect) {
            (Input::Api(method, path, body), Expect::Http(status, code)) => {
                let req = http
                    .request(method.parse().unwrap(), format!("{}{path}", stack.base_url))
                    .body(body);
                let resp = req.send().await.unwrap();
                let got = resp.status().as_u16();
                let answer: Value = resp.json().await.unwrap_or(Value::Null);
                assert_eq!(
                    (got, answer["Code"].as_str()),
                    (status, Some(code)),
                    "{name}: {answer}"
                );
                assert!(
                    !answer["Message"].as_str().unwrap_or_default().is_empty(),
                    "{name}: a message"
                );
                format!("HTTP {got} {code}")
            }
            (Input::Get(path), Expect::Http(status, code)) => {
                let resp = http
                    .get(format!("{}{path}", stack.base_url))
                    .send()
                    .await
                    .unwrap();
                let got = resp.status().as_u16();
                let answer: Value = resp.json().await.unwrap_or(Value::Null);
                assert_eq!(
                    (got, answer["Code"].as_str()),
                    (status, Some(code)),
                    "{name}: {answer}"
                );
                format!("HTTP {got} {code}")
            }
            (input @ (Input::Manifest(_) | Input::Location(..)), expect) => {
                let body = match input {
                    Input::Manifest(bytes) => {
                        let key = format!("m{i}.csv");
                        let etag = stack.put_raw_manifest(SRC, &key, bytes).await;
                        copy_job(SRC, &key, Some(&etag), DST, DST, "AllTasks")
                    }
                    Input::Location(key, etag) => copy_job(SRC, key, etag, DST, DST, "AllTasks"),
                    _ => unreachable!(),
                };
                let job_id = stack
                    .api
                    .create(&body)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let job = stack.wait(&job_id, Duration::from_secs(60)).await;
                match expect {
                    Expect::JobFailed(code, text) => {
                        assert_eq!(job["Status"], "Failed", "{name}: {job}");
                        let r = &job["FailureReasons"][0];
                        assert_eq!(r["FailureCode"], code, "{name}: {job}");
                        assert!(
                            r["FailureReason"].as_str().unwrap().contains(text),
                            "{name}: {job}"
                        );
                        format!("job Failed, {code}")
                    }
                    Expect::TasksFailed(n, text) => {
                        assert_eq!(job["Status"], "Complete", "{name}: {job}");
                        assert_eq!(
                            job["ProgressSummary"]["NumberOfTasksFailed"], n,
                            "{name}: {job}"
                        );
                        if n > 0 {
                            let report = stack.report(DST, "reports", &job_id).await;
                            let failed: Vec<_> = report
                                .rows
                                .iter()
                                .filter(|r| r.status == "failed")
                                .collect();
                            assert!(
                                failed.iter().all(|r| r.message.contains(text)),
                                "{name}: {failed:?}"
                            );
                            format!(
                                "{n} failed task row: {} {}",
                                failed[0].http_status, failed[0].error_code
                            )
                        } else {
                            "job Complete, no failure".to_string()
                        }
                    }
                    _ => unreachable!("{name}"),
                }
            }
            (Input::Intake(key, body, metadata), Expect::IntakeFailed(text)) => {
                let mut put = stack
                    .s3
                    .put_object()
                    .bucket(&stack_bucket)
                    .key(key)
                    .body(ByteStream::from(body));
                for (k, v) in metadata {
                    put = put.metadata(k, v);
                }
                put.send().await.unwrap();
                let outcome =
                    batchops_core::intake::start_from_object(&deps, &stack_bucket, key, None)
                        .await
                        .unwrap();
                let batchops_core::intake::Intake::Failed(job_id) = outcome else {
                    panic!("{name}: {outcome:?}");
                };
                // The intake poller handles the same S3 event concurrently; both find one job.
                // moto applies a transaction's items one by one, so the job item can trail
                // the token item by a moment (DynamoDB's transactions are atomic).
                let mut job = Value::Null;
                for _ in 0..50 {
                    if let Ok(j) = stack.api.describe(&job_id).await {
                        job = j;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(job["Status"], "Failed", "{name}");
                assert_eq!(job["FailureReasons"][0]["FailureCode"], "IntakeInvalid");
                let reason = job["FailureReasons"][0]["FailureReason"].as_str().unwrap();
                assert!(reason.contains(text), "{name}: {reason}");
                "job Failed, IntakeInvalid".to_string()
            }
            (Input::Message(function, body), expect) => {
                let failures = match function {
                    "planner" => {
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                        batchops_planner::handle(&deps, event(&body), deadline).await
                    }
                    "worker" => batchops_worker::handle(&deps, event(&body)).await,
                    _ => batchops_finalizer::handle_sqs(&deps, event(&body)).await,
                }
                .batch_item_failures
                .len();
                match expect {
                    Expect::BatchItemFailure => {
                        assert_eq!(failures, 1, "{name}");
                        "batch item failure (retried, then DLQ)".to_string()
                    }
                    _ => {
                        assert_eq!(failures, 0, "{name}");
                        "handled, nothing started".to_string()
                    }
                }
            }
            _ => unreachable!("{name}: input and expectation do not pair"),
        };
        table.push(format!("{:>2}. {name:<42} -> {outcome}", i + 1));
    }
    println!(
        "bad-input catalogue ({} cases):\n{}",
        table.len(),
        table.join("\n")
    );
    stack.dev.stop().await;
}
