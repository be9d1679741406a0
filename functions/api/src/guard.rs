//! Refusals that keep web pages from driving the API (CSRF and DNS rebinding).
//!
//! `batchops dev` (and `batchops proxy`) accept any signature or none on loopback: whoever can
//! reach the port acts with the runner's credentials. A browser reaches it on a page's behalf
//! with a "simple" cross-origin request (a `text/plain` POST needs no preflight), or through a
//! DNS name the page's site rebinds to 127.0.0.1. Browsers mark the first (`Origin`,
//! `Sec-Fetch-Site`); only the `Host` header shows the second. So:
//! - [`refuse_browsers`], on every route of the API (harmless behind API Gateway, where a
//!   browser cannot sign anyway): a request with an `Origin` header, or a `Sec-Fetch-Site`
//!   other than `none` / `same-origin`, is a 403 before any handler runs. Preflights are
//!   refused likewise and no `Access-Control-*` header is ever sent. One exception serves the
//!   web console: a request whose `Origin` is exactly this server's own (`http://<Host>`,
//!   and `Sec-Fetch-Site` absent or `same-origin`) comes from a page this server served — no
//!   other page can send that `Origin`, and the `Host` check below stops a rebound name from
//!   posing as this server. The console's page is refused like the rest when another site
//!   links or frames it (a cross-site `Sec-Fetch-Site`): typed, bookmarked or opened from
//!   the runner's printed URL, it is `none`.
//! - [`local_hosts`], in the local runners only: a `Host` that is not a loopback address,
//!   `localhost`, `*.localhost`, `<account>.<loopback address>` (the name stock S3 Control
//!   clients build for `http://127.0.0.1:<port>`) or a name the user listed is a 403.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// The refusal, as every API error is answered.
fn denied(path: &str, message: String) -> Response {
    if path.starts_with(crate::s3control::ops::PREFIX) {
        return crate::s3control::ops::access_denied(message);
    }
    crate::ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", message).into_response()
}

/// Why a request looks browser-originated from another site, if it does: any `Origin` but
/// this server's own (`http(s)://<Host>`), or a cross-site `Sec-Fetch-Site`.
pub fn browser_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = headers.get(header::HOST).is_some_and(|host| {
            let host = host.as_bytes();
            [&b"http://"[..], &b"https://"[..]]
                .iter()
                .any(|scheme| origin.as_bytes() == [*scheme, host].concat())
        });
        let site = headers.get("sec-fetch-site").map(|s| s.as_bytes());
        if own && matches!(site, None | Some(b"same-origin")) {
            return None;
        }
        return Some(format!(
            "a request from a web page (Origin {:?}) is refused: batchops acts with its \
             runner's credentials",
            String::from_utf8_lossy(origin.as_bytes())
        ));
    }
    let site = headers.get("sec-fetch-site")?.as_bytes();
    if site == b"none" || site == b"same-origin" {
        return None;
    }
    Some(format!(
        "a request a browser sent for another site (Sec-Fetch-Site {:?}) is refused",
        String::from_utf8_lossy(site)
    ))
}

/// Middleware: 403 for browser-originated requests (see the module doc).
pub async fn refuse_browsers(request: Request, next: Next) -> Response {
    match browser_origin(request.headers()) {
        Some(why) => denied(request.uri().path(), why),
        None => next.run(request).await,
    }
}

/// Whether `host` (a `Host` header's value, port included or not) names this machine.
pub fn is_local_host(host: &str, extra: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:9000`
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let loopback = |s: &str| s.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback(&name) || name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    // `123456789012.127.0.0.1`: the account prefix on a loopback address.
    if let Some((account, rest)) = name.split_once('.')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && loopback(rest)
    {
        return true;
    }
    extra.iter().any(|e| e.eq_ignore_ascii_case(&name))
}

/// Middleware for the local runners: 403 unless the `Host` names this machine (or one of
/// `extra`). A request without `Host` (HTTP/1.0) is no browser's.
pub async fn local_hosts(
    State(extra): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if !is_local_host(&h, &extra) => denied(
            request.uri().path(),
            format!(
                "Host {h:?} is not this machine: refused (a DNS rebinding guard); list extra \
                 names in BATCHOPS_DEV_HOSTS"
            ),
        ),
        _ => next.run(request).await,
    }
}

/// Wraps a router with the local runners' host check.
pub fn local_only(router: axum::Router, extra: Vec<String>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(extra),
        local_hosts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_are_loopback_localhost_and_account_prefixed_loopback() {
        for h in [
            "127.0.0.1:9000",
            "127.0.0.1",
            "[::1]:9000",
            "localhost:9000",
            "LOCALHOST",
            "123456789012.localhost:9000",
            "123456789012.127.0.0.1:9000",
            "localhost.",
        ] {
            assert!(is_local_host(h, &[]), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:9000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "12345.127.0.0.1",
            "10.0.0.1:9000",
            "",
        ] {
            assert!(!is_local_host(h, &[]), "{h}");
        }
        assert!(is_local_host("dev.box:9000", &["dev.box".into()]));
    }

    #[test]
    fn browser_marks_are_refused_and_plain_clients_pass() {
        let with = |k: &'static str, v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(k, v.parse().unwrap());
            browser_origin(&h)
        };
        assert!(with("origin", "https://evil.example").is_some());
        assert!(with("origin", "http://127.0.0.1:9000").is_some());
        assert!(with("sec-fetch-site", "cross-site").is_some());
        assert!(with("sec-fetch-site", "same-site").is_some());
        assert!(with("sec-fetch-site", "none").is_none());
        let from = |origin: &'static str, host: &'static str, site: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert("origin", origin.parse().unwrap());
            h.insert("host", host.parse().unwrap());
            if let Some(site) = site {
                h.insert("sec-fetch-site", site.parse().unwrap());
            }
            browser_origin(&h)
        };
        // The console's own calls: the page's origin is this server's.
        assert!(
            from(
                "http://127.0.0.1:9000",
                "127.0.0.1:9000",
                Some("same-origin")
            )
            .is_none()
        );
        assert!(from("http://127.0.0.1:9000", "127.0.0.1:9000", None).is_none());
        // Any other page is refused, whatever it claims.
        assert!(from("http://localhost:9000", "127.0.0.1:9000", None).is_some());
        assert!(from("http://127.0.0.1:9001", "127.0.0.1:9000", None).is_some());
        assert!(
            from(
                "http://127.0.0.1:9000",
                "127.0.0.1:9000",
                Some("cross-site")
            )
            .is_some()
        );
        assert!(from("http://127.0.0.1:9000", "127.0.0.1:9000", Some("same-site")).is_some());
        assert!(from("null", "127.0.0.1:9000", None).is_some());
        assert!(from("http://127.0.0.1:9000.evil", "127.0.0.1:9000", None).is_some());
        assert!(with("sec-fetch-site", "same-origin").is_none());
        assert!(browser_origin(&HeaderMap::new()).is_none());
    }
}
