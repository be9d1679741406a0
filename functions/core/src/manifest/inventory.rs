//! `S3InventoryReport_CSV_20161130`: an Amazon S3 Inventory report used as a manifest.
//!
//! The job's `Manifest.Location` names the report's `manifest.json`, as S3 Inventory writes it
//! (`destination-prefix/source-bucket/config-ID/YYYY-MM-DDTHH-MMZ/manifest.json`):
//!
//! ```json
//! {"sourceBucket": "src", "destinationBucket": "arn:aws:s3:::inventory-bucket",
//!  "version": "2016-11-30", "creationTimestamp": "1514944800000", "fileFormat": "CSV",
//!  "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size",
//!  "files": [{"key": "src/config/data/939c6d46.csv.gz", "size": 2147, "MD5checksum": "f111…"}]}
//! ```
//!
//! Each of `files` is a gzip CSV file in the destination bucket, without a header, whose
//! columns are those of `fileSchema` in that order. batchops reads `Bucket`, `Key`,
//! `VersionId` (when the inventory lists versions, each task acts on its row's version) and
//! `IsDeleteMarker` (delete markers are skipped: there is no object to act on); the other
//! columns are ignored. Keys are URL-encoded as S3 Inventory writes them (form encoding:
//! `%XX` is a byte and `+` a space) and decoded with [`super::csv::decode_key`].
//!
//! Before any task is queued every data file is checked to exist with the size
//! `manifest.json` gives, and each file's MD5 is checked against its `MD5checksum` before its
//! rows are used. A missing or corrupt file fails the job with a `FailureReasons` entry.
//! Files are streamed (download → gunzip → CSV) on a blocking thread: memory stays flat.

use super::spec::JobManifest;
use super::{Item, ManifestError, ManifestStream, Position, Resume};
use crate::Config;
use crate::adapters::Objects;
use crate::adapters::s3::Body;
use crate::chunk::Task;
use crate::job::arn::{parse_bucket_arn, parse_object_arn, valid_bucket_name};
use futures::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio_util::io::SyncIoBridge;

/// Largest `manifest.json` read (S3 Inventory's are a few KiB per thousand data files).
const MAX_MANIFEST_JSON_BYTES: usize = 64 * 1024 * 1024;

/// An inventory report's `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryManifest {
    pub source_bucket: String,
    /// `arn:aws:s3:::bucket` (a bare name is accepted too): where the data files are.
    pub destination_bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    pub file_format: String,
    pub file_schema: String,
    pub files: Vec<DataFile>,
}

/// One data file of an inventory report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub key: String,
    #[serde(default)]
    pub size: u64,
    #[serde(rename = "MD5checksum")]
    pub md5_checksum: String,
}

/// Positions of the columns batchops reads, from `fileSchema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InventoryColumns {
    pub count: usize,
    pub bucket: usize,
    pub key: usize,
    pub version_id: Option<usize>,
    pub is_delete_marker: Option<usize>,
}

impl InventoryColumns {
    /// Reads `fileSchema` (`"Bucket, Key, VersionId, …"`); `Bucket` and `Key` are required.
    pub fn from_schema(schema: &str) -> Result<Self, ManifestError> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let required = |name: &str| {
            find(name).ok_or_else(|| {
                ManifestError::Inventory(format!("fileSchema {schema:?} has no {name} column"))
            })
        };
        Ok(Self {
            count: names.len(),
            bucket: required("Bucket")?,
            key: required("Key")?,
            version_id: find("VersionId"),
            is_delete_marker: find("IsDeleteMarker"),
        })
    }
}

impl InventoryManifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Self = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError::Inventory(format!("manifest.json: {e}")))?;
        if !m.file_format.eq_ignore_ascii_case("CSV") {
            return Err(ManifestError::Inventory(format!(
                "fileFormat {:?} is not supported; batchops reads CSV inventory reports",
                m.file_format
            )));
        }
        Ok(m)
    }

    /// The bucket holding the data files.
    pub fn data_bucket(&self) -> Result<String, ManifestError> {
        parse_bucket_arn(&self.destination_bucket).ok_or_else(|| {
            ManifestError::Inventory(format!(
                "destinationBucket {:?} is not a bucket ARN",
                self.destination_bucket
            ))
        })
    }
}

/// Parses the rows of one data file (already gunzipped). Delete markers are skipped; every
/// record, skipped or not, counts for [`Position::Inventory`]'s `record`.
pub struct InventoryRows<R: std::io::Read> {
    reader: ::csv::Reader<R>,
    record: ::csv::ByteRecord,
    columns: InventoryColumns,
    source_bucket: String,
    /// Records read from this file so far.
    pub records: u64,
    /// The number the next task gets.
    pub next_row: u64,
}

impl<R: std::io::Read> InventoryRows<R> {
    pub fn new(input: R, columns: InventoryColumns, source_bucket: &str, first_row: u64) -> Self {
        Self {
            reader: ::csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(input),
            record: ::csv::ByteRecord::new(),
            columns,
            source_bucket: source_bucket.to_string(),
            records: 0,
            next_row: first_row,
        }
    }

    /// Reads past `n` records without making tasks of them (resuming inside a file).
    pub fn skip(&mut self, n: u64) -> Result<(), ::csv::Error> {
        while self.records < n && self.reader.read_byte_record(&mut self.record)? {
            self.records += 1;
        }
        Ok(())
    }

    fn field(&self, i: usize) -> &str {
        std::str::from_utf8(self.record.get(i).unwrap_or_default()).unwrap_or_default()
    }

    /// The next task and the number of records before it in this file.
    pub fn next_item(&mut self) -> Option<Result<(Task, u64), ::csv::Error>> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Err(e) => return Some(Err(e)),
                Ok(false) => return None,
                Ok(true) => {}
            }
            let at = self.records;
            self.records += 1;
            if self
                .record
                .iter()
                .all(|f| f.iter().all(u8::is_ascii_whitespace))
            {
                continue;
            }
            let c = self.columns;
            if c.is_delete_marker
                .is_some_and(|i| self.field(i).eq_ignore_ascii_case("true"))
            {
                continue;
            }
            let row = self.next_row;
            self.next_row += 1;
            return Some(Ok((self.to_task(row), at)));
        }
    }

    fn to_task(&self, row: u64) -> Task {
        let c = self.columns;
        let raw_key = self.field(c.key).to_string();
        let mut task = Task {
            row,
            bucket: self.field(c.bucket).to_string(),
            key: raw_key.clone(),
            version_id: c
                .version_id
                .map(|i| self.field(i).to_string())
                .filter(|v| !v.is_empty()),
            invalid: None,
        };
        let problem = if self.record.len() != c.count {
            Some(format!(
                "row {} has {} columns, the inventory's fileSchema names {}",
                row + 1,
                self.record.len(),
                c.count
            ))
        } else if self.record.iter().any(|f| std::str::from_utf8(f).is_err()) {
            Some(format!("row {} is not valid UTF-8", row + 1))
        } else if !valid_bucket_name(&task.bucket) {
            Some(format!(
                "row {}: not a valid bucket name: {:?}",
                row + 1,
                task.bucket
            ))
        } else if task.bucket != self.source_bucket {
            Some(format!(
                "row {}: bucket {:?} is not the inventory's sourceBucket {:?}",
                row + 1,
                task.bucket,
                self.source_bucket
            ))
        } else {
            match super::csv::decode_key(&raw_key) {
                Ok(k) if k.is_empty() => Some(format!("row {}: the key is empty", row + 1)),
                Ok(k) => {
                    task.key = k;
                    None
                }
                Err(e) => Some(format!("row {}: {e}", row + 1)),
            }
        };
        task.invalid = problem;
        task.bounded()
    }
}

/// Opens an inventory report at its start or at a saved position.
pub async fn open(
    objects: &Objects,
    config: &Config,
    manifest: &JobManifest,
    resume: Option<&Resume>,
) -> Result<ManifestStream, ManifestError> {
    let (bucket, key) = parse_object_arn(&manifest.location.object_arn)
        .ok_or_else(|| ManifestError::Spec("Location.ObjectArn is not an S3 object ARN".into()))?;
    let unreadable = ManifestError::unreadable;
    let got = objects
        .get_object(
            &bucket,
            &key,
            manifest.location.object_version_id.as_deref(),
        )
        .await
        .map_err(|e| unreadable(&bucket, &key, e))?;
    let etag = got.etag.trim_matches('"').to_string();
    match (resume, &manifest.location.etag) {
        (Some(r), _) if r.etag != etag => return Err(ManifestError::Changed { bucket, key }),
        (None, Some(expected)) if expected.trim_matches('"') != etag => {
            return Err(ManifestError::EtagMismatch {
                expected: expected.trim_matches('"').to_string(),
                actual: etag,
            });
        }
        _ => {}
    }
    let bytes = read_limited(got.body, MAX_MANIFEST_JSON_BYTES)
        .await
        .map_err(|reason| ManifestError::Unreadable {
            bucket: bucket.clone(),
            key: key.clone(),
            reason,
        })?;
    let inventory = InventoryManifest::parse(&bytes)?;
    let columns = InventoryColumns::from_schema(&inventory.file_schema)?;
    let data_bucket = inventory.data_bucket()?;
    if !config.bucket_allowed(&data_bucket) {
        return Err(ManifestError::Forbidden(data_bucket));
    }
    let (first_file, first_record, first_row) = match resume {
        Some(Resume {
            at: Position::Inventory { file, record },
            row,
            ..
        }) => (*file as usize, *record, *row),
        Some(other) => {
            return Err(ManifestError::Spec(format!(
                "cannot resume an inventory report at {:?}",
                other.at
            )));
        }
        None => {
            check_files_exist(objects, &data_bucket, &inventory.files).await?;
            (0, 0, 0)
        }
    };

    let (stream, mut tx) = ManifestStream::channel(etag);
    let objects = objects.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut row = first_row;
        for (index, file) in inventory.files.iter().enumerate().skip(first_file) {
            let skip = if index == first_file { first_record } else { 0 };
            // A file entered part-way was verified by the invocation that started it.
            if skip == 0
                && let Err(e) = runtime.block_on(verify_md5(&objects, &data_bucket, file))
            {
                tx.fail_blocking(e);
                return;
            }
            let body = match runtime.block_on(objects.get_object(&data_bucket, &file.key, None)) {
                Ok(got) => got.body,
                Err(e) => {
                    tx.fail_blocking(unreadable(&data_bucket, &file.key, e));
                    return;
                }
            };
            let gunzip = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
                64 * 1024,
                SyncIoBridge::new_with_handle(body.into_async_read(), runtime.clone()),
            ));
            let mut rows = InventoryRows::new(gunzip, columns, &inventory.source_bucket, row);
            let stream_error = |rows: u64, e: ::csv::Error| ManifestError::Stream {
                rows,
                reason: format!("inventory data file {}: {e}", file.key),
            };
            if let Err(e) = rows.skip(skip) {
                tx.fail_blocking(stream_error(row, e));
                return;
            }
            loop {
                match rows.next_item() {
                    None => break,
                    Some(Ok((task, record))) => {
                        let at = Position::Inventory {
                            file: index as u32,
                            record,
                        };
                        if !tx.push_blocking(Item::row(task, at)) {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        tx.fail_blocking(stream_error(rows.next_row, e));
                        return;
                    }
                }
            }
            row = rows.next_row;
        }
        tx.flush_blocking();
    });
    Ok(stream)
}

/// Every data file must exist with the size `manifest.json` gives: checked (HeadObject,
/// several at a time) before any task is queued.
async fn check_files_exist(
    objects: &Objects,
    bucket: &str,
    files: &[DataFile],
) -> Result<(), ManifestError> {
    // Futures are built up front (not in a stream closure) so the caller's future is `Send`.
    let heads: Vec<_> = files
        .iter()
        .map(|f| async move {
            let head =
                objects
                    .head(bucket, &f.key)
                    .await
                    .map_err(|e| ManifestError::Unreadable {
                        bucket: bucket.to_string(),
                        key: f.key.clone(),
                        reason: format!("inventory data file missing or unreadable: {e}"),
                    })?;
            if f.size > 0 && head.size as u64 != f.size {
                return Err(ManifestError::Inventory(format!(
                    "data file s3://{bucket}/{} is {} bytes, manifest.json says {}",
                    f.key, head.size, f.size
                )));
            }
            Ok(())
        })
        .collect();
    let results: Vec<Result<(), ManifestError>> =
        futures::stream::iter(heads).buffered(8).collect().await;
    results.into_iter().collect()
}

/// Streams a data file through MD5 and compares with its `MD5checksum`.
async fn verify_md5(objects: &Objects, bucket: &str, file: &DataFile) -> Result<(), ManifestError> {
    let unreadable = |reason: String| ManifestError::Unreadable {
        bucket: bucket.to_string(),
        key: file.key.clone(),
        reason,
    };
    let mut body = objects
        .get_object(bucket, &file.key, None)
        .await
        .map_err(|e| unreadable(e.to_string()))?
        .body;
    let mut md5 = Md5::new();
    while let Some(bytes) = body
        .next_chunk()
        .await
        .map_err(|e| unreadable(e.to_string()))?
    {
        md5.update(&bytes);
    }
    let actual = hex::encode(md5.finalize());
    if !actual.eq_ignore_ascii_case(file.md5_checksum.trim()) {
        return Err(ManifestError::Checksum {
            bucket: bucket.to_string(),
            key: file.key.clone(),
            expected: file.md5_checksum.clone(),
            actual,
        });
    }
    Ok(())
}

/// Collects a body of at most `limit` bytes.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(bytes) = body.next_chunk().await.map_err(|e| e.to_string())? {
        if out.len() + bytes.len() > limit {
            return Err(format!("manifest.json is larger than {limit} bytes"));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size";

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn rows(text: &str, first_row: u64) -> Vec<(Task, u64)> {
        let cols = InventoryColumns::from_schema(SCHEMA).unwrap();
        let data = gz(text);
        let mut r = InventoryRows::new(
            flate2::read::MultiGzDecoder::new(&data[..]),
            cols,
            "src",
            first_row,
        );
        std::iter::from_fn(|| r.next_item())
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn aws_sample_manifest_parses() {
        let json = r#"{
            "sourceBucket": "example-source-bucket",
            "destinationBucket": "arn:aws:s3:::example-inventory-destination-bucket",
            "version": "2016-11-30",
            "creationTimestamp" : "1514944800000",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus",
            "files": [{"key": "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
                       "size": 2147483647, "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"}]
        }"#;
        let m = InventoryManifest::parse(json.as_bytes()).unwrap();
        assert_eq!(
            m.data_bucket().unwrap(),
            "example-inventory-destination-bucket"
        );
        assert_eq!(m.files[0].size, 2147483647);
        let c = InventoryColumns::from_schema(&m.file_schema).unwrap();
        assert_eq!(
            (c.count, c.bucket, c.key, c.version_id, c.is_delete_marker),
            (15, 0, 1, Some(2), Some(4))
        );
        let orc = json.replace("\"CSV\"", "\"ORC\"");
        assert!(InventoryManifest::parse(orc.as_bytes()).is_err());
        assert!(InventoryColumns::from_schema("Bucket, Size").is_err());
    }

    #[test]
    fn rows_decode_keys_keep_versions_and_skip_delete_markers() {
        let text = concat!(
            "\"src\",\"a+b%2Bc.txt\",\"v1\",\"true\",\"false\",\"5\"\n",
            "\"src\",\"gone.txt\",\"v2\",\"true\",\"true\",\"\"\n",
            "\"src\",\"caf%C3%A9%2C%22q%22\",\"\",\"true\",\"false\",\"7\"\n",
            "\"other\",\"x\",\"\",\"true\",\"false\",\"7\"\n",
            "\"src\",\"bad%zz\",\"\",\"true\",\"false\",\"7\"\n",
        );
        let got = rows(text, 10);
        assert_eq!(got.len(), 4, "the delete marker is skipped");
        assert_eq!(got[0].0.key, "a b+c.txt");
        assert_eq!(got[0].0.version_id.as_deref(), Some("v1"));
        assert_eq!((got[0].0.row, got[0].1), (10, 0));
        assert_eq!(got[1].0.key, "caf\u{e9},\"q\"");
        assert_eq!(got[1].0.version_id, None);
        assert_eq!(
            (got[1].0.row, got[1].1),
            (11, 2),
            "record index counts the marker"
        );
        assert!(
            got[2]
                .0
                .invalid
                .as_deref()
                .unwrap()
                .contains("sourceBucket")
        );
        assert!(got[3].0.invalid.as_deref().unwrap().contains("percent"));
    }

    #[test]
    fn skipping_records_resumes_inside_a_file() {
        let text: String = (0..10)
            .map(|i| format!("\"src\",\"k{i}\",\"\",\"true\",\"false\",\"1\"\n"))
            .collect();
        let cols = InventoryColumns::from_schema(SCHEMA).unwrap();
        let data = gz(&text);
        let mut r =
            InventoryRows::new(flate2::read::MultiGzDecoder::new(&data[..]), cols, "src", 6);
        r.skip(6).unwrap();
        let rest: Vec<_> = std::iter::from_fn(|| r.next_item())
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rest.iter().map(|(t, _)| t.key.as_str()).collect::<Vec<_>>(),
            ["k6", "k7", "k8", "k9"]
        );
        assert_eq!(rest[0].0.row, 6);
        assert_eq!(rest[0].1, 6);
    }

    #[test]
    fn wrong_column_count_is_a_failed_task() {
        let got = rows("\"src\",\"k\"\n", 0);
        assert!(got[0].0.invalid.as_deref().unwrap().contains("2 columns"));
    }
}
