//! `S3ComputeObjectChecksum`: computes each object's checksum at rest and puts it in the
//! report's `ResultMessage`, as AWS's **Compute checksum** job does:
//!
//! ```text
//! {"checksum_base64":"bS9TOQ==","etag":"3c3c…","checksumAlgorithm":"CRC32","checksumType":"FULL_OBJECT","checksum_hex":"6D2F5339"}
//! ```
//!
//! AWS computes inside S3; batchops streams the object (GetObject, honouring the manifest's
//! version id) through the hash, so memory stays flat whatever the size. The report's `etag`
//! is the ETag of the bytes hashed. Without a version id, an object overwritten between the
//! part-size HEADs of a composite checksum and the GET would be hashed with the wrong parts:
//! name versions to rule that out.
//!
//! - `FULL_OBJECT`: the algorithm over every byte (any algorithm).
//! - `COMPOSITE`: the algorithm over the concatenated checksums of the object's multipart parts,
//!   suffixed `-<parts>` — how S3 checksums multipart uploads (for MD5 this is the multipart
//!   ETag). Part boundaries come from HeadObject `partNumber`. An object uploaded in one piece
//!   has no parts: its composite checksum is its full-object one, reported as `FULL_OBJECT`.
//!   `CRC64NVME` has no composite form.

use super::{OpContext, OpError, Operation, invalid, one_of};
use crate::chunk::Task;
use crate::job::validate::Invalid;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::str::FromStr;

/// `S3ComputeObjectChecksum` parameters (S3 Control `S3ComputeObjectChecksumOperation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ChecksumParams {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `MD5`, `SHA1` or `SHA256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// `FULL_OBJECT` (default) or `COMPOSITE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
}

pub const ALGORITHMS: &[&str] = &["CRC32", "CRC32C", "CRC64NVME", "MD5", "SHA1", "SHA256"];

/// One running hash.
enum Hasher {
    Md5(Md5),
    Sdk(Box<dyn aws_smithy_checksums::http::HttpChecksum>),
}

impl Hasher {
    fn new(algorithm: &str) -> Self {
        if algorithm == "MD5" {
            // The SDK's checksum crate maps "md5" to CRC32 (it dropped MD5), so MD5 is ours.
            return Hasher::Md5(Md5::new());
        }
        let alg = aws_smithy_checksums::ChecksumAlgorithm::from_str(algorithm)
            .expect("validated algorithm");
        Hasher::Sdk(alg.into_impl())
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sdk(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sdk(h) => h.finalize().to_vec(),
        }
    }
}

/// The checksum of a byte stream fed in any chunks: full-object, or composite over parts of
/// the given sizes.
pub struct Digest {
    algorithm: String,
    current: Hasher,
    /// Composite only: sizes of the parts not finished yet (the first is the current one's
    /// remaining bytes), and the finished parts' checksums.
    parts: Option<(VecDeque<u64>, Vec<u8>, usize)>,
}

impl Digest {
    pub fn full(algorithm: &str) -> Self {
        Self {
            algorithm: algorithm.into(),
            current: Hasher::new(algorithm),
            parts: None,
        }
    }

    pub fn composite(algorithm: &str, part_sizes: Vec<u64>) -> Self {
        Self {
            parts: Some((part_sizes.into(), Vec::new(), 0)),
            ..Self::full(algorithm)
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        let Some((sizes, done, count)) = &mut self.parts else {
            self.current.update(bytes);
            return;
        };
        while !bytes.is_empty() {
            let Some(left) = sizes.front_mut() else {
                // More bytes than the parts said: they belong to the last part.
                self.current.update(bytes);
                return;
            };
            let take = (*left).min(bytes.len() as u64) as usize;
            self.current.update(&bytes[..take]);
            bytes = &bytes[take..];
            *left -= take as u64;
            if *left == 0 {
                sizes.pop_front();
                let part = std::mem::replace(&mut self.current, Hasher::new(&self.algorithm));
                done.extend(part.finish());
                *count += 1;
            }
        }
    }

    /// The checksum, and the part count for a composite one.
    pub fn finish(self) -> (Vec<u8>, Option<usize>) {
        match self.parts {
            None => (self.current.finish(), None),
            Some((_, done, count)) => {
                let mut whole = Hasher::new(&self.algorithm);
                whole.update(&done);
                (whole.finish(), Some(count))
            }
        }
    }
}

/// The report's `ResultMessage`: AWS's JSON, with `-<parts>` on a composite checksum.
pub fn result_message(
    algorithm: &str,
    checksum: &[u8],
    parts: Option<usize>,
    etag: &str,
) -> String {
    let suffix = parts.map(|n| format!("-{n}")).unwrap_or_default();
    serde_json::json!({
        "checksum_base64": format!("{}{suffix}", base64::engine::general_purpose::STANDARD.encode(checksum)),
        "etag": etag,
        "checksumAlgorithm": algorithm,
        "checksumType": if parts.is_some() { "COMPOSITE" } else { "FULL_OBJECT" },
        "checksum_hex": format!("{}{suffix}", hex::encode_upper(checksum)),
    })
    .to_string()
}

/// Sizes of the object's multipart parts, or `None` for an object uploaded in one piece.
async fn part_sizes(s3: &aws_sdk_s3::Client, task: &Task) -> Result<Option<Vec<u64>>, OpError> {
    let head = |n: i32| {
        s3.head_object()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .part_number(n)
            .send()
    };
    let first = head(1)
        .await
        .map_err(|e| OpError::from_sdk(e).for_head(task.version_id.as_deref()))?;
    let count = first.parts_count.unwrap_or(1);
    if count <= 1 {
        return Ok(None);
    }
    let mut sizes = vec![first.content_length.unwrap_or_default().max(0) as u64];
    for n in 2..=count {
        let part = head(n)
            .await
            .map_err(|e| OpError::from_sdk(e).for_head(task.version_id.as_deref()))?;
        sizes.push(part.content_length.unwrap_or_default().max(0) as u64);
    }
    Ok(Some(sizes))
}

impl Operation for ChecksumParams {
    fn validate(&self) -> Result<(), Invalid> {
        let algorithm = self
            .checksum_algorithm
            .as_deref()
            .ok_or_else(|| invalid("ChecksumAlgorithm", "is required"))?;
        one_of("ChecksumAlgorithm", Some(algorithm), ALGORITHMS)?;
        one_of(
            "ChecksumType",
            self.checksum_type.as_deref(),
            &["FULL_OBJECT", "COMPOSITE"],
        )?;
        if algorithm == "CRC64NVME" && self.checksum_type.as_deref() == Some("COMPOSITE") {
            return Err(invalid(
                "ChecksumType",
                "CRC64NVME supports only FULL_OBJECT",
            ));
        }
        Ok(())
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        let algorithm = self.checksum_algorithm.as_deref().unwrap_or("CRC64NVME");
        let mut digest = match self.checksum_type.as_deref() {
            Some("COMPOSITE") => match part_sizes(ctx.s3, task).await? {
                Some(sizes) => Digest::composite(algorithm, sizes),
                None => Digest::full(algorithm),
            },
            _ => Digest::full(algorithm),
        };
        let out = ctx
            .s3
            .get_object()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .send()
            .await
            .map_err(OpError::from_sdk)?;
        let etag = out
            .e_tag
            .as_deref()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        let mut body = out.body;
        while let Some(chunk) = body.try_next().await.map_err(|e| OpError {
            http_status: 503,
            code: "ServiceUnavailable".into(),
            message: format!("reading the object failed: {e}"),
            retryable: true,
        })? {
            digest.update(&chunk);
        }
        let (checksum, parts) = digest.finish();
        Ok(result_message(algorithm, &checksum, parts, &etag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(algorithm: &str, data: &[u8]) -> String {
        let mut d = Digest::full(algorithm);
        // Odd chunking must not matter.
        for chunk in data.chunks(3) {
            d.update(chunk);
        }
        hex::encode_upper(d.finish().0)
    }

    #[test]
    fn full_object_checksums_match_the_reference_values() {
        let check = b"123456789";
        assert_eq!(full("CRC32", check), "CBF43926");
        assert_eq!(full("CRC32C", check), "E3069283");
        assert_eq!(full("CRC64NVME", check), "AE8B14860A799888");
        assert_eq!(full("MD5", b""), "D41D8CD98F00B204E9800998ECF8427E");
        assert_eq!(
            full("SHA1", b"abc"),
            "A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
        assert_eq!(
            full("SHA256", b"abc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn composite_md5_is_the_multipart_etag() {
        let data: Vec<u8> = (0..25u32).flat_map(|i| i.to_le_bytes()).collect();
        let sizes = vec![40, 40, 20];
        let mut d = Digest::composite("MD5", sizes.clone());
        for chunk in data.chunks(7) {
            d.update(chunk);
        }
        let (sum, parts) = d.finish();
        let mut concat = Vec::new();
        let mut at = 0;
        for s in sizes {
            concat.extend(Md5::digest(&data[at..at + s as usize]));
            at += s as usize;
        }
        assert_eq!(sum, Md5::digest(&concat).to_vec());
        assert_eq!(parts, Some(3));
        let msg: serde_json::Value =
            serde_json::from_str(&result_message("MD5", &sum, parts, "e")).unwrap();
        assert!(msg["checksum_hex"].as_str().unwrap().ends_with("-3"));
        assert_eq!(msg["checksumType"], "COMPOSITE");
    }

    #[test]
    fn message_is_awss_json() {
        let msg: serde_json::Value = serde_json::from_str(&result_message(
            "CRC32",
            &[0x6d, 0x2f, 0x53, 0x39],
            None,
            "3c3c",
        ))
        .unwrap();
        assert_eq!(
            msg,
            serde_json::json!({"checksum_base64": "bS9TOQ==", "etag": "3c3c", "checksumAlgorithm": "CRC32",
                               "checksumType": "FULL_OBJECT", "checksum_hex": "6D2F5339"})
        );
    }

    #[test]
    fn validation_names_the_field() {
        let p = |a: Option<&str>, t: Option<&str>| ChecksumParams {
            checksum_algorithm: a.map(String::from),
            checksum_type: t.map(String::from),
        };
        assert_eq!(
            p(None, None).validate().unwrap_err().field,
            "ChecksumAlgorithm"
        );
        assert_eq!(
            p(Some("XOR"), None).validate().unwrap_err().field,
            "ChecksumAlgorithm"
        );
        assert_eq!(
            p(Some("MD5"), Some("HALF")).validate().unwrap_err().field,
            "ChecksumType"
        );
        assert_eq!(
            p(Some("CRC64NVME"), Some("COMPOSITE"))
                .validate()
                .unwrap_err()
                .field,
            "ChecksumType"
        );
        p(Some("SHA256"), Some("COMPOSITE")).validate().unwrap();
    }
}
