//! Powers a job can ask for that cannot be undone or that open objects to the world: the stack
//! grants each only when its deployer opts in (the template's `Allow*` parameters, off by
//! default; `batchops dev` allows them unless told otherwise). The API refuses a job that asks
//! for one the stack does not grant (403 naming the field), and the worker refuses its tasks
//! (`AccessDenied` rows) should the stack's settings have changed since the job was created.
//! The IAM policies grant the matching actions only when enabled (template-check asserts it).

use super::JobOperation;
use super::acl::{Grant, canned_acl};

/// One opt-in power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// `S3DeleteObject`: a delete on an unversioned bucket cannot be undone.
    Delete,
    /// `BypassGovernanceRetention`: shortens or removes a GOVERNANCE lock.
    GovernanceBypass,
    /// A `COMPLIANCE` Object Lock: nobody, the account's root included, can remove it early.
    ComplianceLock,
    /// A grant to `AllUsers` or `AuthenticatedUsers`, or a `public-*` / `authenticated-read`
    /// canned ACL: the objects become readable (or writable) by anyone.
    PublicGrant,
}

impl Power {
    /// The environment variable that enables it, and the template parameter that sets that.
    pub fn setting(self) -> (&'static str, &'static str) {
        match self {
            Self::Delete => ("BATCHOPS_ALLOW_DELETE", "AllowDeleteObject"),
            Self::GovernanceBypass => ("BATCHOPS_ALLOW_GOVERNANCE_BYPASS", "AllowGovernanceBypass"),
            Self::ComplianceLock => ("BATCHOPS_ALLOW_COMPLIANCE_LOCK", "AllowComplianceLock"),
            Self::PublicGrant => ("BATCHOPS_ALLOW_PUBLIC_GRANTS", "AllowPublicGrants"),
        }
    }

    pub const ALL: [Power; 4] = [
        Self::Delete,
        Self::GovernanceBypass,
        Self::ComplianceLock,
        Self::PublicGrant,
    ];
}

/// Canned ACLs that open an object to everyone or to every AWS account.
const PUBLIC_CANNED: &[&str] = &["public-read", "public-read-write", "authenticated-read"];

fn public_canned(name: Option<&str>) -> bool {
    name.and_then(canned_acl)
        .is_some_and(|acl| PUBLIC_CANNED.contains(&acl.as_str()))
}

/// The first grant (by index) to the `AllUsers` or `AuthenticatedUsers` group.
fn public_grant(grants: &[Grant]) -> Option<usize> {
    grants.iter().position(|g| {
        g.grantee.as_ref().is_some_and(|e| {
            e.type_identifier
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("uri"))
                && e.identifier.as_deref().is_some_and(|id| {
                    let group = id.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                    group == "AllUsers" || group == "AuthenticatedUsers"
                })
        })
    })
}

impl JobOperation {
    /// The opt-in powers the operation's parameters ask for, each with the field (full name)
    /// that asks.
    pub fn powers(&self) -> Vec<(String, Power)> {
        let name = self.name();
        let mut found = Vec::new();
        let mut ask = |field: &str, power| found.push((format!("Operation.{name}{field}"), power));
        match self {
            Self::S3DeleteObject(_) => ask("", Power::Delete),
            Self::S3PutObjectRetention(p) => {
                if p.bypass_governance_retention == Some(true) {
                    ask(".BypassGovernanceRetention", Power::GovernanceBypass);
                }
                if p.retention.mode.as_deref() == Some("COMPLIANCE") {
                    ask(".Retention.Mode", Power::ComplianceLock);
                }
            }
            Self::S3PutObjectAcl(p) => {
                let policy = &p.access_control_policy;
                if public_canned(policy.canned_access_control_list.as_deref()) {
                    ask(
                        ".AccessControlPolicy.CannedAccessControlList",
                        Power::PublicGrant,
                    );
                }
                if let Some(i) = policy
                    .access_control_list
                    .as_ref()
                    .and_then(|l| public_grant(&l.grants))
                {
                    ask(
                        &format!(".AccessControlPolicy.AccessControlList.Grants[{i}].Grantee"),
                        Power::PublicGrant,
                    );
                }
            }
            Self::S3PutObjectCopy(p) => {
                if p.object_lock_mode.as_deref() == Some("COMPLIANCE") {
                    ask(".ObjectLockMode", Power::ComplianceLock);
                }
                if public_canned(p.canned_access_control_list.as_deref()) {
                    ask(".CannedAccessControlList", Power::PublicGrant);
                }
                if let Some(i) = public_grant(&p.access_control_grants) {
                    ask(
                        &format!(".AccessControlGrants[{i}].Grantee"),
                        Power::PublicGrant,
                    );
                }
            }
            _ => {}
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(v: serde_json::Value) -> JobOperation {
        serde_json::from_value(v).unwrap()
    }

    fn asked(v: serde_json::Value) -> Vec<(String, Power)> {
        op(v).powers()
    }

    const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

    #[test]
    fn each_destructive_or_public_parameter_names_its_power() {
        assert_eq!(
            asked(json!({"S3DeleteObject": {}})),
            [("Operation.S3DeleteObject".to_string(), Power::Delete)]
        );
        assert_eq!(
            asked(
                json!({"S3PutObjectRetention": {"BypassGovernanceRetention": true,
                "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": "2030-01-01T00:00:00Z"}}})
            ),
            [
                (
                    "Operation.S3PutObjectRetention.BypassGovernanceRetention".to_string(),
                    Power::GovernanceBypass
                ),
                (
                    "Operation.S3PutObjectRetention.Retention.Mode".to_string(),
                    Power::ComplianceLock
                )
            ]
        );
        for canned in [
            "public-read",
            "public-read-write",
            "authenticated-read",
            "publicRead",
        ] {
            assert_eq!(
                asked(
                    json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": canned}}})
                ),
                [(
                    "Operation.S3PutObjectAcl.AccessControlPolicy.CannedAccessControlList"
                        .to_string(),
                    Power::PublicGrant
                )],
                "{canned}"
            );
        }
        let grants = json!([
            {"Grantee": {"TypeIdentifier": "id", "Identifier": "abc"}, "Permission": "READ"},
            {"Grantee": {"TypeIdentifier": "uri", "Identifier": ALL_USERS}, "Permission": "READ"}
        ]);
        assert_eq!(
            asked(
                json!({"S3PutObjectAcl": {"AccessControlPolicy": {"AccessControlList": {
                "Owner": {"ID": "abc"}, "Grants": grants.clone()}}}})
            ),
            [(
                "Operation.S3PutObjectAcl.AccessControlPolicy.AccessControlList.Grants[1].Grantee"
                    .to_string(),
                Power::PublicGrant
            )]
        );
        let copy = asked(
            json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::t",
            "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z",
            "AccessControlGrants": [{"Grantee": {"TypeIdentifier": "uri",
                "Identifier": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"},
                "Permission": "READ"}]}}),
        );
        assert_eq!(
            copy.iter()
                .map(|(f, p)| (f.as_str(), *p))
                .collect::<Vec<_>>(),
            [
                (
                    "Operation.S3PutObjectCopy.ObjectLockMode",
                    Power::ComplianceLock
                ),
                (
                    "Operation.S3PutObjectCopy.AccessControlGrants[0].Grantee",
                    Power::PublicGrant
                )
            ]
        );
    }

    #[test]
    fn ordinary_parameters_ask_for_nothing() {
        for v in [
            json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::t",
                "CannedAccessControlList": "bucket-owner-full-control", "ObjectLockMode": "GOVERNANCE",
                "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z"}}),
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "private"}}}),
            json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE",
                "RetainUntilDate": "2030-01-01T00:00:00Z"}}}),
            json!({"S3PutObjectTagging": {"TagSet": []}}),
        ] {
            assert!(asked(v.clone()).is_empty(), "{v}");
        }
    }
}
