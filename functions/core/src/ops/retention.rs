//! `S3PutObjectRetention`: sets each object's Object Lock retention (mode and retain-until date),
//! honouring the manifest's version id. The bucket must have Object Lock enabled.

use super::{OpContext, OpError, Operation, invalid, one_of};
use crate::chunk::Task;
use crate::job::timestamp::Timestamp;
use crate::job::validate::Invalid;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
use serde::{Deserialize, Serialize};

/// `S3PutObjectRetention` parameters (S3 Control `S3SetObjectRetentionOperation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RetentionParams {
    /// Allows shortening or removing a `GOVERNANCE` retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_governance_retention: Option<bool>,
    pub retention: Retention,
}

/// S3 Control `S3Retention`: both fields, or neither (which removes a `GOVERNANCE` retention,
/// with `BypassGovernanceRetention`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until_date: Option<Timestamp>,
    /// `COMPLIANCE` or `GOVERNANCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl RetentionParams {
    fn retention(&self) -> ObjectLockRetention {
        ObjectLockRetention::builder()
            .set_mode(
                self.retention
                    .mode
                    .as_deref()
                    .map(ObjectLockRetentionMode::from),
            )
            .set_retain_until_date(self.retention.retain_until_date.map(super::sdk_time))
            .build()
    }
}

impl Operation for RetentionParams {
    fn validate(&self) -> Result<(), Invalid> {
        one_of(
            "Retention.Mode",
            self.retention.mode.as_deref(),
            &["COMPLIANCE", "GOVERNANCE"],
        )?;
        match (&self.retention.mode, &self.retention.retain_until_date) {
            (Some(_), None) => Err(invalid(
                "Retention.RetainUntilDate",
                "is required with Retention.Mode",
            )),
            (None, Some(_)) => Err(invalid(
                "Retention.Mode",
                "is required with Retention.RetainUntilDate",
            )),
            (None, None) if self.bypass_governance_retention != Some(true) => Err(invalid(
                "Retention",
                "needs Mode and RetainUntilDate (an empty Retention removes a GOVERNANCE \
                 retention and needs BypassGovernanceRetention: true)",
            )),
            _ => Ok(()),
        }
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        ctx.s3
            .put_object_retention()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .retention(self.retention())
            .set_bypass_governance_retention(self.bypass_governance_retention)
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        Ok("Successful".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> RetentionParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn retention_carries_mode_and_date() {
        let p = params(
            serde_json::json!({"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": "2035-01-01T00:00:00Z"},
                                          "BypassGovernanceRetention": true}),
        );
        p.validate().unwrap();
        let r = p.retention();
        assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Governance));
        assert_eq!(r.retain_until_date().unwrap().secs(), 2_051_222_400);
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                serde_json::json!({"Retention": {"Mode": "FOREVER", "RetainUntilDate": "2035-01-01"}}),
                "Retention.Mode",
            ),
            (
                serde_json::json!({"Retention": {"Mode": "COMPLIANCE"}}),
                "Retention.RetainUntilDate",
            ),
            (
                serde_json::json!({"Retention": {"RetainUntilDate": "2035-01-01"}}),
                "Retention.Mode",
            ),
            (serde_json::json!({"Retention": {}}), "Retention"),
        ];
        for (body, field) in cases {
            assert_eq!(
                params(body.clone()).validate().unwrap_err().field,
                field,
                "{body}"
            );
        }
        params(serde_json::json!({"Retention": {}, "BypassGovernanceRetention": true}))
            .validate()
            .unwrap();
    }
}
