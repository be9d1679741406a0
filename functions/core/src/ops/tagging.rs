//! `S3PutObjectTagging`: replaces each object's tag set, honouring the manifest's version id.

use super::{OpContext, OpError, Operation, invalid};
use crate::chunk::Task;
use crate::job::validate::{Invalid, Tag};
use aws_sdk_s3::types::Tagging;
use serde::{Deserialize, Serialize};

/// `S3PutObjectTagging` parameters (S3 Control `S3SetObjectTaggingOperation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TaggingParams {
    /// The new tag set; empty removes every tag.
    #[serde(default)]
    pub tag_set: Vec<Tag>,
}

/// S3's object tag limits: at most 10 tags, keys of 1–128 and values of 0–256 characters,
/// keys unique. `field` names the list in errors.
pub fn validate_tags(field: &str, tags: &[Tag]) -> Result<(), Invalid> {
    if tags.len() > 10 {
        return Err(invalid(field, "at most 10 tags per object"));
    }
    for (i, t) in tags.iter().enumerate() {
        let n = t.key.chars().count();
        if n == 0 || n > 128 {
            return Err(invalid(
                &format!("{field}[{i}].Key"),
                "must be 1 to 128 characters",
            ));
        }
        if t.value.chars().count() > 256 {
            return Err(invalid(
                &format!("{field}[{i}].Value"),
                "must be at most 256 characters",
            ));
        }
        if tags[..i].iter().any(|o| o.key == t.key) {
            return Err(invalid(
                &format!("{field}[{i}].Key"),
                format!("duplicate tag key {:?}", t.key),
            ));
        }
    }
    Ok(())
}

/// The SDK's tag set for `tags`.
pub fn sdk_tagging(tags: &[Tag]) -> Result<Tagging, OpError> {
    let set = tags
        .iter()
        .map(|t| {
            aws_sdk_s3::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OpError::permanent(400, "InvalidTag", e.to_string()))?;
    Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| OpError::permanent(400, "InvalidTag", e.to_string()))
}

impl Operation for TaggingParams {
    fn validate(&self) -> Result<(), Invalid> {
        validate_tags("TagSet", &self.tag_set)
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        ctx.s3
            .put_object_tagging()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .tagging(sdk_tagging(&self.tag_set)?)
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        Ok("Successful".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn tag_limits_name_the_field() {
        let eleven: Vec<Tag> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(
            validate_tags("TagSet", &eleven).unwrap_err().field,
            "TagSet"
        );
        let dup = [tag("a", "1"), tag("a", "2")];
        assert_eq!(
            validate_tags("TagSet", &dup).unwrap_err().field,
            "TagSet[1].Key"
        );
        let long = [tag("a", &"v".repeat(257))];
        assert_eq!(
            validate_tags("TagSet", &long).unwrap_err().field,
            "TagSet[0].Value"
        );
        assert!(validate_tags("TagSet", &[tag("a", ""), tag("b", "2")]).is_ok());
    }
}
