//! Tracing set-up: JSON lines in Lambda (when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, as the SAM
//! template sets it), human-readable text elsewhere. The level comes from `RUST_LOG` [info].
//!
//! Lambda filters JSON application logs by their `level` and keeps their `timestamp` only when
//! it is RFC 3339; a line without one is taken as INFO whatever its level, so the template's
//! `ApplicationLogLevel` would filter nothing. Every JSON line therefore carries both.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .map(|v| v.eq_ignore_ascii_case("json"))
        .unwrap_or(false);
    if json {
        let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_target(false)
            .try_init();
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The Lambda subscriber: one JSON object a line, with `timestamp` (RFC 3339, UTC) and `level`.
fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .json()
        .with_current_span(true)
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// Security issue §7: Lambda's log-level filtering needs `level` and an RFC 3339
    /// `timestamp` in every JSON line.
    #[test]
    fn lambda_log_lines_carry_an_rfc3339_timestamp_and_a_level() {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(json_subscriber(buffer.clone()), || {
            tracing::warn!(job = "j-1", "a warning");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN", "{line}");
        let stamp = line["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("no timestamp: {line}"));
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("timestamp {stamp} is not RFC 3339: {e}"));
        assert_eq!(line["fields"]["message"], "a warning");
    }
}
