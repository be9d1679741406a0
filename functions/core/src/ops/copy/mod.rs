//! `S3PutObjectCopy`: server-side copy of each object to the target bucket, under the target key
//! prefix, honouring the manifest's version id.
//!
//! S3's CopyObject copies at most 5 GiB. Past the multipart threshold (configurable, [5 GiB])
//! the copy is done part by part ([`multipart`]) — something AWS's own job cannot do.
//! With the threshold at 5 GiB or more the copy tries CopyObject first and switches to a
//! multipart copy only when S3 answers that the source is too large, so ordinary copies cost
//! one request; below 5 GiB a HeadObject reads the size first.

pub mod multipart;

use super::acl::{GrantHeaders, validate_canned, validate_grants};
use super::tagging::validate_tags;
use super::{OpContext, OpError, Operation, invalid, one_of};
use crate::chunk::Task;
use crate::job::arn::parse_bucket_arn;
use crate::job::timestamp::Timestamp;
use crate::job::validate::{Invalid, Tag};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, MetadataDirective, ObjectCannedAcl, ObjectLockLegalHoldStatus,
    ObjectLockMode, RequestPayer, ServerSideEncryption, StorageClass, TaggingDirective,
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The largest source CopyObject accepts: 5 GiB.
pub const MAX_COPY_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// `S3PutObjectCopy` parameters (S3 Control `S3CopyObjectOperation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CopyParams {
    /// `arn:aws:s3:::bucket` of the destination.
    pub target_resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
    /// Explicit grants on the copies (not together with a canned ACL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_control_grants: Vec<super::acl::Grant>,
    /// `COPY` or `REPLACE`; `REPLACE` when absent and `NewObjectMetadata` sets metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_directive: Option<String>,
    /// Copy only sources modified since then (`x-amz-copy-source-if-modified-since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since_constraint: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_metadata: Option<ObjectMetadata>,
    /// Absent: the source's tags are copied. Present (even empty): the copies get exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_tagging: Option<Vec<Tag>>,
    /// `x-amz-website-redirect-location` of the copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_location: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requester_pays: bool,
    /// Copy only sources not modified since then (`x-amz-copy-source-if-unmodified-since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_modified_since_constraint: Option<Timestamp>,
    /// Encrypt the copies with this KMS key (SSE-KMS).
    #[serde(
        rename = "SSEAwsKmsKeyId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sse_aws_kms_key_id: Option<String>,
    /// `ON` or `OFF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_legal_hold_status: Option<String>,
    /// `COMPLIANCE` or `GOVERNANCE`, with `ObjectLockRetainUntilDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_retain_until_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket_key_enabled: bool,
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
}

/// `NewObjectMetadata` of a copy (S3 Control `S3ObjectMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObjectMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `x-amz-meta-*` pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    /// Accepted for compatibility with S3 Control bodies; S3 sets the length of a copy itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<i64>,
    /// Accepted for compatibility with S3 Control bodies; S3 computes the copy's MD5 itself.
    #[serde(
        rename = "ContentMD5",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The `Expires` header of the copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_expires_date: Option<Timestamp>,
    /// Like `RequesterPays`: the requester pays for the copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requester_charged: bool,
    /// `AES256` (SSE-S3) or `KMS` (SSE-KMS).
    #[serde(
        rename = "SSEAlgorithm",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sse_algorithm: Option<String>,
}

impl ObjectMetadata {
    /// Whether it sets any of the object's metadata (as opposed to only encryption or payer).
    fn sets_metadata(&self) -> bool {
        self.cache_control.is_some()
            || self.content_disposition.is_some()
            || self.content_encoding.is_some()
            || self.content_language.is_some()
            || self.content_type.is_some()
            || self.http_expires_date.is_some()
            || !self.user_metadata.is_empty()
    }
}

/// S3 Control's storage classes for a copy.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "GLACIER",
    "INTELLIGENT_TIERING",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];

/// The checksum algorithms CopyObject can compute for the copies.
pub const CHECKSUM_ALGORITHMS: &[&str] = &["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// S3 allows 2 KB of user metadata per object.
const USER_METADATA_MAX_BYTES: usize = 2048;

/// The `x-amz-copy-source` value: `bucket/key` URL-encoded, plus `?versionId=` when given.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    // The key codec of manifests and reports: unreserved characters and `/` kept.
    let mut s = format!("{bucket}/{}", crate::manifest::csv::encode_key(key));
    if let Some(v) = version_id {
        s.push_str("?versionId=");
        s.push_str(&crate::manifest::csv::encode_key(v));
    }
    s
}

/// The destination key: the target prefix joined to the source key.
pub fn target_key(prefix: Option<&str>, key: &str) -> String {
    match prefix {
        None | Some("") => key.to_string(),
        Some(p) if p.ends_with('/') => format!("{p}{key}"),
        Some(p) => format!("{p}/{key}"),
    }
}

/// A tag set as the `x-amz-tagging` header carries it (URL query form).
pub fn tagging_header(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| {
            format!(
                "{}={}",
                utf8_percent_encode(&t.key, NON_ALPHANUMERIC),
                utf8_percent_encode(&t.value, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The new metadata of the copies (`MetadataDirective` `REPLACE`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewMetadata {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<aws_smithy_types::DateTime>,
    pub user: Option<std::collections::HashMap<String, String>>,
}

/// Everything a copy sets on its destination, resolved once from [`CopyParams`] and applied
/// alike to CopyObject and to CreateMultipartUpload (their setters share names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Destination {
    pub bucket: String,
    pub storage_class: Option<StorageClass>,
    pub acl: Option<ObjectCannedAcl>,
    pub grants: GrantHeaders,
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub lock_mode: Option<ObjectLockMode>,
    pub lock_until: Option<aws_smithy_types::DateTime>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
    pub redirect: Option<String>,
    pub request_payer: Option<RequestPayer>,
    /// `Some` for `REPLACE`: the metadata the copies get instead of the source's.
    pub metadata: Option<NewMetadata>,
    /// `Some` when `NewObjectTagging` is given: the `x-amz-tagging` value (maybe empty).
    pub tagging: Option<String>,
}

impl CopyParams {
    /// `Requester` when the source bucket is requester pays (`RequesterPays`, or the
    /// metadata's `RequesterCharged`): every request of the copy then says so.
    pub fn request_payer(&self) -> Option<RequestPayer> {
        let charged = self
            .new_object_metadata
            .as_ref()
            .is_some_and(|m| m.requester_charged);
        (self.requester_pays || charged).then_some(RequestPayer::Requester)
    }
}

impl Destination {
    pub fn new(p: &CopyParams) -> Result<Self, OpError> {
        let bucket = parse_bucket_arn(&p.target_resource).ok_or_else(|| {
            OpError::permanent(400, "InvalidRequest", "TargetResource is not a bucket ARN")
        })?;
        let meta = p.new_object_metadata.clone().unwrap_or_default();
        let replace = match p.metadata_directive.as_deref() {
            Some(d) => d == "REPLACE",
            None => meta.sets_metadata(),
        };
        let sse = match meta.sse_algorithm.as_deref() {
            Some("AES256") => Some(ServerSideEncryption::Aes256),
            Some(_) => Some(ServerSideEncryption::AwsKms),
            None => p
                .sse_aws_kms_key_id
                .as_ref()
                .map(|_| ServerSideEncryption::AwsKms),
        };
        Ok(Self {
            bucket,
            storage_class: p.storage_class.as_deref().map(StorageClass::from),
            acl: p
                .canned_access_control_list
                .as_deref()
                .and_then(super::acl::canned_acl),
            grants: GrantHeaders::new(&p.access_control_grants),
            sse,
            kms_key_id: p.sse_aws_kms_key_id.clone(),
            bucket_key_enabled: p.bucket_key_enabled.then_some(true),
            checksum_algorithm: p.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from),
            lock_mode: p.object_lock_mode.as_deref().map(ObjectLockMode::from),
            lock_until: p.object_lock_retain_until_date.map(crate::ops::sdk_time),
            legal_hold: p
                .object_lock_legal_hold_status
                .as_deref()
                .map(ObjectLockLegalHoldStatus::from),
            redirect: p.redirect_location.clone(),
            request_payer: p.request_payer(),
            metadata: replace.then(|| NewMetadata {
                content_type: meta.content_type.clone(),
                cache_control: meta.cache_control.clone(),
                content_disposition: meta.content_disposition.clone(),
                content_encoding: meta.content_encoding.clone(),
                content_language: meta.content_language.clone(),
                expires: meta.http_expires_date.map(crate::ops::sdk_time),
                user: (!meta.user_metadata.is_empty())
                    .then(|| meta.user_metadata.clone().into_iter().collect()),
            }),
            tagging: p.new_object_tagging.as_deref().map(tagging_header),
        })
    }
}

/// Applies a [`Destination`]'s settings to a CopyObject or CreateMultipartUpload builder.
macro_rules! apply_destination {
    ($req:expr, $d:expr) => {{
        let d = $d;
        let mut req = $req
            .bucket(&d.bucket)
            .set_storage_class(d.storage_class.clone())
            .set_acl(d.acl.clone())
            .set_grant_full_control(d.grants.full_control.clone())
            .set_grant_read(d.grants.read.clone())
            .set_grant_read_acp(d.grants.read_acp.clone())
            .set_grant_write_acp(d.grants.write_acp.clone())
            .set_server_side_encryption(d.sse.clone())
            .set_ssekms_key_id(d.kms_key_id.clone())
            .set_bucket_key_enabled(d.bucket_key_enabled)
            .set_checksum_algorithm(d.checksum_algorithm.clone())
            .set_object_lock_mode(d.lock_mode.clone())
            .set_object_lock_retain_until_date(d.lock_until)
            .set_object_lock_legal_hold_status(d.legal_hold.clone())
            .set_website_redirect_location(d.redirect.clone())
            .set_request_payer(d.request_payer.clone());
        if let Some(m) = &d.metadata {
            req = req
                .set_content_type(m.content_type.clone())
                .set_cache_control(m.cache_control.clone())
                .set_content_disposition(m.content_disposition.clone())
                .set_content_encoding(m.content_encoding.clone())
                .set_content_language(m.content_language.clone())
                .set_expires(m.expires)
                .set_metadata(m.user.clone());
        }
        if let Some(t) = &d.tagging {
            req = req.tagging(t);
        }
        req
    }};
}
pub(crate) use apply_destination;

/// The CopyObject call for one object.
pub fn copy_request(
    s3: &aws_sdk_s3::Client,
    p: &CopyParams,
    d: &Destination,
    task: &Task,
) -> aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder {
    let mut req = apply_destination!(s3.copy_object(), d)
        .key(target_key(p.target_key_prefix.as_deref(), &task.key))
        .copy_source(copy_source(
            &task.bucket,
            &task.key,
            task.version_id.as_deref(),
        ))
        .set_copy_source_if_modified_since(p.modified_since_constraint.map(crate::ops::sdk_time))
        .set_copy_source_if_unmodified_since(
            p.un_modified_since_constraint.map(crate::ops::sdk_time),
        );
    if d.metadata.is_some() {
        req = req.metadata_directive(MetadataDirective::Replace);
    }
    if d.tagging.is_some() {
        req = req.tagging_directive(TaggingDirective::Replace);
    }
    req
}

/// Whether S3 refused a CopyObject because the source is over 5 GiB.
pub fn source_too_large(e: &OpError) -> bool {
    e.code == "InvalidRequest" && e.message.contains("larger than the maximum allowable size")
}

impl Operation for CopyParams {
    fn validate(&self) -> Result<(), Invalid> {
        if parse_bucket_arn(&self.target_resource).is_none() {
            return Err(invalid(
                "TargetResource",
                "must be a bucket ARN like arn:aws:s3:::bucket",
            ));
        }
        if let Some(p) = &self.target_key_prefix
            && p.len() > 1024
        {
            return Err(invalid("TargetKeyPrefix", "must be at most 1024 bytes"));
        }
        one_of(
            "StorageClass",
            self.storage_class.as_deref(),
            STORAGE_CLASSES,
        )?;
        if let Some(acl) = &self.canned_access_control_list {
            validate_canned("CannedAccessControlList", acl)?;
            if !self.access_control_grants.is_empty() {
                return Err(invalid(
                    "AccessControlGrants",
                    "give either CannedAccessControlList or AccessControlGrants, not both",
                ));
            }
        }
        validate_grants("AccessControlGrants", &self.access_control_grants, false)?;
        one_of(
            "MetadataDirective",
            self.metadata_directive.as_deref(),
            &["COPY", "REPLACE"],
        )?;
        if let Some(m) = &self.new_object_metadata {
            if self.metadata_directive.as_deref() == Some("COPY") && m.sets_metadata() {
                return Err(invalid(
                    "NewObjectMetadata",
                    "sets metadata, which MetadataDirective COPY would ignore; use REPLACE",
                ));
            }
            one_of(
                "NewObjectMetadata.SSEAlgorithm",
                m.sse_algorithm.as_deref(),
                &["AES256", "KMS"],
            )?;
            if m.sse_algorithm.as_deref() == Some("AES256") && self.sse_aws_kms_key_id.is_some() {
                return Err(invalid(
                    "SSEAwsKmsKeyId",
                    "needs SSEAlgorithm KMS (it is AES256)",
                ));
            }
            let mut bytes = 0;
            for (k, v) in &m.user_metadata {
                let token = |c: char| c.is_ascii_alphanumeric() || "-_.!#$%&'*+^`|~".contains(c);
                if k.is_empty() || !k.chars().all(token) {
                    return Err(invalid(
                        "NewObjectMetadata.UserMetadata",
                        format!("key {k:?} is not a valid header name"),
                    ));
                }
                bytes += k.len() + v.len();
            }
            if bytes > USER_METADATA_MAX_BYTES {
                return Err(invalid(
                    "NewObjectMetadata.UserMetadata",
                    format!("is {bytes} bytes; S3 allows {USER_METADATA_MAX_BYTES}"),
                ));
            }
        }
        if let Some(tags) = &self.new_object_tagging {
            validate_tags("NewObjectTagging", tags)?;
        }
        one_of(
            "ObjectLockLegalHoldStatus",
            self.object_lock_legal_hold_status.as_deref(),
            &["ON", "OFF"],
        )?;
        one_of(
            "ObjectLockMode",
            self.object_lock_mode.as_deref(),
            &["COMPLIANCE", "GOVERNANCE"],
        )?;
        match (&self.object_lock_mode, &self.object_lock_retain_until_date) {
            (Some(_), None) => {
                return Err(invalid(
                    "ObjectLockRetainUntilDate",
                    "is required with ObjectLockMode",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "ObjectLockMode",
                    "is required with ObjectLockRetainUntilDate",
                ));
            }
            _ => {}
        }
        one_of(
            "ChecksumAlgorithm",
            self.checksum_algorithm.as_deref(),
            CHECKSUM_ALGORITHMS,
        )
    }

    fn buckets(&self) -> Vec<(&'static str, String)> {
        parse_bucket_arn(&self.target_resource)
            .map(|b| vec![("TargetResource", b)])
            .unwrap_or_default()
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        let d = Destination::new(self)?;
        if ctx.multipart.threshold < MAX_COPY_OBJECT_BYTES {
            let source = multipart::Source::head(ctx.s3, task, d.request_payer.clone()).await?;
            if source.size > ctx.multipart.threshold {
                return multipart::copy(ctx, self, &d, task, &source).await;
            }
        }
        match copy_request(ctx.s3, self, &d, task).send().await {
            Ok(_) => Ok("Successful".into()),
            Err(e) => {
                let e = OpError::from_sdk(e);
                if !source_too_large(&e) {
                    return Err(e);
                }
                let source = multipart::Source::head(ctx.s3, task, d.request_payer.clone()).await?;
                multipart::copy(ctx, self, &d, task, &source).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> CopyParams {
        serde_json::from_value(v).unwrap()
    }

    fn task() -> Task {
        Task {
            row: 0,
            bucket: "src".into(),
            key: "a b.txt".into(),
            version_id: Some("v1".into()),
            invalid: None,
        }
    }

    #[test]
    fn copy_source_is_encoded() {
        assert_eq!(
            copy_source("b", "a b/c+d%e,f", None),
            "b/a%20b/c%2Bd%25e%2Cf"
        );
        assert_eq!(
            copy_source("b", "caf\u{e9}", Some("v 1")),
            "b/caf%C3%A9?versionId=v%201"
        );
    }

    #[test]
    fn target_keys_join_the_prefix() {
        assert_eq!(target_key(None, "k"), "k");
        assert_eq!(target_key(Some("out"), "k"), "out/k");
        assert_eq!(target_key(Some("out/"), "k"), "out/k");
    }

    #[test]
    fn every_parameter_reaches_the_copy_request() {
        let p = params(serde_json::json!({
            "TargetResource": "arn:aws:s3:::dst",
            "TargetKeyPrefix": "out",
            "StorageClass": "STANDARD_IA",
            "AccessControlGrants": [{"Grantee": {"TypeIdentifier": "id", "Identifier": "abc"}, "Permission": "READ"}],
            "MetadataDirective": "REPLACE",
            "ModifiedSinceConstraint": "2020-01-01T00:00:00Z",
            "UnModifiedSinceConstraint": "2040-01-01T00:00:00Z",
            "NewObjectMetadata": {"ContentType": "text/plain", "CacheControl": "no-cache",
                                  "ContentDisposition": "inline", "ContentEncoding": "identity",
                                  "ContentLanguage": "en", "HttpExpiresDate": "2031-01-01T00:00:00Z",
                                  "UserMetadata": {"team": "data"}, "SSEAlgorithm": "KMS"},
            "NewObjectTagging": [{"Key": "a b", "Value": "c&d"}],
            "RedirectLocation": "/elsewhere",
            "RequesterPays": true,
            "SSEAwsKmsKeyId": "key-1",
            "BucketKeyEnabled": true,
            "ObjectLockLegalHoldStatus": "ON",
            "ObjectLockMode": "GOVERNANCE",
            "ObjectLockRetainUntilDate": "2035-01-01T00:00:00Z",
            "ChecksumAlgorithm": "SHA256"
        }));
        p.validate().unwrap();
        let s3 = super::super::test_support::s3();
        let d = Destination::new(&p).unwrap();
        let req = copy_request(&s3, &p, &d, &task());
        let i = req.as_input();
        assert_eq!(i.get_bucket().as_deref(), Some("dst"));
        assert_eq!(i.get_key().as_deref(), Some("out/a b.txt"));
        assert_eq!(
            i.get_copy_source().as_deref(),
            Some("src/a%20b.txt?versionId=v1")
        );
        assert_eq!(i.get_storage_class(), &Some(StorageClass::StandardIa));
        assert_eq!(i.get_grant_read().as_deref(), Some("id=\"abc\""));
        assert_eq!(
            i.get_metadata_directive(),
            &Some(MetadataDirective::Replace)
        );
        assert_eq!(i.get_content_type().as_deref(), Some("text/plain"));
        assert_eq!(i.get_cache_control().as_deref(), Some("no-cache"));
        assert_eq!(i.get_content_language().as_deref(), Some("en"));
        assert_eq!(i.get_expires().unwrap().secs(), 1_924_992_000);
        assert_eq!(
            i.get_metadata()
                .as_ref()
                .unwrap()
                .get("team")
                .map(String::as_str),
            Some("data")
        );
        assert_eq!(i.get_tagging_directive(), &Some(TaggingDirective::Replace));
        assert_eq!(i.get_tagging().as_deref(), Some("a%20b=c%26d"));
        assert_eq!(
            i.get_website_redirect_location().as_deref(),
            Some("/elsewhere")
        );
        assert_eq!(i.get_request_payer(), &Some(RequestPayer::Requester));
        assert_eq!(
            i.get_server_side_encryption(),
            &Some(ServerSideEncryption::AwsKms)
        );
        assert_eq!(i.get_ssekms_key_id().as_deref(), Some("key-1"));
        assert_eq!(i.get_bucket_key_enabled(), &Some(true));
        assert_eq!(
            i.get_object_lock_legal_hold_status(),
            &Some(ObjectLockLegalHoldStatus::On)
        );
        assert_eq!(i.get_object_lock_mode(), &Some(ObjectLockMode::Governance));
        assert_eq!(
            i.get_object_lock_retain_until_date().unwrap().secs(),
            2_051_222_400
        );
        assert_eq!(i.get_checksum_algorithm(), &Some(ChecksumAlgorithm::Sha256));
        assert_eq!(
            i.get_copy_source_if_modified_since().unwrap().secs(),
            1_577_836_800
        );
        assert!(i.get_copy_source_if_unmodified_since().is_some());
    }

    #[test]
    fn a_plain_copy_keeps_the_sources_metadata_and_tags() {
        let p = params(serde_json::json!({"TargetResource": "arn:aws:s3:::dst"}));
        let s3 = super::super::test_support::s3();
        let d = Destination::new(&p).unwrap();
        let i = copy_request(&s3, &p, &d, &task()).as_input().clone();
        assert_eq!(i.get_metadata_directive(), &None);
        assert_eq!(i.get_tagging_directive(), &None);
        assert_eq!(i.get_server_side_encryption(), &None);
        assert_eq!(i.get_acl(), &None);
    }

    #[test]
    fn empty_new_tagging_removes_the_tags() {
        let p = params(
            serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "NewObjectTagging": []}),
        );
        let d = Destination::new(&p).unwrap();
        assert_eq!(d.tagging.as_deref(), Some(""));
        let s3 = super::super::test_support::s3();
        let i = copy_request(&s3, &p, &d, &task()).as_input().clone();
        assert_eq!(i.get_tagging_directive(), &Some(TaggingDirective::Replace));
    }

    #[test]
    fn new_metadata_implies_replace_and_sse_alone_does_not() {
        let p = params(serde_json::json!({"TargetResource": "arn:aws:s3:::dst",
            "NewObjectMetadata": {"UserMetadata": {"a": "1"}}}));
        assert!(Destination::new(&p).unwrap().metadata.is_some());
        let p = params(serde_json::json!({"TargetResource": "arn:aws:s3:::dst",
            "NewObjectMetadata": {"SSEAlgorithm": "AES256"}}));
        let d = Destination::new(&p).unwrap();
        assert!(d.metadata.is_none());
        assert_eq!(d.sse, Some(ServerSideEncryption::Aes256));
    }

    #[test]
    fn validation_names_each_field() {
        let cases = [
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "StorageClass": "COLD"}),
                "StorageClass",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "MetadataDirective": "MERGE"}),
                "MetadataDirective",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "MetadataDirective": "COPY",
                                   "NewObjectMetadata": {"ContentType": "a/b"}}),
                "NewObjectMetadata",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "NewObjectMetadata": {"SSEAlgorithm": "DES"}}),
                "NewObjectMetadata.SSEAlgorithm",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "SSEAwsKmsKeyId": "k",
                                   "NewObjectMetadata": {"SSEAlgorithm": "AES256"}}),
                "SSEAwsKmsKeyId",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "NewObjectMetadata": {"UserMetadata": {"bad key": "v"}}}),
                "NewObjectMetadata.UserMetadata",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "ObjectLockMode": "GOVERNANCE"}),
                "ObjectLockRetainUntilDate",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "ObjectLockLegalHoldStatus": "MAYBE"}),
                "ObjectLockLegalHoldStatus",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "ChecksumAlgorithm": "MD5"}),
                "ChecksumAlgorithm",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst", "CannedAccessControlList": "private",
                    "AccessControlGrants": [{"Grantee": {"TypeIdentifier": "id", "Identifier": "x"}, "Permission": "READ"}]}),
                "AccessControlGrants",
            ),
            (
                serde_json::json!({"TargetResource": "arn:aws:s3:::dst",
                    "NewObjectTagging": [{"Key": "", "Value": "x"}]}),
                "NewObjectTagging[0].Key",
            ),
        ];
        for (body, field) in cases {
            let err = params(body.clone()).validate().unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
    }

    #[test]
    fn too_large_sources_are_recognised() {
        let e = OpError::permanent(
            400,
            "InvalidRequest",
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        );
        assert!(source_too_large(&e));
        assert!(!source_too_large(&OpError::permanent(
            404,
            "NoSuchKey",
            "missing"
        )));
    }
}
