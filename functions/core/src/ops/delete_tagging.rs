//! `S3DeleteObjectTagging`: removes every tag of each object, honouring the manifest's version
//! id (so one version's tags go and the others' stay).

use super::{OpContext, OpError, Operation};
use crate::chunk::Task;
use serde::{Deserialize, Serialize};

/// `S3DeleteObjectTagging` parameters: none (`{"S3DeleteObjectTagging": {}}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteTaggingParams {}

impl Operation for DeleteTaggingParams {
    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        ctx.s3
            .delete_object_tagging()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        Ok("Successful".into())
    }
}
