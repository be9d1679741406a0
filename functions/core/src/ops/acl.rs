//! `S3PutObjectAcl`: sets each object's access control list — a canned ACL, or an explicit
//! list of grants with its owner — honouring the manifest's version id. The grant types are
//! also used by `S3PutObjectCopy`'s `AccessControlGrants`.

use super::{OpContext, OpError, Operation, invalid, one_of};
use crate::chunk::Task;
use crate::job::spec::Invalid;
use aws_sdk_s3::types::{ObjectCannedAcl, Permission, Type};
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

/// The `x-amz-grant-*` header values of a copy: `id="…", uri="…"` per permission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
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

/// The SDK's grant for a validated [`Grant`].
fn sdk_grant(g: &Grant) -> Result<aws_sdk_s3::types::Grant, OpError> {
    let bad = |m: String| OpError::permanent(400, "InvalidArgument", m);
    let grantee = g.grantee.clone().unwrap_or_default();
    let id = grantee.identifier.unwrap_or_default();
    let mut b = aws_sdk_s3::types::Grantee::builder().set_display_name(grantee.display_name);
    b = match grantee.type_identifier.as_deref() {
        Some("emailAddress") => b.r#type(Type::AmazonCustomerByEmail).email_address(id),
        Some("uri") => b.r#type(Type::Group).uri(id),
        _ => b.r#type(Type::CanonicalUser).id(id),
    };
    Ok(aws_sdk_s3::types::Grant::builder()
        .grantee(b.build().map_err(|e| bad(e.to_string()))?)
        .permission(Permission::from(g.permission.as_deref().unwrap_or("READ")))
        .build())
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
    let list = policy.access_control_list.clone().unwrap_or_default();
    let owner = aws_sdk_s3::types::Owner::builder()
        .set_id(list.owner.id)
        .set_display_name(list.owner.display_name)
        .build();
    let grants = list
        .grants
        .iter()
        .map(sdk_grant)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(req.access_control_policy(
        aws_sdk_s3::types::AccessControlPolicy::builder()
            .owner(owner)
            .set_grants(Some(grants))
            .build(),
    ))
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
    fn explicit_policy_becomes_the_request_body() {
        let p = params(
            serde_json::json!({"AccessControlPolicy": {"AccessControlList": {
            "Owner": {"ID": "owner-id", "DisplayName": "me"},
            "Grants": [
                {"Grantee": {"TypeIdentifier": "id", "Identifier": "owner-id"}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"TypeIdentifier": "uri", "Identifier": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"},
                {"Grantee": {"TypeIdentifier": "emailAddress", "Identifier": "a@example.com"}, "Permission": "READ_ACP"}]}}}),
        );
        p.validate().unwrap();
        let s3 = super::super::test_support::s3();
        let req = request(&s3, &p, &task()).unwrap();
        let input = req.as_input();
        assert_eq!(input.get_version_id().as_deref(), Some("v1"));
        let policy = input.get_access_control_policy().clone().unwrap();
        assert_eq!(policy.owner().unwrap().id(), Some("owner-id"));
        let grants = policy.grants();
        assert_eq!(grants.len(), 3);
        assert_eq!(grants[0].grantee().unwrap().r#type(), &Type::CanonicalUser);
        assert_eq!(grants[1].grantee().unwrap().r#type(), &Type::Group);
        assert_eq!(
            grants[1].grantee().unwrap().uri(),
            Some("http://acs.amazonaws.com/groups/global/AllUsers")
        );
        assert_eq!(
            grants[2].grantee().unwrap().email_address(),
            Some("a@example.com")
        );
        assert_eq!(grants[2].permission(), Some(&Permission::ReadAcp));
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
