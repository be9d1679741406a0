//! `batchops proxy` lets unmodified clients reach a deployed stack: it drops their `s3`
//! signature and signs each request again for `execute-api` (what API Gateway's IAM auth
//! takes), keeping everything else. Against a recording upstream that checks the signature it
//! receives, and end to end with the Rust SDK, boto3 and the AWS CLI through the proxy to
//! `batchops dev` (which takes any signature, as a deployed API takes a valid one).

use batchops_cli::client::Signer;
use batchops_cli::proxy::{Upstream, bind, serve_on};
use batchops_tests::TestStack;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const ACCOUNT: &str = "123456789012";

fn signer(region: &str) -> Signer {
    Signer {
        credentials: aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKIDPROXYTEST", "secret", None, None, "test"),
        ),
        region: region.into(),
    }
}

/// Starts the proxy in front of `api_url`; returns its address.
async fn proxy(api_url: &str, region: &str) -> SocketAddr {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = Upstream::new(api_url, signer(region)).unwrap();
    tokio::spawn(serve_on(listener, upstream, vec![]));
    addr
}

/// What the recording upstream received: method, path and query, headers, body.
type Seen = Arc<Mutex<Vec<(String, String, Vec<(String, String)>, Vec<u8>)>>>;

/// An upstream that records each request and answers 201 with an XML body and a header.
async fn recording_upstream() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Default::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes().to_vec();
                            let headers = parts
                                .headers
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            s.lock().unwrap().push((
                                parts.method.to_string(),
                                parts.uri.to_string(),
                                headers,
                                body,
                            ));
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(201)
                                    .header("x-amz-request-id", "UPSTREAM")
                                    .header("content-type", "application/xml")
                                    .body(Full::new(Bytes::from_static(b"<CreateJobResult/>")))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn the_consoles_own_calls_pass_the_proxy_signed_and_without_what_the_browser_added() {
    let (up, seen) = recording_upstream().await;
    let addr = proxy(&format!("http://{up}"), "eu-west-1").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // What Chrome sends for the console page's POST: its own origin, same-origin fetch marks,
    // a cookie another local page may have set.
    let resp = http
        .post(format!("http://{addr}/jobs/j1/status"))
        .header("origin", format!("http://{addr}"))
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .header("referer", format!("http://{addr}/console"))
        .header("cookie", "session=abc")
        .header("content-type", "application/json")
        .body(r#"{"RequestedJobStatus":"Ready"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "forwarded");
    let (method, target, headers, _) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (method.as_str(), target.as_str()),
        ("POST", "/jobs/j1/status")
    );
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    for gone in [
        "origin",
        "referer",
        "cookie",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-dest",
    ] {
        assert!(
            !names.contains(&gone),
            "{gone} reached the deployed API: {names:?}"
        );
    }
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.contains("/eu-west-1/execute-api/")),
        "signed: {headers:?}"
    );
    // Another page's origin is still refused, and never forwarded.
    let resp = http
        .post(format!("http://{addr}/jobs/j1/status"))
        .header("origin", "http://localhost:1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_proxy_replaces_the_clients_s3_signature_with_an_execute_api_one() {
    let (up, seen) = recording_upstream().await;
    // A stage path on the API URL is kept; the region is the signer's (no execute-api name here).
    let addr = proxy(&format!("http://{up}/prod/"), "eu-west-1").await;
    let body = "<CreateJobRequest><Priority>1</Priority></CreateJobRequest>";
    // As boto3 sends it through HTTP_PROXY: absolute-form, account-prefixed host, s3 signature.
    let resp = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{addr}")).unwrap())
        .build()
        .unwrap()
        .post(format!(
            "http://{ACCOUNT}.localhost:9999/v20180820/jobs?x=a%2Fb&y=1"
        ))
        .header("x-amz-account-id", ACCOUNT)
        .header("x-amz-date", "20260101T000000Z")
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "the upstream's status comes back");
    assert_eq!(resp.headers()["x-amz-request-id"], "UPSTREAM");
    assert_eq!(resp.text().await.unwrap(), "<CreateJobResult/>");

    let (method, target, headers, got) = &seen.lock().unwrap()[0].clone();
    assert_eq!(
        (method.as_str(), target.as_str()),
        ("POST", "/prod/v20180820/jobs?x=a%2Fb&y=1")
    );
    assert_eq!(got, body.as_bytes(), "the body is forwarded unchanged");
    let header = |name: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let auth = header("authorization");
    assert_eq!(auth.len(), 1, "one signature: {headers:?}");
    assert!(
        auth[0].starts_with("AWS4-HMAC-SHA256 Credential=AKIDPROXYTEST/")
            && auth[0].contains("/eu-west-1/execute-api/aws4_request"),
        "signed with the user's key for execute-api: {}",
        auth[0]
    );
    assert!(
        !auth[0].contains("CLIENTKEY"),
        "the client's signature is gone"
    );
    assert_eq!(
        header("x-amz-account-id"),
        [ACCOUNT],
        "the account header is kept"
    );
    assert_eq!(header("host"), [up.to_string()], "Host is the upstream's");
    assert_ne!(
        header("x-amz-date"),
        ["20260101T000000Z"],
        "the proxy's own signing time"
    );
    drop(seen);

    // A web page cannot use the proxy (it holds the user's credentials), nor a rebound name.
    for (name, value) in [("origin", "https://evil.example"), ("host", "evil.example")] {
        let resp = reqwest::Client::new()
            .get(format!("http://{addr}/jobs"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
    }

    // An unreachable upstream is a retryable 502 in the protocol's form, not a hang.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let addr = proxy(&format!("http://{dead}"), "eu-west-1").await;
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/v20180820/jobs/abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("<Code>InternalServiceException</Code>"),
        "{text}"
    );
}

#[tokio::test]
async fn stock_clients_manage_jobs_through_the_proxy() {
    let stack = TestStack::start().await;
    let addr = proxy(&stack.base_url, "us-east-1").await;
    let src = stack.bucket("proxy-src").await;
    let keys: Vec<String> = (0..3).map(|i| format!("obj-{i}")).collect();
    stack.put_objects(&src, &keys).await;
    let rows: Vec<(String, String)> = keys.iter().map(|k| (src.clone(), k.clone())).collect();
    let etag = stack.put_manifest(&src, "m.csv", &rows).await;

    // The console, as `batchops console` serves it: the page comes from the API behind the
    // proxy, and a call the page makes (its own Origin) reaches the API.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let page = http
        .get(format!("http://{addr}/console"))
        .header("sec-fetch-site", "none")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("/console/app.js"));
    let listed = http
        .get(format!("http://{addr}/jobs"))
        .header("origin", format!("http://{addr}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.status(),
        200,
        "the console's own call passes the proxy"
    );

    // boto3 and the AWS CLI, with the proxy as both HTTP_PROXY and endpoint port.
    let seen = batchops_tests::run_stock_clients(addr.port(), &src, "m.csv", &etag).await;
    for client in ["boto3", "cli"] {
        assert_eq!(seen[client]["status"], "Complete", "{client}: {seen}");
        assert_eq!(
            seen[client]["progress"]["NumberOfTasksSucceeded"], 3,
            "{client}: {seen}"
        );
    }
    assert_eq!(seen["boto3"]["describe_missing"], "NotFoundException");

    // The Rust SDK through the proxy: the job boto3 made, and a priority change.
    let c = batchops_tests::s3control_client(&stack.sdk, &format!("http://{addr}"));
    let id = seen["boto3"]["job_id"].as_str().unwrap();
    let job = c
        .describe_job()
        .account_id(ACCOUNT)
        .job_id(id)
        .send()
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(job.description.as_deref(), Some("boto3"));
    let p = c
        .update_job_priority()
        .account_id(ACCOUNT)
        .job_id(id)
        .priority(77)
        .send()
        .await
        .unwrap();
    assert_eq!(p.priority, 77);
    assert_eq!(stack.api.describe(id).await.unwrap()["Priority"], 77);
    // It creates a job that awaits confirmation, and cancels it.
    use aws_sdk_s3control::types::*;
    let created = c
        .create_job()
        .account_id(ACCOUNT)
        .confirmation_required(true)
        .operation(
            JobOperation::builder()
                .s3_put_object_tagging(S3SetObjectTaggingOperation::builder().build())
                .build(),
        )
        .manifest(
            JobManifest::builder()
                .spec(
                    JobManifestSpec::builder()
                        .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                        .fields(JobManifestFieldName::Bucket)
                        .fields(JobManifestFieldName::Key)
                        .build()
                        .unwrap(),
                )
                .location(
                    JobManifestLocation::builder()
                        .object_arn(format!("arn:aws:s3:::{src}/m.csv"))
                        .e_tag(&etag)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .report(JobReport::builder().enabled(false).build())
        .priority(1)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/r"))
        .send()
        .await
        .unwrap();
    let rust_id = created.job_id.unwrap();
    let cancelled = c
        .update_job_status()
        .account_id(ACCOUNT)
        .job_id(&rust_id)
        .requested_job_status(RequestedJobStatus::Cancelled)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(
            cancelled.status,
            Some(JobStatus::Cancelling | JobStatus::Cancelled)
        ),
        "{cancelled:?}"
    );
    stack
        .until(&rust_id, 60, |j| j["Status"] == "Cancelled")
        .await;

    // And the JSON API through the proxy.
    let list: Value = reqwest::get(format!("http://{addr}/jobs?JobStatuses=Complete"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["Jobs"].as_array().unwrap().len(), 2, "{list}");
}
