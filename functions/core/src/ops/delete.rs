//! `S3DeleteObject` (beyond AWS): deletes each object. With the manifest's version id it deletes
//! that version for good; without one, on a versioned bucket, it adds a delete marker and keeps
//! every version (on an unversioned bucket the object is gone).

use super::{OpContext, OpError, Operation};
use crate::chunk::Task;
use serde::{Deserialize, Serialize};

/// `S3DeleteObject` parameters: none (`{"S3DeleteObject": {}}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {}

impl Operation for DeleteParams {
    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        let out = ctx
            .s3
            .delete_object()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        Ok(
            match (&task.version_id, out.delete_marker, out.version_id) {
                (None, Some(true), Some(marker)) => format!("Successful (delete marker {marker})"),
                _ => "Successful".into(),
            },
        )
    }
}
