//! Multipart copy: how `S3PutObjectCopy` copies an object past the multipart threshold (and any
//! object over CopyObject's 5 GiB limit, which AWS's own job cannot copy).
//!
//! CreateMultipartUpload with the destination's settings, then UploadPartCopy of byte ranges,
//! several in flight, each pinned to the source's ETag so a source that changes mid-copy fails
//! the copy instead of mixing two versions, then CompleteMultipartUpload. Any failure aborts
//! the upload, so no orphaned parts keep costing storage.
//!
//! A multipart upload does not carry the source's metadata or tags over the way CopyObject's
//! `COPY` directives do, so they are read from the source (HeadObject, GetObjectTagging) and
//! set on the upload explicitly.

use super::{CopyParams, Destination, apply_destination, copy_source, tagging_header, target_key};
use crate::chunk::Task;
use crate::job::validate::Tag;
use crate::ops::{OpContext, OpError};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, RequestPayer};
use futures::{StreamExt, TryStreamExt};

use std::collections::HashMap;

/// UploadPartCopy calls in flight per object.
pub const PART_CONCURRENCY: usize = 8;

/// S3 allows at most 10,000 parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// What a HeadObject of the source tells the copy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<aws_smithy_types::DateTime>,
    pub metadata: Option<HashMap<String, String>>,
    pub tag_count: i32,
}

impl Source {
    /// HeadObject of the task's object (its version when the manifest names one), asked as the
    /// payer when the source bucket is requester pays.
    pub async fn head(
        s3: &aws_sdk_s3::Client,
        task: &Task,
        payer: Option<RequestPayer>,
    ) -> Result<Self, OpError> {
        let out = s3
            .head_object()
            .bucket(&task.bucket)
            .key(&task.key)
            .set_version_id(task.version_id.clone())
            .set_request_payer(payer)
            .send()
            .await
            .map_err(|e| OpError::from_sdk(e).for_head(task.version_id.as_deref()))?;
        #[allow(deprecated)] // `expires` is the parsed header; its string twin is the new API.
        let expires = out.expires;
        Ok(Self {
            size: out.content_length.unwrap_or_default().max(0) as u64,
            etag: out.e_tag,
            content_type: out.content_type,
            cache_control: out.cache_control,
            content_disposition: out.content_disposition,
            content_encoding: out.content_encoding,
            content_language: out.content_language,
            expires,
            metadata: out.metadata,
            tag_count: out.tag_count.unwrap_or_default(),
        })
    }
}

/// The byte ranges (inclusive) of the parts of an object of `size` bytes: `part_size` each
/// (raised so that there are at most [`MAX_PARTS`]), the last one shorter.
pub fn part_ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    if size == 0 {
        return Vec::new();
    }
    let part = part_size.max(size.div_ceil(MAX_PARTS)).max(1);
    (0..size.div_ceil(part))
        .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
        .collect()
}

/// Copies one object part by part; the report message says how many parts.
pub async fn copy(
    ctx: &OpContext<'_>,
    p: &CopyParams,
    d: &Destination,
    task: &Task,
    source: &Source,
) -> Result<String, OpError> {
    let key = target_key(p.target_key_prefix.as_deref(), &task.key);
    let mut d = d.clone();
    if d.metadata.is_none() {
        // `COPY`: the upload gets the source's metadata, as CopyObject would give it.
        d.metadata = Some(super::NewMetadata {
            content_type: source.content_type.clone(),
            cache_control: source.cache_control.clone(),
            content_disposition: source.content_disposition.clone(),
            content_encoding: source.content_encoding.clone(),
            content_language: source.content_language.clone(),
            expires: source.expires,
            user: source.metadata.clone(),
        });
    }
    if d.tagging.is_none() && source.tag_count > 0 {
        d.tagging = Some(source_tags(ctx.s3, task, d.request_payer.clone()).await?);
    }
    let created = apply_destination!(ctx.s3.create_multipart_upload(), &d)
        .key(&key)
        .send()
        .await
        .map_err(OpError::from_sdk)?;
    let upload_id = created.upload_id.ok_or_else(|| {
        OpError::permanent(
            500,
            "InternalError",
            "CreateMultipartUpload answered no upload id",
        )
    })?;
    // Cut off at the worker's deadline (this future dropped), the upload is aborted anyway.
    let mut guard = AbortOnDrop {
        ctx: *ctx,
        bucket: d.bucket.clone(),
        key: key.clone(),
        upload_id: upload_id.clone(),
        request_payer: d.request_payer.clone(),
        armed: true,
    };
    let uploaded = upload_parts(ctx, &d, task, source, &key, &upload_id).await;
    guard.armed = false;
    match uploaded {
        Ok(parts) => Ok(format!("Successful (multipart copy in {parts} parts)")),
        Err(e) => {
            if let Err(abort) = ctx
                .s3
                .abort_multipart_upload()
                .bucket(&d.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .set_request_payer(d.request_payer.clone())
                .send()
                .await
            {
                tracing::warn!(
                    key,
                    upload_id,
                    error = %OpError::from_sdk(abort).message,
                    "could not abort a failed multipart copy"
                );
            }
            Err(e)
        }
    }
}

/// Aborts a multipart upload whose copy was dropped before it completed or failed (the task
/// was cut off at the worker's deadline), through [`crate::ops::Cleanup`], which the worker awaits.
struct AbortOnDrop<'a> {
    ctx: OpContext<'a>,
    bucket: String,
    key: String,
    upload_id: String,
    request_payer: Option<aws_sdk_s3::types::RequestPayer>,
    armed: bool,
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let abort = self
            .ctx
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .set_request_payer(self.request_payer.clone());
        let (key, upload_id) = (self.key.clone(), self.upload_id.clone());
        self.ctx.cleanup.spawn(async move {
            match abort.send().await {
                Ok(_) => tracing::info!(
                    key,
                    upload_id,
                    "aborted the multipart copy of a cut-off task"
                ),
                Err(e) => tracing::warn!(
                    key,
                    upload_id,
                    error = %OpError::from_sdk(e).message,
                    "could not abort the multipart copy of a cut-off task"
                ),
            }
        });
    }
}

/// UploadPartCopy of every range, then CompleteMultipartUpload; answers the part count.
async fn upload_parts(
    ctx: &OpContext<'_>,
    d: &Destination,
    task: &Task,
    source: &Source,
    key: &str,
    upload_id: &str,
) -> Result<usize, OpError> {
    let copy_from = copy_source(&task.bucket, &task.key, task.version_id.as_deref());
    let calls: Vec<_> = part_ranges(source.size, ctx.multipart.part_size)
        .into_iter()
        .enumerate()
        .map(|(i, (first, last))| {
            let number = i as i32 + 1;
            let req = ctx
                .s3
                .upload_part_copy()
                .bucket(&d.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(&copy_from)
                .copy_source_range(format!("bytes={first}-{last}"))
                .set_copy_source_if_match(source.etag.clone())
                .set_request_payer(d.request_payer.clone());
            async move {
                let out = req.send().await.map_err(OpError::from_sdk)?;
                let result = out.copy_part_result.ok_or_else(|| {
                    OpError::permanent(500, "InternalError", "UploadPartCopy answered no result")
                })?;
                Ok::<_, OpError>((number, result))
            }
        })
        .collect();
    // Parts finish in any order; the upload lists them by number.
    let mut done: Vec<_> = futures::stream::iter(calls)
        .buffer_unordered(PART_CONCURRENCY)
        .try_collect()
        .await?;
    done.sort_by_key(|(number, _)| *number);
    let parts: Vec<CompletedPart> = done
        .into_iter()
        .map(|(number, r)| {
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(r.e_tag)
                .set_checksum_crc32(r.checksum_crc32)
                .set_checksum_crc32_c(r.checksum_crc32_c)
                .set_checksum_crc64_nvme(r.checksum_crc64_nvme)
                .set_checksum_sha1(r.checksum_sha1)
                .set_checksum_sha256(r.checksum_sha256)
                .build()
        })
        .collect();
    let count = parts.len();
    ctx.s3
        .complete_multipart_upload()
        .bucket(&d.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .set_request_payer(d.request_payer.clone())
        .send()
        .await
        .map_err(OpError::from_sdk)?;
    Ok(count)
}

/// The source's tag set, as the `x-amz-tagging` value of the upload.
async fn source_tags(
    s3: &aws_sdk_s3::Client,
    task: &Task,
    payer: Option<RequestPayer>,
) -> Result<String, OpError> {
    let out = s3
        .get_object_tagging()
        .bucket(&task.bucket)
        .key(&task.key)
        .set_version_id(task.version_id.clone())
        .set_request_payer(payer)
        .send()
        .await
        .map_err(OpError::from_sdk)?;
    let tags: Vec<Tag> = out
        .tag_set
        .into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect();
    Ok(tagging_header(&tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn parts_cover_the_object_exactly() {
        assert_eq!(
            part_ranges(12 * MIB, 5 * MIB),
            [
                (0, 5 * MIB - 1),
                (5 * MIB, 10 * MIB - 1),
                (10 * MIB, 12 * MIB - 1)
            ]
        );
        assert_eq!(part_ranges(10 * MIB, 5 * MIB).len(), 2);
        assert_eq!(part_ranges(1, 5 * MIB), [(0, 0)]);
        assert!(part_ranges(0, 5 * MIB).is_empty());
    }

    #[test]
    fn huge_objects_get_bigger_parts_not_more_than_ten_thousand() {
        let size = 5 * (1u64 << 40); // 5 TiB, S3's largest object
        let parts = part_ranges(size, 512 * MIB);
        assert!(parts.len() as u64 <= MAX_PARTS, "{}", parts.len());
        assert_eq!(parts.last().unwrap().1, size - 1);
        assert!(parts.windows(2).all(|w| w[0].1 + 1 == w[1].0));
    }
}
