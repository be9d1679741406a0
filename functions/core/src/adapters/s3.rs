//! The object-store seam: the pipeline's own S3 calls (manifest reads, per-chunk results,
//! reports). The per-object task calls live in [`crate::ops`] and use [`Objects::tasks`].

use crate::{Error, Result};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use md5::{Digest, Md5};

#[derive(Clone, Debug)]
pub struct Objects {
    control: Client,
    tasks: Client,
}

/// What HeadObject tells about an object.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub etag: String,
    pub size: i64,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), keys without the prefix, lowercase.
    pub metadata: std::collections::HashMap<String, String>,
}

/// One object of a listing (ListObjectsV2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: i64,
    /// `LastModified`, milliseconds since the epoch.
    pub last_modified_ms: Option<i64>,
    pub storage_class: Option<String>,
}

/// A file being written a part at a time ([`Objects::start_upload`]).
pub struct Upload {
    bucket: String,
    key: String,
    upload_id: String,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    md5: Md5,
}

/// An object being read.
pub struct GotObject {
    pub etag: String,
    pub body: Body,
}

/// An object's body as it arrives, without the SDK's types: its chunks one by one, or one
/// reader.
pub struct Body(ByteStream);

impl Body {
    /// The next chunk of bytes, `None` at the end.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<bytes::Bytes>> {
        self.0.try_next().await.map_err(std::io::Error::other)
    }

    /// The whole body, collected (for bodies known to be small).
    pub async fn collect(self) -> std::io::Result<bytes::Bytes> {
        self.0
            .collect()
            .await
            .map(|data| data.into_bytes())
            .map_err(std::io::Error::other)
    }

    pub fn into_async_read(self) -> impl tokio::io::AsyncRead + Send + Unpin + 'static {
        self.0.into_async_read()
    }
}

/// An S3 SDK error as the crate's error, keeping the HTTP status and the full message.
pub(crate) fn s3_error<E>(
    op: &'static str,
    bucket: &str,
    key: &str,
    err: aws_sdk_s3::error::SdkError<E, crate::error::HttpResponse>,
) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    Error::S3 {
        op,
        bucket: bucket.into(),
        key: key.into(),
        status,
        source: aws_sdk_s3::error::DisplayErrorContext(&err)
            .to_string()
            .into(),
    }
}

impl Objects {
    pub fn new(control: Client, tasks: Client) -> Self {
        Self { control, tasks }
    }

    /// The client the per-object operations use (SDK retries off; see [`crate::ops`]).
    pub fn tasks(&self) -> &Client {
        &self.tasks
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<GotObject> {
        self.get(bucket, key, version_id, None, None).await
    }

    /// Reads an object from byte `offset` on (a ranged GetObject). With `if_match`, S3
    /// answers 412 if the object's ETag is no longer that one.
    pub async fn get_object_from(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        offset: u64,
        if_match: Option<&str>,
    ) -> Result<GotObject> {
        let range = format!("bytes={offset}-");
        self.get(bucket, key, version_id, Some(range), if_match)
            .await
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<String>,
        if_match: Option<&str>,
    ) -> Result<GotObject> {
        let out = self
            .control
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(String::from))
            .set_range(range)
            .set_if_match(if_match.map(|e| format!("\"{}\"", e.trim_matches('"'))))
            .send()
            .await
            .map_err(|e| s3_error("GetObject", bucket, key, e))?;
        Ok(GotObject {
            etag: out.e_tag().unwrap_or_default().to_string(),
            body: Body(out.body),
        })
    }

    /// One page (up to 1,000 keys) of ListObjectsV2 under `prefix`, after `start_after` or
    /// from a continuation token; returns the objects and the next page's token.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Vec<Listed>, Option<String>)> {
        let out = self
            .control
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
            .set_start_after(start_after.map(String::from))
            .set_continuation_token(token.map(String::from))
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", bucket, prefix, e))?;
        let objects = out
            .contents()
            .iter()
            .map(|o| Listed {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0),
                last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
                storage_class: o.storage_class().map(|c| c.as_str().to_string()),
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) {
            out.next_continuation_token().map(String::from)
        } else {
            None
        };
        Ok((objects, next))
    }

    /// The common prefixes one level below `prefix` (ListObjectsV2 with delimiter `/`), every
    /// page.
    pub async fn list_prefixes(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut prefixes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .control
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", bucket, prefix, e))?;
            prefixes.extend(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(String::from)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => return Ok(prefixes),
            }
        }
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Result<Head> {
        let out = self
            .control
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("HeadObject", bucket, key, e))?;
        Ok(Head {
            etag: out
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            size: out.content_length().unwrap_or(0),
            content_type: out.content_type().map(String::from),
            metadata: out
                .metadata()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    pub async fn get_bytes(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        self.get_bytes_if(bucket, key, None).await
    }

    /// [`Objects::get_bytes`], only while the object's ETag is `if_match` (else S3's 412).
    pub async fn get_bytes_if(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<Vec<u8>> {
        let got = self.get(bucket, key, None, None, if_match).await?;
        let data = got.body.collect().await.map_err(|e| Error::S3 {
            op: "GetObject",
            bucket: bucket.into(),
            key: key.into(),
            status: None,
            source: Box::new(e),
        })?;
        Ok(data.to_vec())
    }

    /// Writes an object with a `Content-MD5` header, so S3 rejects a corrupted upload.
    /// Returns the hex MD5 of the body.
    pub async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<String> {
        let digest = Md5::digest(&body);
        self.control
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .content_md5(base64::engine::general_purpose::STANDARD.encode(digest))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", bucket, key, e))?;
        Ok(hex::encode(digest))
    }

    /// Writes an object only if none exists at the key (`If-None-Match: *`): `false`, writing
    /// nothing, when one does (S3's 412, or 409 for a concurrent conditional write).
    pub async fn put_bytes_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<bool> {
        let digest = Md5::digest(&body);
        let result = self
            .control
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .content_md5(base64::engine::general_purpose::STANDARD.encode(digest))
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", bucket, key, e));
        match result {
            Ok(_) => Ok(true),
            Err(Error::S3 {
                status: Some(412 | 409),
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// [`Objects::get_bytes`], or `None` when there is no such object.
    pub async fn get_bytes_opt(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        match self.get_bytes(bucket, key).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::S3 {
                status: Some(404), ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts a multipart upload: a file written a part at a time, so that no more than a
    /// part is ever held in memory.
    pub async fn start_upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> Result<Upload> {
        let out = self
            .control
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", bucket, key, e))?;
        let upload_id = out.upload_id().unwrap_or_default().to_string();
        if upload_id.is_empty() {
            return Err(Error::S3 {
                op: "CreateMultipartUpload",
                bucket: bucket.into(),
                key: key.into(),
                status: None,
                source: "no UploadId in the answer".into(),
            });
        }
        Ok(Upload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id,
            parts: Vec::new(),
            md5: Md5::new(),
        })
    }

    /// Uploads the next part (every part but the last at least 5 MiB, as S3 requires), with a
    /// `Content-MD5` header.
    pub async fn upload_part(&self, upload: &mut Upload, body: Vec<u8>) -> Result<()> {
        let digest = Md5::digest(&body);
        upload.md5.update(&body);
        let number = upload.parts.len() as i32 + 1;
        let out = self
            .control
            .upload_part()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .part_number(number)
            .content_md5(base64::engine::general_purpose::STANDARD.encode(digest))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", &upload.bucket, &upload.key, e))?;
        upload.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Completes an upload; returns the hex MD5 of the whole file (what a report manifest's
    /// `MD5Checksum` holds: a multipart object's ETag is not its MD5).
    pub async fn complete_upload(&self, upload: &Upload) -> Result<String> {
        let Upload {
            bucket,
            key,
            upload_id,
            parts,
            md5,
        } = upload;
        self.control
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", bucket, key, e))?;
        Ok(hex::encode(md5.clone().finalize()))
    }

    /// Abandons an upload (its parts are deleted). Best effort: a failure is logged, and the
    /// parts stay until the bucket's lifecycle rule or a later abort removes them.
    pub async fn abort_upload(&self, upload: Upload) {
        if let Err(e) = self
            .control
            .abort_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .send()
            .await
        {
            tracing::warn!(key = upload.key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "could not abort a multipart upload");
        }
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.control
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", bucket, key, e))?;
        Ok(())
    }
}
