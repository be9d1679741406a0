//! Tracing set-up: JSON lines in Lambda (when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, as the SAM
//! template sets it), human-readable text elsewhere. The level comes from `RUST_LOG` [info].

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .map(|v| v.eq_ignore_ascii_case("json"))
        .unwrap_or(false);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .without_time()
            .try_init()
    } else {
        builder.try_init()
    };
}
