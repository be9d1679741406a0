//! Opening a manifest in S3 as a stream of tasks.

use super::ManifestError;
use super::csv::Rows;
use crate::adapters::Objects;
use crate::chunk::Task;
use crate::job::spec::{JobManifest, manifest_columns, parse_object_arn};
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

/// Rows in flight between the parsing thread and the planner: the bound on buffered rows.
pub const STREAM_BUFFER_ROWS: usize = 4096;

/// A manifest being read: its ETag and its tasks, in order.
pub struct ManifestStream {
    /// The ETag of the object actually read (without quotes).
    pub etag: String,
    pub rows: mpsc::Receiver<Result<Task, ManifestError>>,
}

/// Opens the manifest, checks its ETag against the request's, and starts parsing it on a
/// blocking thread; rows arrive through a channel of [`STREAM_BUFFER_ROWS`] at most, so memory
/// stays flat whatever the manifest's length. Tasks are numbered from `first_row`.
pub async fn open_manifest(
    objects: &Objects,
    manifest: &JobManifest,
    first_row: u64,
) -> Result<ManifestStream, ManifestError> {
    let (bucket, key) = parse_object_arn(&manifest.location.object_arn)
        .ok_or_else(|| ManifestError::Spec("Location.ObjectArn is not an S3 object ARN".into()))?;
    let columns = manifest_columns(manifest.spec.fields.as_deref()).map_err(ManifestError::Spec)?;
    let object = objects
        .get_object(
            &bucket,
            &key,
            manifest.location.object_version_id.as_deref(),
        )
        .await
        .map_err(|e| ManifestError::Unreadable {
            bucket: bucket.clone(),
            key: key.clone(),
            reason: e.to_string(),
        })?;
    let etag = object.etag.trim_matches('"').to_string();
    if let Some(expected) = &manifest.location.etag {
        let expected = expected.trim_matches('"');
        if expected != etag {
            return Err(ManifestError::EtagMismatch {
                expected: expected.to_string(),
                actual: etag,
            });
        }
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER_ROWS);
    let reader = SyncIoBridge::new(object.body.into_async_read());
    tokio::task::spawn_blocking(move || {
        for (parsed, item) in Rows::new(reader, columns, first_row).enumerate() {
            let item = item.map_err(|e| ManifestError::Stream {
                rows: parsed as u64,
                reason: e.to_string(),
            });
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    Ok(ManifestStream { etag, rows: rx })
}
