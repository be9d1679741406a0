//! The web console: three static files (HTML, CSS, JavaScript, no build step and nothing
//! fetched from elsewhere), compiled into the binary and served at `/console` by the api
//! function, `batchops dev` and `batchops proxy`/`batchops console`. The page is a client of
//! the JSON API like the CLI: it reads `GET /jobs` and `GET /jobs/{id}` and acts through
//! `POST /jobs/{id}/status` and `/priority`, from the same origin (see [`crate::guard`] for
//! why those calls are let through and no other page's are). Job rules reach it through the
//! API: DescribeJob's `AllowedUpdates` names the actions it offers, `ReportSummary` what the
//! report holds.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// The page may load only its own script and style and talk only to its own origin; no page
/// may frame it.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-cache"),
        // Not `no-referrer`: under it a browser sends `Origin: null` on same-origin POSTs,
        // which the guard refuses.
        (header::REFERRER_POLICY, "same-origin"),
        // A window another site opened gets no handle on the console's.
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The console's routes, to merge into the API's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route(
            "/console/app.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console/app.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}
