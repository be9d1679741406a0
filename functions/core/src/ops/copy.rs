//! `S3PutObjectCopy`: server-side CopyObject of each object to the target bucket, under the
//! target key prefix, honouring the manifest's version id.

use super::OpError;
use crate::chunk::Task;
use crate::job::spec::{CopyParams, parse_bucket_arn};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, MetadataDirective, ObjectCannedAcl, StorageClass, TaggingDirective,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters left as they are in a `x-amz-copy-source` value; everything else is escaped.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The `x-amz-copy-source` value: `bucket/key` URL-encoded, plus `?versionId=` when given.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut s = format!("{bucket}/{}", utf8_percent_encode(key, COPY_SOURCE));
    if let Some(v) = version_id {
        s.push_str("?versionId=");
        s.push_str(&utf8_percent_encode(v, COPY_SOURCE).to_string());
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

pub async fn run(s3: &aws_sdk_s3::Client, p: &CopyParams, task: &Task) -> Result<String, OpError> {
    let target_bucket = parse_bucket_arn(&p.target_resource).ok_or_else(|| {
        OpError::permanent(400, "InvalidRequest", "TargetResource is not a bucket ARN")
    })?;
    let mut req = s3
        .copy_object()
        .copy_source(copy_source(
            &task.bucket,
            &task.key,
            task.version_id.as_deref(),
        ))
        .bucket(&target_bucket)
        .key(target_key(p.target_key_prefix.as_deref(), &task.key));
    if let Some(sc) = &p.storage_class {
        req = req.storage_class(StorageClass::from(sc.as_str()));
    }
    if let Some(acl) = &p.canned_access_control_list {
        req = req.acl(ObjectCannedAcl::from(acl_header(acl).as_str()));
    }
    if let Some(alg) = &p.checksum_algorithm {
        req = req.checksum_algorithm(ChecksumAlgorithm::from(alg.as_str()));
    }
    if p.metadata_directive.as_deref() == Some("REPLACE") {
        req = req.metadata_directive(MetadataDirective::Replace);
        if let Some(m) = &p.new_object_metadata {
            req = req
                .set_content_type(m.content_type.clone())
                .set_cache_control(m.cache_control.clone())
                .set_content_disposition(m.content_disposition.clone())
                .set_content_encoding(m.content_encoding.clone())
                .set_content_language(m.content_language.clone());
            for (k, v) in &m.user_metadata {
                req = req.metadata(k, v);
            }
        }
    }
    if !p.new_object_tagging.is_empty() {
        let tagging = p
            .new_object_tagging
            .iter()
            .map(|t| {
                format!(
                    "{}={}",
                    utf8_percent_encode(&t.key, NON_ALPHANUMERIC),
                    utf8_percent_encode(&t.value, NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        req = req
            .tagging_directive(TaggingDirective::Replace)
            .tagging(tagging);
    }
    req.send().await.map_err(OpError::from_sdk)?;
    Ok("Successful".into())
}

/// S3 Control names canned ACLs in camel case (`bucketOwnerFullControl`); S3 wants the
/// header form (`bucket-owner-full-control`). Both are accepted.
fn acl_header(acl: &str) -> String {
    let mut out = String::new();
    for c in acl.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn canned_acl_names() {
        assert_eq!(
            acl_header("bucketOwnerFullControl"),
            "bucket-owner-full-control"
        );
        assert_eq!(acl_header("public-read"), "public-read");
    }
}
