//! `batchops dev` accepts any signature or none on loopback, so no web page may drive it: a
//! request a browser sends on a page's behalf (an `Origin` header, a cross-site
//! `Sec-Fetch-Site`) or through a rebound DNS name (a `Host` that is not local) is refused
//! before it does anything; and the runner will not listen beyond loopback.

use batchops_tests::{TestStack, copy_job};
use serde_json::Value;

async fn job_count(stack: &TestStack) -> usize {
    let list: Value = reqwest::get(format!("{}/jobs", stack.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["Jobs"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_web_page_cannot_create_jobs_through_batchops_dev() {
    let stack = TestStack::start().await;
    let src = stack.bucket("guard-src").await;
    let manifest = stack.put_manifest(&src, "m.csv", &[]).await;
    let body = copy_job(&src, "m.csv", Some(&manifest), &src, &src, "AllTasks").to_string();
    let http = reqwest::Client::new();
    let url = format!("{}/jobs", stack.base_url);
    let port = stack.dev.addr.port();

    // What a page can send without a preflight: a text/plain POST, with the browser's headers.
    let refused: [(&str, &str); 5] = [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("host", "evil.example"),
    ];
    for (name, value) in refused {
        let resp = http
            .post(&url)
            .header("content-type", "text/plain")
            .header(name, value)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["Code"], "AccessDenied", "{name}: {value}: {answer}");
    }
    // A preflight is refused too, and grants nothing.
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);
    assert!(
        preflight
            .headers()
            .keys()
            .all(|h| !h.as_str().starts_with("access-control-")),
        "no CORS grant: {:?}",
        preflight.headers()
    );
    assert_eq!(job_count(&stack).await, 0, "no refused request made a job");

    // Clients that are not browsers, and local names, still work.
    let allowed: [(&str, String); 4] = [
        ("sec-fetch-site", "none".into()),
        ("host", format!("localhost:{port}")),
        ("host", format!("123456789012.localhost:{port}")),
        ("host", format!("123456789012.127.0.0.1:{port}")),
    ];
    for (name, value) in &allowed {
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .header(*name, value)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}: {value}");
    }
    assert_eq!(job_count(&stack).await, allowed.len());
    stack.dev.stop().await;
}

#[tokio::test]
async fn batchops_dev_refuses_to_listen_beyond_loopback() {
    let sdk = batchops_tests::sdk().await;
    let opts = batchops_cli::dev::DevOptions::new(
        batchops_tests::unique("t"),
        "0.0.0.0:0".parse().unwrap(),
    );
    let err = batchops_cli::dev::Dev::start(&sdk, opts)
        .await
        .err()
        .expect("a non-loopback address is refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}
