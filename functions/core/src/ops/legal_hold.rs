//! `S3PutObjectLegalHold`: turns each object's Object Lock legal hold on or off, honouring the
//! manifest's version id. The bucket must have Object Lock enabled.

use super::{OpContext, OpError, Operation, one_of};
use crate::chunk::Task;
use crate::job::validate::Invalid;
use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus};
use serde::{Deserialize, Serialize};

/// `S3PutObjectLegalHold` parameters (S3 Control `S3SetObjectLegalHoldOperation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LegalHoldParams {
    pub legal_hold: LegalHold,
}

/// S3 Control `S3ObjectLockLegalHold`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LegalHold {
    /// `ON` or `OFF`.
    pub status: String,
}

impl Operation for LegalHoldParams {
    fn validate(&self) -> Result<(), Invalid> {
        one_of(
            "LegalHold.Status",
            Some(&self.legal_hold.status),
            &["ON", "OFF"],
        )
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        ctx.s3
            .put_object_legal_hold()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .legal_hold(
                ObjectLockLegalHold::builder()
                    .status(ObjectLockLegalHoldStatus::from(
                        self.legal_hold.status.as_str(),
                    ))
                    .build(),
            )
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        Ok("Successful".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_on_or_off() {
        let p: LegalHoldParams =
            serde_json::from_value(serde_json::json!({"LegalHold": {"Status": "ON"}})).unwrap();
        p.validate().unwrap();
        let p: LegalHoldParams =
            serde_json::from_value(serde_json::json!({"LegalHold": {"Status": "on"}})).unwrap();
        assert_eq!(p.validate().unwrap_err().field, "LegalHold.Status");
        assert!(serde_json::from_value::<LegalHoldParams>(serde_json::json!({})).is_err());
    }
}
