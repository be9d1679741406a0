//! `batchops proxy`: lets unmodified AWS clients (`aws s3control …`, boto3, the Rust SDK)
//! reach a deployed stack. They sign for S3 (`s3`), while the API Gateway in front of the api
//! Lambda takes only `execute-api` signatures, so this proxy — like `kubectl proxy` — takes
//! their requests on a loopback port, drops their signature, signs each one again with the
//! user's own AWS credentials for `execute-api` and forwards it to the deployed API.
//!
//! It accepts origin-form and absolute-form targets (a client using it as `HTTP_PROXY`), for
//! the S3 Control wire and the JSON API alike. Because it holds the user's credentials, it
//! listens on loopback only and refuses what a web page could send (an `Origin` header, a
//! cross-site `Sec-Fetch-Site`, a `Host` that is not this machine), as `batchops dev` does;
//! the one page it lets act is the web console it serves itself (from the deployed API, at
//! `/console`), whose calls carry this proxy's own `Origin`. `batchops console` is this proxy.

use crate::client::Signer;
use anyhow::{Context, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use batchops_api::MAX_BODY_BYTES;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{info, warn};

/// Request headers never forwarded: hop-by-hop ones, the client's own signature (the proxy
/// signs again), and what a browser adds to the console's calls (`Origin`, `Referer`,
/// cookies and, by prefix, `Sec-Fetch-*`): the guard here has judged them, and the deployed
/// API would refuse an `Origin` that is not its own.
const DROPPED: [&str; 18] = [
    "origin",
    "referer",
    "cookie",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "host",
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "expect",
    "content-length",
];

/// Response headers not passed back (hop-by-hop; the body is re-framed).
const DROPPED_BACK: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// Where requests go and how they are signed.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The deployed API's base URL, without a trailing `/` (it may carry a stage path).
    pub base: String,
    pub signer: Signer,
    pub http: reqwest::Client,
}

impl Upstream {
    /// The region is the one in an `execute-api` host name, else the signer's.
    pub fn new(api_url: &str, mut signer: Signer) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(api_url).with_context(|| format!("--api-url {api_url}"))?;
        ensure!(
            matches!(url.scheme(), "https" | "http"),
            "--api-url must be an http(s) URL, not {api_url}"
        );
        if let Some(region) = url.host_str().and_then(execute_api_region) {
            signer.region = region;
        }
        Ok(Self {
            base: api_url.trim_end_matches('/').to_string(),
            signer,
            http: reqwest::Client::new(),
        })
    }
}

/// `abc123.execute-api.eu-west-1.amazonaws.com` → `eu-west-1`.
pub fn execute_api_region(host: &str) -> Option<String> {
    let mut parts = host.split('.');
    let (_, service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (service == "execute-api" && !region.is_empty()).then(|| region.to_string())
}

/// The proxy's routes: everything is forwarded, behind the browser and host guards.
pub fn router(upstream: Arc<Upstream>, extra_hosts: Vec<String>) -> Router {
    let router =
        Router::new()
            .fallback(forward)
            .with_state(upstream)
            .layer(axum::middleware::from_fn(
                batchops_api::guard::refuse_browsers,
            ));
    batchops_api::guard::local_only(router, extra_hosts)
}

/// Serves the proxy on `listen` (loopback only) until the process ends.
pub async fn serve(
    listen: SocketAddr,
    upstream: Upstream,
    extra_hosts: Vec<String>,
) -> anyhow::Result<()> {
    let listener = bind(listen).await?;
    println!(
        "batchops proxy: http://{} → {} (signed for execute-api in {})",
        listener.local_addr()?,
        upstream.base,
        upstream.signer.region
    );
    serve_on(listener, upstream, extra_hosts).await
}

/// Serves the proxy on a listener [`bind`] made.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    upstream: Upstream,
    extra_hosts: Vec<String>,
) -> anyhow::Result<()> {
    info!(addr = %listener.local_addr()?, upstream = upstream.base, "batchops proxy");
    axum::serve(listener, router(Arc::new(upstream), extra_hosts)).await?;
    Ok(())
}

/// Binds `listen`, refusing any address beyond loopback: whoever reaches the proxy acts with
/// the user's AWS credentials.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    ensure!(
        listen.ip().is_loopback(),
        "batchops proxy listens on a loopback address only (127.0.0.1 or ::1), not {listen}: \
         whoever reaches it acts with your AWS credentials"
    );
    Ok(tokio::net::TcpListener::bind(listen).await?)
}

async fn forward(State(up): State<Arc<Upstream>>, request: Request) -> Response {
    match try_forward(&up, request).await {
        Ok(r) => r,
        Err(e) => e,
    }
}

/// A proxy-side failure, in the form the request's protocol expects.
fn failure(path: &str, status: StatusCode, code: &'static str, message: String) -> Response {
    if path.starts_with(batchops_api::s3control::ops::PREFIX) {
        batchops_api::s3control::ops::WireError::new(status, code, message).into_response()
    } else {
        batchops_api::ApiError::new(status, code, message).into_response()
    }
}

async fn try_forward(up: &Upstream, request: Request) -> Result<Response, Response> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            failure(
                &path,
                StatusCode::PAYLOAD_TOO_LARGE,
                "EntityTooLarge",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let mut out = http::Request::builder()
        .method(parts.method.as_str())
        .uri(format!("{}{target}", up.base));
    for (name, value) in &parts.headers {
        if !DROPPED.contains(&name.as_str()) && !name.as_str().starts_with("sec-fetch-") {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let internal = |e: String| {
        warn!(error = e, path, "proxy: forwarding failed");
        failure(
            &path,
            StatusCode::BAD_GATEWAY,
            "InternalServiceException",
            format!("batchops proxy could not reach {}: {e}", up.base),
        )
    };
    let mut out = out
        .body(body.to_vec())
        .map_err(|e| internal(e.to_string()))?;
    up.signer
        .sign(&mut out)
        .await
        .map_err(|e| internal(format!("signing failed: {e:#}")))?;
    let request = reqwest::Request::try_from(out).map_err(|e| internal(e.to_string()))?;
    let answer = up
        .http
        .execute(request)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if DROPPED_BACK.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let bytes = answer.bytes().await.map_err(|e| internal(e.to_string()))?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_execute_api_host_name() {
        assert_eq!(
            execute_api_region("abc123.execute-api.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(execute_api_region("api.example.com"), None);
        assert_eq!(execute_api_region("localhost"), None);
    }

    #[tokio::test]
    async fn the_proxy_refuses_to_listen_beyond_loopback() {
        let e = bind("0.0.0.0:0".parse().unwrap()).await.unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(bind("127.0.0.1:0".parse().unwrap()).await.is_ok());
    }
}
