//! `S3PutObjectTagging`: replaces each object's tag set, honouring the manifest's version id.

use super::OpError;
use crate::chunk::Task;
use crate::job::spec::TaggingParams;
use aws_sdk_s3::types::{Tag, Tagging};

pub async fn run(
    s3: &aws_sdk_s3::Client,
    p: &TaggingParams,
    task: &Task,
) -> Result<String, OpError> {
    let tags = p
        .tag_set
        .iter()
        .map(|t| Tag::builder().key(&t.key).value(&t.value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OpError::permanent(400, "InvalidTag", e.to_string()))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .map_err(|e| OpError::permanent(400, "InvalidTag", e.to_string()))?;
    s3.put_object_tagging()
        .bucket(&task.bucket)
        .key(&task.key)
        .set_version_id(task.version_id.clone())
        .tagging(tagging)
        .send()
        .await
        .map_err(OpError::from_sdk)?;
    Ok("Successful".into())
}
