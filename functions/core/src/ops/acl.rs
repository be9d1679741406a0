//! `S3PutObjectAcl`: sets each object's access control list — a canned ACL, or an explicit
//! list of grants — honouring the manifest's version id. The grant types are also used by
//! `S3PutObjectCopy`'s `AccessControlGrants`.
//!
//! An explicit list is sent as PutObjectAcl's `x-amz-grant-*` headers, which replace the ACL
//! with exactly those grants just as an `AccessControlPolicy` body does; the object's owner is
//! kept (an ACL cannot change it), so `Owner` — required by S3 Control's schema — is checked
//! but not sent. Headers also work on the moto emulator, which ignores ACL bodies.

use super::{OpContext, OpError, Operation, invalid, one_of};
use crate::chunk::Task;
use crate::job::validate::Invalid;
use aws_sdk_s3::types::ObjectCannedAcl;
use serde::{Deserialize, Serialize};

/// `S3PutObjectAcl` parameters (S3 Control `S3SetObjectAclOperation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AclParams {
    pub access_control_policy: AccessControlPolicy,
}

/// S3 Control `S3AccessControlPolicy`: exactly one of a canned ACL or an explicit list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccessControlPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_list: Option<AccessControlList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
}

/// S3 Control `S3AccessControlList`: the object's owner and its grants.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccessControlList {
    pub owner: Owner,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// S3 Control `S3ObjectOwner`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Owner {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// S3 Control `S3Grant`: who gets which permission.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Grant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee: Option<Grantee>,
    /// `FULL_CONTROL`, `READ`, `WRITE`, `READ_ACP` or `WRITE_ACP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

/// S3 Control `S3Grantee`: `TypeIdentifier` is `id` (canonical user id), `emailAddress` or
/// `uri` (a group such as `http://acs.amazonaws.com/groups/global/AllUsers`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Grantee {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// S3's canned ACLs for objects, as S3 Control names them.
pub const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "aws-exec-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

const PERMISSIONS: &[&str] = &["FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"];
const GRANTEE_TYPES: &[&str] = &["id", "emailAddress", "uri"];

/// The header form of a canned ACL. S3 Control's values are already in that form
/// (`bucket-owner-full-control`); the camel case of some SDKs (`bucketOwnerFullControl`) is
/// accepted too.
pub fn canned_acl(name: &str) -> Option<ObjectCannedAcl> {
    let mut header = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            header.push('-');
            header.push(c.to_ascii_lowercase());
        } else {
            header.push(c);
        }
    }
    CANNED_ACLS
        .contains(&header.as_str())
        .then(|| ObjectCannedAcl::from(header.as_str()))
}

/// Checks a canned ACL name.
pub fn validate_canned(field: &str, name: &str) -> Result<(), Invalid> {
    canned_acl(name).map(|_| ()).ok_or_else(|| {
        invalid(
            field,
            format!("must be one of {}, got {name:?}", CANNED_ACLS.join(", ")),
        )
    })
}

/// Checks grants; `field` names the list in errors. `WRITE` is refused when `write_allowed` is
/// false (a copy's grant headers have no `WRITE`: it means nothing on an object).
pub fn validate_grants(field: &str, grants: &[Grant], write_allowed: bool) -> Result<(), Invalid> {
    for (i, g) in grants.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let grantee = g
            .grantee
            .as_ref()
            .ok_or_else(|| invalid(&at("Grantee"), "is required"))?;
        let kind = grantee
            .type_identifier
            .as_deref()
            .ok_or_else(|| invalid(&at("Grantee.TypeIdentifier"), "is required"))?;
        one_of(&at("Grantee.TypeIdentifier"), Some(kind), GRANTEE_TYPES)?;
        if grantee.identifier.as_deref().unwrap_or_default().is_empty() {
            return Err(invalid(&at("Grantee.Identifier"), "is required"));
        }
        let permission = g
            .permission
            .as_deref()
            .ok_or_else(|| invalid(&at("Permission"), "is required"))?;
        one_of(&at("Permission"), Some(permission), PERMISSIONS)?;
        if permission == "WRITE" && !write_allowed {
            return Err(invalid(
                &at("Permission"),
                "WRITE does not apply to objects; use FULL_CONTROL, READ, READ_ACP or WRITE_ACP",
            ));
        }
    }
    Ok(())
}

/// The `x-amz-grant-*` header values: `id="…", uri="…"` per permission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
    /// PutObjectAcl only (a copy's grants have no `WRITE`).
    pub write: Option<String>,
    pub write_acp: Option<String>,
}

impl GrantHeaders {
    /// Groups validated grants by permission.
    pub fn new(grants: &[Grant]) -> Self {
        let mut out = Self::default();
        for g in grants {
            let (Some(grantee), Some(permission)) = (&g.grantee, g.permission.as_deref()) else {
                continue;
            };
            let slot = match permission {
                "FULL_CONTROL" => &mut out.full_control,
                "READ" => &mut out.read,
                "READ_ACP" => &mut out.read_acp,
                "WRITE" => &mut out.write,
                "WRITE_ACP" => &mut out.write_acp,
                _ => continue,
            };
            let item = format!(
                "{}=\"{}\"",
                grantee.type_identifier.as_deref().unwrap_or("id"),
                grantee.identifier.as_deref().unwrap_or_default()
            );
            match slot {
                Some(s) => {
                    s.push_str(", ");
                    s.push_str(&item);
                }
                None => *slot = Some(item),
            }
        }
        out
    }
}

impl Operation for AclParams {
    fn validate(&self) -> Result<(), Invalid> {
        let p = &self.access_control_policy;
        match (&p.access_control_list, &p.canned_access_control_list) {
            (Some(_), Some(_)) => Err(invalid(
                "AccessControlPolicy",
                "give either AccessControlList or CannedAccessControlList, not both",
            )),
            (None, None) => Err(invalid(
                "AccessControlPolicy",
                "needs AccessControlList or CannedAccessControlList",
            )),
            (None, Some(canned)) => {
                validate_canned("AccessControlPolicy.CannedAccessControlList", canned)
            }
            (Some(list), None) => {
                if list.owner.id.as_deref().unwrap_or_default().is_empty() {
                    return Err(invalid(
                        "AccessControlPolicy.AccessControlList.Owner.ID",
                        "is required",
                    ));
                }
                validate_grants(
                    "AccessControlPolicy.AccessControlList.Grants",
                    &list.grants,
                    true,
                )
            }
        }
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        request(ctx.s3, self, task)?
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        Ok("Successful".into())
    }
}

/// The PutObjectAcl call for one object.
fn request(
    s3: &aws_sdk_s3::Client,
    p: &AclParams,
    task: &Task,
) -> Result<aws_sdk_s3::operation::put_object_acl::builders::PutObjectAclFluentBuilder, OpError> {
    let req = s3
        .put_object_acl()
        .bucket(&task.bucket)
        .key(&task.key)
        .set_version_id(task.version_id.clone());
    let policy = &p.access_control_policy;
    if let Some(canned) = &policy.canned_access_control_list {
        let acl = canned_acl(canned).ok_or_else(|| {
            OpError::permanent(
                400,
                "InvalidArgument",
                format!("unknown canned ACL {canned}"),
            )
        })?;
        return Ok(req.acl(acl));
    }
    let grants = policy
        .access_control_list
        .as_ref()
        .map(|l| GrantHeaders::new(&l.grants))
        .unwrap_or_default();
    Ok(req
        .set_grant_full_control(grants.full_control)
        .set_grant_read(grants.read)
        .set_grant_read_acp(grants.read_acp)
        .set_grant_write(grants.write)
        .set_grant_write_acp(grants.write_acp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> AclParams {
        serde_json::from_value(v).unwrap()
    }

    fn task() -> Task {
        Task {
            row: 0,
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("v1".into()),
            invalid: None,
        }
    }

    #[test]
    fn canned_names_in_both_spellings() {
        assert_eq!(
            canned_acl("bucket-owner-full-control"),
            Some(ObjectCannedAcl::BucketOwnerFullControl)
        );
        assert_eq!(
            canned_acl("bucketOwnerFullControl"),
            Some(ObjectCannedAcl::BucketOwnerFullControl)
        );
        assert_eq!(canned_acl("public"), None);
    }

    #[test]
    fn exactly_one_policy_kind() {
        let both = params(serde_json::json!({"AccessControlPolicy": {
            "CannedAccessControlList": "private",
            "AccessControlList": {"Owner": {"ID": "o"}, "Grants": []}}}));
        assert_eq!(both.validate().unwrap_err().field, "AccessControlPolicy");
        let none = params(serde_json::json!({"AccessControlPolicy": {}}));
        assert_eq!(none.validate().unwrap_err().field, "AccessControlPolicy");
        let bad =
            params(serde_json::json!({"AccessControlPolicy": {"CannedAccessControlList": "open"}}));
        assert_eq!(
            bad.validate().unwrap_err().field,
            "AccessControlPolicy.CannedAccessControlList"
        );
    }

    #[test]
    fn grants_are_checked_field_by_field() {
        let p = params(
            serde_json::json!({"AccessControlPolicy": {"AccessControlList": {
            "Owner": {"ID": "o"},
            "Grants": [{"Grantee": {"TypeIdentifier": "id", "Identifier": "u"}, "Permission": "READ"},
                       {"Grantee": {"TypeIdentifier": "phone", "Identifier": "1"}, "Permission": "READ"}]}}}),
        );
        assert_eq!(
            p.validate().unwrap_err().field,
            "AccessControlPolicy.AccessControlList.Grants[1].Grantee.TypeIdentifier"
        );
        let no_owner = params(
            serde_json::json!({"AccessControlPolicy": {"AccessControlList": {
            "Owner": {}, "Grants": []}}}),
        );
        assert_eq!(
            no_owner.validate().unwrap_err().field,
            "AccessControlPolicy.AccessControlList.Owner.ID"
        );
    }

    #[test]
    fn explicit_grants_become_grant_headers() {
        let p = params(
            serde_json::json!({"AccessControlPolicy": {"AccessControlList": {
            "Owner": {"ID": "owner-id", "DisplayName": "me"},
            "Grants": [
                {"Grantee": {"TypeIdentifier": "id", "Identifier": "owner-id"}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"TypeIdentifier": "uri", "Identifier": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"},
                {"Grantee": {"TypeIdentifier": "emailAddress", "Identifier": "a@example.com"}, "Permission": "READ_ACP"},
                {"Grantee": {"TypeIdentifier": "id", "Identifier": "writer"}, "Permission": "WRITE"}]}}}),
        );
        p.validate().unwrap();
        let s3 = super::super::test_support::s3();
        let req = request(&s3, &p, &task()).unwrap();
        let input = req.as_input();
        assert_eq!(input.get_version_id().as_deref(), Some("v1"));
        assert_eq!(
            input.get_grant_full_control().as_deref(),
            Some("id=\"owner-id\"")
        );
        assert_eq!(
            input.get_grant_read().as_deref(),
            Some("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        );
        assert_eq!(
            input.get_grant_read_acp().as_deref(),
            Some("emailAddress=\"a@example.com\"")
        );
        assert_eq!(input.get_grant_write().as_deref(), Some("id=\"writer\""));
        assert_eq!(input.get_acl(), &None);
        assert!(input.get_access_control_policy().is_none());
    }

    #[test]
    fn canned_acl_becomes_the_acl_header() {
        let p = params(
            serde_json::json!({"AccessControlPolicy": {"CannedAccessControlList": "bucket-owner-read"}}),
        );
        let s3 = super::super::test_support::s3();
        let req = request(&s3, &p, &task()).unwrap();
        assert_eq!(
            req.as_input().get_acl(),
            &Some(ObjectCannedAcl::BucketOwnerRead)
        );
    }

    #[test]
    fn copy_grant_headers_group_by_permission() {
        let g = |t: &str, id: &str, p: &str| Grant {
            grantee: Some(Grantee {
                type_identifier: Some(t.into()),
                identifier: Some(id.into()),
                display_name: None,
            }),
            permission: Some(p.into()),
        };
        let h = GrantHeaders::new(&[
            g("id", "a", "READ"),
            g("uri", "http://x", "READ"),
            g("emailAddress", "m@x", "WRITE_ACP"),
        ]);
        assert_eq!(h.read.as_deref(), Some("id=\"a\", uri=\"http://x\""));
        assert_eq!(h.write_acp.as_deref(), Some("emailAddress=\"m@x\""));
        assert_eq!(h.full_control, None);
        assert!(validate_grants("G", &[g("id", "a", "WRITE")], false).is_err());
    }
}
