//! Dry run (beyond AWS): a `"DryRun": true` job runs nothing. Each task is a HeadObject of its
//! object — honouring the manifest's version id — and reports `would run <Operation>` when the
//! object is there, or the HEAD's error when it is not. It asks as the payer when the operation
//! would (a copy with `RequesterPays`).

use super::{JobOperation, OpContext, OpError};
use crate::chunk::Task;

/// Checks one object; the message names the operation that would run.
pub async fn run(ctx: &OpContext<'_>, op: &JobOperation, task: &Task) -> Result<String, OpError> {
    let operation = op.name();
    let payer = match op {
        JobOperation::S3PutObjectCopy(p) => p.request_payer(),
        _ => None,
    };
    let out = ctx
        .s3
        .head_object()
        .bucket(&task.bucket)
        .key(&task.key)
        .set_version_id(task.version_id.clone())
        .set_request_payer(payer)
        .send()
        .await
        .map_err(|e| OpError::from_sdk(e).for_head(task.version_id.as_deref()))?;
    Ok(format!(
        "would run {operation} ({} bytes)",
        out.content_length.unwrap_or_default()
    ))
}
