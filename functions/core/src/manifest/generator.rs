//! `S3JobManifestGenerator`: the task list made by listing a bucket (ListObjectsV2, page by
//! page, straight into the stream — never a list in memory) and keeping the objects that pass
//! the `Filter`, instead of reading a manifest object.
//!
//! `KeyNameConstraint.MatchAnyPrefix` becomes ListObjectsV2's `Prefix` (one listing per
//! prefix, prefixes covered by another dropped, so each object is listed once); suffixes,
//! substrings, sizes, times (`LastModified`) and storage classes are checked per object. A row
//! stands at `(prefix, StartAfter)`: the key listed just before it, so a planner that stops
//! part-way lists on from exactly the first row it did not queue.
//!
//! With `EnableManifestOutput`, [`ManifestOutput`] writes what was generated under
//! `<ManifestPrefix>/job-<JobId>/` in the layout of an inventory report (the
//! `S3InventoryReport_CSV_20211130` format): gzip CSV data files of `Bucket,Key` rows (keys
//! URL-encoded) and a `manifest.json` naming them with their MD5s — which batchops itself
//! reads back as an `S3InventoryReport_CSV_20161130` manifest.

use super::{Item, ManifestError, ManifestStream, Position, Resume};
use crate::adapters::Objects;
use crate::chunk::{Chunk, Task};
use crate::job::arn::parse_bucket_arn;
use crate::job::timestamp::Timestamp;
use crate::job::validate::{Invalid, invalid};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;

// ---- The CreateJob request's `ManifestGenerator` ----------------------------------------

/// `ManifestGenerator` of CreateJob (S3 Control's `JobManifestGenerator`: an object with
/// exactly one key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum JobManifestGenerator {
    S3JobManifestGenerator(S3JobManifestGenerator),
}

impl JobManifestGenerator {
    pub fn s3(&self) -> &S3JobManifestGenerator {
        match self {
            JobManifestGenerator::S3JobManifestGenerator(g) => g,
        }
    }
}

/// Lists `SourceBucket` (ListObjectsV2, current versions) and makes a task of every object
/// that passes `Filter`; with `EnableManifestOutput`, also writes the list it made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3JobManifestGenerator {
    /// `arn:aws:s3:::bucket` to list.
    pub source_bucket: String,
    /// Required by AWS; `false` when omitted here.
    #[serde(default)]
    pub enable_manifest_output: bool,
    /// Accepted for compatibility; unused (batchops has no cross-account check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_output_location: Option<S3ManifestOutputLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<JobManifestGeneratorFilter>,
}

/// Where a generated manifest is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3ManifestOutputLocation {
    /// `arn:aws:s3:::bucket`.
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_prefix: Option<String>,
    /// `S3InventoryReport_CSV_20211130`, the only value AWS defines.
    pub manifest_format: String,
    /// Accepted for compatibility; unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_manifest_bucket_owner: Option<String>,
    /// Accepted for compatibility; objects are written with the bucket's default encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_encryption: Option<serde_json::Value>,
}

/// The generated manifest's format name.
pub const GENERATED_MANIFEST_FORMAT: &str = "S3InventoryReport_CSV_20211130";

/// `JobManifestGeneratorFilter`: an object becomes a task only if it passes every filter given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobManifestGeneratorFilter {
    /// Objects last modified after this time (ListObjectsV2's `LastModified`, which for the
    /// current version is when it was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<Timestamp>,
    /// Accepted and ignored: batchops reads no replication configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible_for_replication: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name_constraint: Option<KeyNameConstraint>,
    /// Strictly greater than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_greater_than_bytes: Option<i64>,
    /// Strictly less than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_less_than_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_any_storage_class: Vec<String>,
    /// Refused when non-empty: ListObjectsV2 does not tell replication status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub object_replication_statuses: Vec<String>,
    /// Refused when given: ListObjectsV2 does not tell encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_object_encryption: Option<serde_json::Value>,
}

/// `KeyNameConstraint`: each list given must match (any of its entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeyNameConstraint {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_any_prefix: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_any_suffix: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_any_substring: Vec<String>,
}

impl S3JobManifestGenerator {
    /// Checks the generator part of a CreateJob body; errors name the field.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        const AT: &str = "ManifestGenerator.S3JobManifestGenerator";
        if parse_bucket_arn(&self.source_bucket).is_none() {
            return Err(invalid(
                &format!("{AT}.SourceBucket"),
                "must be a bucket ARN like arn:aws:s3:::bucket",
            ));
        }
        match &self.manifest_output_location {
            None if self.enable_manifest_output => {
                return Err(invalid(
                    &format!("{AT}.ManifestOutputLocation"),
                    "is required when EnableManifestOutput is true",
                ));
            }
            Some(out) => {
                if parse_bucket_arn(&out.bucket).is_none() {
                    return Err(invalid(
                        &format!("{AT}.ManifestOutputLocation.Bucket"),
                        "must be a bucket ARN like arn:aws:s3:::bucket",
                    ));
                }
                if out.manifest_format != GENERATED_MANIFEST_FORMAT {
                    return Err(invalid(
                        &format!("{AT}.ManifestOutputLocation.ManifestFormat"),
                        format!("must be {GENERATED_MANIFEST_FORMAT}"),
                    ));
                }
                if out
                    .manifest_prefix
                    .as_ref()
                    .is_some_and(|p| p.is_empty() || p.len() > 512)
                {
                    return Err(invalid(
                        &format!("{AT}.ManifestOutputLocation.ManifestPrefix"),
                        "must be 1 to 512 characters",
                    ));
                }
            }
            None => {}
        }
        let Some(f) = &self.filter else {
            return Ok(());
        };
        for (name, t) in [
            ("CreatedAfter", &f.created_after),
            ("CreatedBefore", &f.created_before),
        ] {
            if t.as_ref().is_some_and(|t| t.epoch_millis().is_none()) {
                return Err(invalid(
                    &format!("{AT}.Filter.{name}"),
                    "must be an ISO-8601 time like 2026-01-31T00:00:00Z or epoch seconds",
                ));
            }
        }
        for (name, v) in [
            (
                "ObjectSizeGreaterThanBytes",
                f.object_size_greater_than_bytes,
            ),
            ("ObjectSizeLessThanBytes", f.object_size_less_than_bytes),
        ] {
            if v.is_some_and(|v| v < 0) {
                return Err(invalid(&format!("{AT}.Filter.{name}"), "must be >= 0"));
            }
        }
        const CLASSES: [&str; 7] = [
            "STANDARD",
            "STANDARD_IA",
            "ONEZONE_IA",
            "GLACIER",
            "INTELLIGENT_TIERING",
            "DEEP_ARCHIVE",
            "GLACIER_IR",
        ];
        if let Some(c) = f
            .match_any_storage_class
            .iter()
            .find(|c| !CLASSES.contains(&c.as_str()))
        {
            return Err(invalid(
                &format!("{AT}.Filter.MatchAnyStorageClass"),
                format!("{c:?} is not one of {}", CLASSES.join(", ")),
            ));
        }
        if !f.object_replication_statuses.is_empty() {
            return Err(invalid(
                &format!("{AT}.Filter.ObjectReplicationStatuses"),
                "is not supported by batchops (listing does not tell replication status)",
            ));
        }
        if f.match_any_object_encryption.is_some() {
            return Err(invalid(
                &format!("{AT}.Filter.MatchAnyObjectEncryption"),
                "is not supported by batchops (listing does not tell encryption)",
            ));
        }
        if let Some(k) = &f.key_name_constraint {
            for (name, list) in [
                ("MatchAnyPrefix", &k.match_any_prefix),
                ("MatchAnySuffix", &k.match_any_suffix),
                ("MatchAnySubstring", &k.match_any_substring),
            ] {
                if list.iter().any(|s| s.is_empty() || s.len() > 1024) {
                    return Err(invalid(
                        &format!("{AT}.Filter.KeyNameConstraint.{name}"),
                        "entries must be 1 to 1024 characters",
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---- Generating the task list ----------------------------------------------------------

/// A generator's filter, ready to apply to listed objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectFilter {
    pub suffixes: Vec<String>,
    pub substrings: Vec<String>,
    pub created_after_ms: Option<i64>,
    pub created_before_ms: Option<i64>,
    pub size_greater_than: Option<i64>,
    pub size_less_than: Option<i64>,
    pub storage_classes: Vec<String>,
}

impl ObjectFilter {
    pub fn new(filter: Option<&JobManifestGeneratorFilter>) -> Self {
        let Some(f) = filter else {
            return Self::default();
        };
        let k = f.key_name_constraint.clone().unwrap_or_default();
        Self {
            suffixes: k.match_any_suffix,
            substrings: k.match_any_substring,
            created_after_ms: f.created_after.as_ref().and_then(|t| t.epoch_millis()),
            created_before_ms: f.created_before.as_ref().and_then(|t| t.epoch_millis()),
            size_greater_than: f.object_size_greater_than_bytes,
            size_less_than: f.object_size_less_than_bytes,
            storage_classes: f.match_any_storage_class.clone(),
        }
    }

    /// Whether a listed object becomes a task.
    pub fn admits(&self, o: &crate::adapters::s3::Listed) -> bool {
        let any = |list: &[String], hit: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|s| hit(s))
        };
        // ListObjectsV2 leaves StorageClass out for STANDARD on some servers.
        let class = o.storage_class.as_deref().unwrap_or("STANDARD");
        any(&self.suffixes, &|s| o.key.ends_with(s))
            && any(&self.substrings, &|s| o.key.contains(s))
            && any(&self.storage_classes, &|s| s == class)
            && self.size_greater_than.is_none_or(|n| o.size > n)
            && self.size_less_than.is_none_or(|n| o.size < n)
            && self
                .created_after_ms
                .is_none_or(|t| o.last_modified_ms.is_some_and(|m| m > t))
            && self
                .created_before_ms
                .is_none_or(|t| o.last_modified_ms.is_some_and(|m| m < t))
    }
}

/// The prefixes to list, sorted, each listed once: a prefix that starts with another is
/// covered by it and dropped. No prefix lists the whole bucket.
pub fn listing_prefixes(generator: &S3JobManifestGenerator) -> Vec<String> {
    let mut prefixes: Vec<String> = generator
        .filter
        .as_ref()
        .and_then(|f| f.key_name_constraint.as_ref())
        .map(|k| k.match_any_prefix.clone())
        .unwrap_or_default();
    prefixes.sort();
    prefixes.dedup();
    let mut kept: Vec<String> = Vec::new();
    for p in prefixes {
        if !kept.iter().any(|k| p.starts_with(k.as_str())) {
            kept.push(p);
        }
    }
    if kept.is_empty() {
        kept.push(String::new());
    }
    kept
}

/// Starts listing the source bucket, from the start or from a saved position.
pub async fn open(
    objects: &Objects,
    generator: &S3JobManifestGenerator,
    resume: Option<&Resume>,
    scan_span: u64,
) -> Result<ManifestStream, ManifestError> {
    let scan_span = scan_span.max(1);
    let bucket = parse_bucket_arn(&generator.source_bucket)
        .ok_or_else(|| ManifestError::Spec("SourceBucket is not a bucket ARN".into()))?;
    let (first_prefix, first_after, first_row) = match resume {
        Some(Resume {
            at:
                Position::Generator {
                    prefix,
                    start_after,
                },
            row,
            ..
        }) => (*prefix as usize, start_after.clone(), *row),
        Some(other) => {
            return Err(ManifestError::Spec(format!(
                "cannot resume a manifest generator at {:?}",
                other.at
            )));
        }
        None => (0, None, 0),
    };
    let prefixes = listing_prefixes(generator);
    let filter = ObjectFilter::new(generator.filter.as_ref());
    let (stream, mut tx) = ManifestStream::channel(String::new());
    let objects = objects.clone();
    tokio::spawn(async move {
        let mut row = first_row;
        // Keys listed since the start or the last scan boundary.
        let mut scanned = 0u64;
        for (index, prefix) in prefixes.iter().enumerate().skip(first_prefix) {
            let mut prev = if index == first_prefix {
                first_after.clone()
            } else {
                None
            };
            let mut token: Option<String> = None;
            let mut first_page = true;
            loop {
                let start_after = if first_page { prev.as_deref() } else { None };
                let page = objects
                    .list_page(&bucket, prefix, start_after, token.as_deref())
                    .await;
                let (listed, next) = match page {
                    Ok(p) => p,
                    Err(e) => {
                        tx.fail(ManifestError::unreadable(&bucket, prefix, e)).await;
                        return;
                    }
                };
                first_page = false;
                for object in listed {
                    if filter.admits(&object) {
                        let item = Item::row(
                            Task {
                                row,
                                bucket: bucket.clone(),
                                key: object.key.clone(),
                                version_id: None,
                                invalid: None,
                            },
                            Position::Generator {
                                prefix: index as u32,
                                start_after: prev.clone(),
                            },
                        );
                        row += 1;
                        if !tx.push(item).await {
                            return;
                        }
                    }
                    prev = Some(object.key);
                    scanned += 1;
                    if scanned >= scan_span {
                        scanned = 0;
                        let at = Position::Generator {
                            prefix: index as u32,
                            start_after: prev.clone(),
                        };
                        // Handed over at once: the planner may stop here.
                        if !tx.push(Item::boundary(at)).await || !tx.flush().await {
                            return;
                        }
                    }
                }
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
        tx.flush().await;
    });
    Ok(stream)
}

/// Rows per generated data file before it rolls over (a file is built gzip-compressed in
/// memory: about a megabyte).
pub const OUTPUT_FILE_ROWS: usize = 100_000;

/// One written data file of a generated manifest: chunks `first_chunk..=last_chunk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    pub first_chunk: u64,
    pub last_chunk: u64,
    pub key: String,
    pub size: u64,
    pub md5: String,
}

/// Writes a generated manifest as the planner queues its chunks. A data file holds whole
/// chunks and is named by its first chunk, and each written file is recorded in the job
/// store; [`ManifestOutput::finish`] writes `manifest.json` naming the files that chain from
/// chunk 0 to the last, so files left by a planner that died before its checkpoint (and were
/// written again differently after it) are never listed.
pub struct ManifestOutput {
    bucket: String,
    dir: String,
    open: Option<(u64, u64, flate2::write::GzEncoder<Vec<u8>>, usize)>,
}

impl ManifestOutput {
    pub fn new(location: &S3ManifestOutputLocation, job_id: &str) -> Option<Self> {
        let bucket = parse_bucket_arn(&location.bucket)?;
        let dir = match location
            .manifest_prefix
            .as_deref()
            .map(|p| p.trim_matches('/'))
        {
            Some(p) if !p.is_empty() => format!("{p}/job-{job_id}"),
            _ => format!("job-{job_id}"),
        };
        Some(Self {
            bucket,
            dir,
            open: None,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key [`ManifestOutput::finish`] writes `manifest.json` to.
    pub fn manifest_key(&self) -> String {
        format!("{}/manifest.json", self.dir)
    }

    /// Adds a chunk's rows; returns true when the open file is full and should be written.
    pub fn add_chunk(&mut self, chunk: &Chunk) -> Result<bool> {
        let (_, last, gz, rows) = self.open.get_or_insert_with(|| {
            (
                chunk.chunk,
                chunk.chunk,
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
                0,
            )
        });
        *last = chunk.chunk;
        for t in &chunk.tasks {
            let line = format!(
                "{},{}\n",
                t.bucket,
                crate::manifest::csv::encode_key(&t.key)
            );
            gz.write_all(line.as_bytes())?;
        }
        *rows += chunk.tasks.len();
        Ok(*rows >= OUTPUT_FILE_ROWS)
    }

    /// Writes the open data file, if any, and returns it for the job store's record.
    pub async fn roll(&mut self, objects: &Objects) -> Result<Option<OutputFile>> {
        let Some((first, last, gz, _)) = self.open.take() else {
            return Ok(None);
        };
        let body = gz.finish()?;
        let key = format!("{}/data/{first:012}.csv.gz", self.dir);
        let size = body.len() as u64;
        let md5 = objects
            .put_bytes(&self.bucket, &key, body, "application/gzip")
            .await?;
        Ok(Some(OutputFile {
            first_chunk: first,
            last_chunk: last,
            key,
            size,
            md5,
        }))
    }

    /// Writes `manifest.json` for the recorded files that chain from chunk 0 to
    /// `chunks - 1`; returns its key.
    pub async fn finish(
        &self,
        objects: &Objects,
        source_bucket: &str,
        created_ms: i64,
        recorded: &[OutputFile],
        chunks: u64,
    ) -> Result<String> {
        let files = chain(recorded, chunks).ok_or_else(|| {
            Error::Record(format!(
                "the generated manifest's files do not cover chunks 0..{chunks}"
            ))
        })?;
        let manifest = super::inventory::InventoryManifest {
            source_bucket: source_bucket.to_string(),
            destination_bucket: format!("arn:aws:s3:::{}", self.bucket),
            version: Some("2021-11-30".into()),
            creation_timestamp: Some(created_ms.to_string()),
            file_format: "CSV".into(),
            file_schema: "Bucket, Key".into(),
            files: files
                .iter()
                .map(|f| super::inventory::DataFile {
                    key: f.key.clone(),
                    size: f.size,
                    md5_checksum: f.md5.clone(),
                })
                .collect(),
        };
        let key = self.manifest_key();
        let body = serde_json::to_vec_pretty(&manifest).map_err(Error::Message)?;
        objects
            .put_bytes(&self.bucket, &key, body, "application/json")
            .await?;
        Ok(key)
    }
}

/// The files that cover chunks `0..chunks` one after another, from those recorded (sorted by
/// first chunk; a later write of the same first chunk replaced the earlier record).
pub fn chain(recorded: &[OutputFile], chunks: u64) -> Option<Vec<&OutputFile>> {
    let mut out = Vec::new();
    let mut next = 0;
    while next < chunks {
        let f = recorded.iter().find(|f| f.first_chunk == next)?;
        out.push(f);
        next = f.last_chunk + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::s3::Listed;
    use crate::job::timestamp::Timestamp;

    fn listed(key: &str, size: i64, modified: i64, class: Option<&str>) -> Listed {
        Listed {
            key: key.into(),
            size,
            last_modified_ms: Some(modified),
            storage_class: class.map(String::from),
        }
    }

    #[test]
    fn filters_combine() {
        let f = JobManifestGeneratorFilter {
            key_name_constraint: Some(KeyNameConstraint {
                match_any_prefix: vec!["logs/".into()],
                match_any_suffix: vec![".gz".into(), ".zip".into()],
                match_any_substring: vec!["2026".into()],
            }),
            created_after: Timestamp::parse("1970-01-01T00:00:01Z"),
            created_before: Timestamp::parse("1970-01-01T00:00:02Z"),
            object_size_greater_than_bytes: Some(10),
            object_size_less_than_bytes: Some(100),
            match_any_storage_class: vec!["STANDARD".into(), "GLACIER".into()],
            ..Default::default()
        };
        let f = ObjectFilter::new(Some(&f));
        assert!(f.admits(&listed("logs/2026-a.gz", 50, 1500, None)));
        assert!(f.admits(&listed("logs/2026-b.zip", 50, 1500, Some("GLACIER"))));
        assert!(
            !f.admits(&listed("logs/2026-a.txt", 50, 1500, None)),
            "suffix"
        );
        assert!(
            !f.admits(&listed("logs/2025-a.gz", 50, 1500, None)),
            "substring"
        );
        assert!(
            !f.admits(&listed("logs/2026-a.gz", 10, 1500, None)),
            "size >"
        );
        assert!(
            !f.admits(&listed("logs/2026-a.gz", 100, 1500, None)),
            "size <"
        );
        assert!(
            !f.admits(&listed("logs/2026-a.gz", 50, 1000, None)),
            "after"
        );
        assert!(
            !f.admits(&listed("logs/2026-a.gz", 50, 2000, None)),
            "before"
        );
        assert!(
            !f.admits(&listed("logs/2026-a.gz", 50, 1500, Some("DEEP_ARCHIVE"))),
            "class"
        );
        assert!(ObjectFilter::new(None).admits(&listed("x", 0, 0, None)));
    }

    #[test]
    fn prefixes_are_listed_once_each() {
        let g: S3JobManifestGenerator = serde_json::from_value(serde_json::json!({
            "SourceBucket": "arn:aws:s3:::b",
            "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["b/", "a/x", "a/", "b/", "c"]}}
        }))
        .unwrap();
        assert_eq!(listing_prefixes(&g), ["a/", "b/", "c"]);
        let g: S3JobManifestGenerator =
            serde_json::from_value(serde_json::json!({"SourceBucket": "arn:aws:s3:::b"})).unwrap();
        assert_eq!(listing_prefixes(&g), [""]);
    }

    #[test]
    fn output_files_chain_from_chunk_zero() {
        let f = |first, last| OutputFile {
            first_chunk: first,
            last_chunk: last,
            key: format!("{first}-{last}"),
            size: 1,
            md5: String::new(),
        };
        // 3..=5 is the leftover of a planner that died before its checkpoint.
        let recorded = [f(0, 2), f(3, 5), f(6, 9)];
        let got = chain(&recorded, 10).unwrap();
        assert_eq!(got.len(), 3);
        let recorded = [f(0, 2), f(3, 7), f(8, 9), f(5, 6)];
        let got: Vec<_> = chain(&recorded, 10)
            .unwrap()
            .iter()
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(got, ["0-2", "3-7", "8-9"]);
        assert!(chain(&[f(0, 2)], 10).is_none());
        assert!(chain(&[], 0).unwrap().is_empty());
    }
}
