//! `S3InitiateRestoreObject`: starts a restore of each archived object (S3 Glacier Flexible
//! Retrieval, S3 Glacier Deep Archive, or an S3 Intelligent-Tiering archive tier), honouring the
//! manifest's version id. Like AWS's job it only *initiates* the restore: the task succeeds
//! once S3 accepts the request, hours before the object is readable.
//!
//! As in AWS: an object in no archive class fails its task (S3's `InvalidObjectState`); an
//! object already being restored fails with S3's `RestoreAlreadyInProgress` unless S3 accepts
//! the request (a faster tier upgrades an ongoing restore); an object already restored
//! succeeds, S3 extending its expiry to `ExpirationInDays` from now.

use super::{OpContext, OpError, Operation, invalid, one_of};
use crate::chunk::Task;
use crate::job::validate::Invalid;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
use serde::{Deserialize, Serialize};

/// `S3InitiateRestoreObject` parameters (S3 Control `S3InitiateRestoreObjectOperation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RestoreParams {
    /// Days the restored copy stays readable. Required (≥ 1) for S3 Glacier objects; must be
    /// absent for S3 Intelligent-Tiering archive tiers, whose restores do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_in_days: Option<i32>,
    /// `BULK` or `STANDARD` (S3's default); Batch Operations offers no `EXPEDITED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glacier_job_tier: Option<String>,
}

impl RestoreParams {
    fn request(&self) -> RestoreRequest {
        let tier = self.glacier_job_tier.as_deref().map(|t| {
            GlacierJobParameters::builder()
                .tier(Tier::from(if t == "BULK" { "Bulk" } else { "Standard" }))
                .build()
                .expect("tier is set")
        });
        RestoreRequest::builder()
            .set_days(self.expiration_in_days)
            .set_glacier_job_parameters(tier)
            .build()
    }
}

/// Explains S3's answers that mean "this object cannot be restored now".
fn explain(e: OpError) -> OpError {
    let why = match e.code.as_str() {
        "InvalidObjectState" => {
            "the object is not in an archive storage class (S3 Glacier Flexible Retrieval, \
             S3 Glacier Deep Archive or an S3 Intelligent-Tiering archive tier), so there is \
             nothing to restore"
        }
        "RestoreAlreadyInProgress" => {
            "a restore of this object is already in progress; a second request succeeds only \
             with a faster tier"
        }
        _ => return e,
    };
    OpError {
        message: format!("{why} ({})", e.message),
        ..e
    }
}

impl Operation for RestoreParams {
    fn validate(&self) -> Result<(), Invalid> {
        if let Some(d) = self.expiration_in_days
            && d < 1
        {
            return Err(invalid("ExpirationInDays", "must be at least 1"));
        }
        one_of(
            "GlacierJobTier",
            self.glacier_job_tier.as_deref(),
            &["BULK", "STANDARD"],
        )
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        ctx.s3
            .restore_object()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .restore_request(self.request())
            .send()
            .await
            .map_err(|e| explain(OpError::from_sdk(e)))?;
        Ok("Successful".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_days_and_tier() {
        let p = RestoreParams {
            expiration_in_days: Some(3),
            glacier_job_tier: Some("BULK".into()),
        };
        p.validate().unwrap();
        let r = p.request();
        assert_eq!(r.days(), Some(3));
        assert_eq!(r.glacier_job_parameters().unwrap().tier(), &Tier::Bulk);
        let intelligent = RestoreParams::default().request();
        assert_eq!(intelligent.days(), None);
        assert!(intelligent.glacier_job_parameters().is_none());
    }

    #[test]
    fn validation_names_the_field() {
        let p = RestoreParams {
            expiration_in_days: Some(0),
            glacier_job_tier: None,
        };
        assert_eq!(p.validate().unwrap_err().field, "ExpirationInDays");
        let p = RestoreParams {
            expiration_in_days: None,
            glacier_job_tier: Some("EXPEDITED".into()),
        };
        assert_eq!(p.validate().unwrap_err().field, "GlacierJobTier");
    }

    #[test]
    fn state_errors_are_explained_and_keep_s3s_code() {
        let e = explain(OpError::permanent(
            409,
            "RestoreAlreadyInProgress",
            "Object restore is already in progress",
        ));
        assert_eq!(
            (e.http_status, e.code.as_str()),
            (409, "RestoreAlreadyInProgress")
        );
        assert!(
            e.message
                .starts_with("a restore of this object is already in progress")
        );
        let e = explain(OpError::permanent(403, "InvalidObjectState", "nope"));
        assert!(
            e.message.contains("not in an archive storage class"),
            "{}",
            e.message
        );
        let other = OpError::permanent(404, "NoSuchKey", "gone");
        assert_eq!(explain(other.clone()), other);
    }
}
