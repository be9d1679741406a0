//! Result rows and the completion report, in AWS's `Report_CSV_20180820` layout:
//!
//! ```text
//! <report bucket>/<prefix>/job-<id>/manifest.json
//! <report bucket>/<prefix>/job-<id>/results/<hex>.csv   (only succeeded, or only failed, rows)
//! ```
//!
//! Rows have no header. `ReportSchema` says `Bucket, Key, VersionId, TaskStatus, ErrorCode,
//! HTTPStatusCode, ResultMessage`, but AWS's own sample rows carry the HTTP status in the fifth
//! column and the error code in the sixth (`bucket,key,,failed,200,PermanentFailure,"…"`);
//! batchops writes what AWS actually writes, and keeps the schema string AWS writes.
//! Keys are URL-encoded as in a manifest, so a report can be fed back as a manifest.
//!
//! Workers write each chunk's rows to the stack bucket in this same row format; the finalizer
//! streams them chunk by chunk into the report files, rolling over to a new file past a size
//! limit. A file is uploaded a part ([`REPORT_PART_BYTES`]) at a time, so the finalizer holds
//! at most about a part per outcome, whatever the file and report sizes.

use crate::adapters::{Objects, Upload};
use crate::chunk::Task;
use crate::ops::Outcome;
use crate::{Error, Result};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

pub const REPORT_FORMAT: &str = "Report_CSV_20180820";
pub const REPORT_SCHEMA: &str =
    "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

/// Report rows carry keys as manifests do (a report can be fed back as a manifest).
pub use crate::manifest::csv::encode_key;

/// The columns of a row, as [`write_row`] writes them and [`read_rows`] reads them.
mod column {
    pub const BUCKET: usize = 0;
    pub const KEY: usize = 1;
    pub const VERSION_ID: usize = 2;
    pub const TASK_STATUS: usize = 3;
    pub const HTTP_STATUS: usize = 4;
    pub const ERROR_CODE: usize = 5;
    pub const RESULT_MESSAGE: usize = 6;
}
const STATUS_COLUMN: usize = column::TASK_STATUS;

/// One report row as written (its key URL-encoded, as in a manifest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub status: String,
    pub http_status: String,
    pub error_code: String,
    pub message: String,
}

/// Reads the rows of a report file (or of a chunk's result file): the reader beside the
/// writer, so their columns cannot drift.
pub fn read_rows(data: &[u8]) -> Result<Vec<ReportRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        let f = |i: usize| record.get(i).unwrap_or_default().to_string();
        rows.push(ReportRow {
            bucket: f(column::BUCKET),
            key: f(column::KEY),
            version_id: f(column::VERSION_ID),
            status: f(column::TASK_STATUS),
            http_status: f(column::HTTP_STATUS),
            error_code: f(column::ERROR_CODE),
            message: f(column::RESULT_MESSAGE),
        });
    }
    Ok(rows)
}

/// Appends one task's report row to a CSV writer.
pub fn write_row<W: std::io::Write>(
    out: &mut csv::Writer<W>,
    task: &Task,
    outcome: &Outcome,
) -> Result<()> {
    // A row that could not be parsed is reported with its key as it stood in the manifest.
    let key = if task.invalid.is_some() {
        task.key.clone()
    } else {
        encode_key(&task.key)
    };
    let status = if outcome.succeeded {
        "succeeded"
    } else {
        "failed"
    };
    out.write_record([
        task.bucket.as_str(),
        key.as_str(),
        task.version_id.as_deref().unwrap_or(""),
        status,
        &outcome.http_status.to_string(),
        outcome.error_code.as_str(),
        outcome.message.as_str(),
    ])?;
    Ok(())
}

/// Serialises a chunk's rows (tasks and their outcomes, in order).
pub fn chunk_rows(tasks: &[Task], outcomes: &[Outcome]) -> Result<Vec<u8>> {
    let mut w = row_writer();
    for (t, o) in tasks.iter().zip(outcomes) {
        write_row(&mut w, t, o)?;
    }
    w.into_inner().map_err(|e| Error::Io(e.into_error()))
}

/// One entry of the report's `manifest.json` `Results`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultFile {
    pub task_execution_status: String,
    pub bucket: String,
    #[serde(rename = "MD5Checksum")]
    pub md5_checksum: String,
    pub key: String,
}

/// The report's top-level `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportManifest {
    pub format: String,
    pub report_creation_date: String,
    pub results: Vec<ResultFile>,
    pub report_schema: String,
}

/// Where report assembly stands between finalizer invocations (the job's `REPORT` item): a
/// report of any size is written across as many invocations as it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportProgress {
    /// The rows of every chunk record up to this chunk number are in the files written.
    pub through_chunk: Option<u64>,
    /// The report files written so far.
    pub results: Vec<ResultFile>,
    /// The number the next file gets, per outcome (succeeded, failed).
    pub next_index: [u32; 2],
    pub rows_written: u64,
    /// Invocations that have stopped part-way so far.
    pub continuations: u64,
    /// The rows counted so far (progress saved before the summary existed has none).
    #[serde(default)]
    pub summary: ReportSummary,
}

/// Most error codes a [`ReportSummary`] counts by name; rows with other codes are counted in
/// `OtherErrorCodes`.
pub const SUMMARY_ERROR_CODES: usize = 50;
/// Failed rows a [`ReportSummary`] keeps.
pub const SUMMARY_FAILED_ROWS: usize = 10;
/// Bytes of a kept failed row's message (cut at a character boundary).
pub const SUMMARY_MESSAGE_BYTES: usize = 256;

/// What a job's report holds, counted while the finalizer writes it (every row, whatever the
/// report's scope): rows by outcome and by error code, and the first failed rows in chunk
/// order. DescribeJob (JSON) shows it as `ReportSummary`, so neither the console nor the API
/// reads the report's files; it stays small (about 10 KiB at most).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportSummary {
    pub succeeded: u64,
    pub failed: u64,
    /// Failed rows by error code (at most [`SUMMARY_ERROR_CODES`] codes).
    pub by_error_code: std::collections::BTreeMap<String, u64>,
    /// Failed rows whose code is not among those counted by name.
    pub other_error_codes: u64,
    /// The first [`SUMMARY_FAILED_ROWS`] failed rows.
    pub first_failures: Vec<FailedRow>,
}

/// A failed report row, its key decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailedRow {
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub error_code: String,
    #[serde(rename = "HTTPStatusCode")]
    pub http_status_code: u16,
    pub result_message: String,
}

impl ReportSummary {
    /// Counts one report row (the layout [`write_row`] writes).
    pub fn add(&mut self, record: &csv::ByteRecord) {
        let field = |i| String::from_utf8_lossy(record.get(i).unwrap_or_default()).into_owned();
        if record.get(STATUS_COLUMN) != Some(b"failed") {
            self.succeeded += 1;
            return;
        }
        self.failed += 1;
        let code = field(column::ERROR_CODE);
        if let Some(n) = self.by_error_code.get_mut(&code) {
            *n += 1;
        } else if self.by_error_code.len() < SUMMARY_ERROR_CODES {
            self.by_error_code.insert(code.clone(), 1);
        } else {
            self.other_error_codes += 1;
        }
        if self.first_failures.len() < SUMMARY_FAILED_ROWS {
            let raw_key = field(column::KEY);
            let mut message = field(column::RESULT_MESSAGE);
            if message.len() > SUMMARY_MESSAGE_BYTES {
                let mut end = SUMMARY_MESSAGE_BYTES;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
            }
            self.first_failures.push(FailedRow {
                bucket: field(column::BUCKET),
                key: crate::manifest::csv::decode_key(&raw_key).unwrap_or(raw_key),
                version_id: Some(field(column::VERSION_ID)).filter(|v| !v.is_empty()),
                error_code: code,
                http_status_code: field(column::HTTP_STATUS).parse().unwrap_or(0),
                result_message: message,
            });
        }
    }
}

/// Where a job's report goes: `<bucket>/<prefix>/job-<id>/`.
pub fn report_dir(prefix: Option<&str>, job_id: &str) -> String {
    match prefix.map(|p| p.trim_matches('/')) {
        None | Some("") => format!("job-{job_id}"),
        Some(p) => format!("{p}/job-{job_id}"),
    }
}

/// The size of a report file's parts: a file bigger than this is a multipart upload, a part
/// sent as soon as it is full (S3's minimum part is 5 MiB).
pub const REPORT_PART_BYTES: usize = 8 * 1024 * 1024;

fn row_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new())
}

struct OpenFile {
    status: &'static str,
    index: u32,
    /// The rows not yet uploaded.
    writer: csv::Writer<Vec<u8>>,
    rows: u64,
    /// The file's multipart upload, once a part of it has been sent, and the bytes sent.
    upload: Option<Upload>,
    uploaded: usize,
}

/// Streams result rows into report files split by outcome, each file at most about
/// `max_bytes`, and writes `manifest.json` last. File names are deterministic (a digest of
/// job, outcome and file number), so two finalizers of one job write the same objects.
pub struct ReportWriter<'a> {
    objects: &'a Objects,
    bucket: String,
    dir: String,
    job_id: String,
    max_bytes: usize,
    include_succeeded: bool,
    files: [OpenFile; 2],
    results: Vec<ResultFile>,
    pub rows_written: u64,
    /// Every row added so far, counted.
    pub summary: ReportSummary,
}

impl<'a> ReportWriter<'a> {
    pub fn new(
        objects: &'a Objects,
        bucket: String,
        dir: String,
        job_id: String,
        max_bytes: usize,
        include_succeeded: bool,
    ) -> Self {
        let open = |status| OpenFile {
            status,
            index: 0,
            writer: row_writer(),
            rows: 0,
            upload: None,
            uploaded: 0,
        };
        Self {
            objects,
            bucket,
            dir,
            job_id,
            max_bytes,
            include_succeeded,
            files: [open("succeeded"), open("failed")],
            results: Vec::new(),
            rows_written: 0,
            summary: ReportSummary::default(),
        }
    }

    /// Goes on from where an earlier invocation stopped: its files are kept, and new ones are
    /// numbered after them.
    pub fn resume(mut self, progress: &ReportProgress) -> Self {
        self.results = progress.results.clone();
        self.files[0].index = progress.next_index[0];
        self.files[1].index = progress.next_index[1];
        self.rows_written = progress.rows_written;
        self.summary = progress.summary.clone();
        self
    }

    /// Writes the open files (rows so far, however few) and returns where the report stands,
    /// for the next invocation to [`resume`](Self::resume) after `through_chunk`.
    pub async fn checkpoint(&mut self, through_chunk: Option<u64>) -> Result<ReportProgress> {
        let flushed = self.flush_both().await;
        self.abort_on_error(flushed).await?;
        Ok(ReportProgress {
            through_chunk,
            results: self.results.clone(),
            next_index: [self.files[0].index, self.files[1].index],
            rows_written: self.rows_written,
            continuations: 0,
            summary: self.summary.clone(),
        })
    }

    /// Adds every row of a chunk's result file (as written by [`chunk_rows`]).
    pub async fn add_chunk_rows(&mut self, data: &[u8]) -> Result<()> {
        let added = self.add_rows(data).await;
        self.abort_on_error(added).await
    }

    async fn flush_both(&mut self) -> Result<()> {
        self.flush(0).await?;
        self.flush(1).await
    }

    /// On an error, abandons the files being uploaded (their parts would otherwise stay in
    /// the report bucket, billed, until a lifecycle rule removes them); the invocation that
    /// comes again writes them anew from the last checkpoint.
    async fn abort_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            for file in &mut self.files {
                if let Some(upload) = file.upload.take() {
                    self.objects.abort_upload(upload).await;
                }
            }
        }
        result
    }

    async fn add_rows(&mut self, data: &[u8]) -> Result<()> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data);
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record)? {
            let which = match record.get(STATUS_COLUMN) {
                Some(b"succeeded") => 0,
                Some(b"failed") => 1,
                _ => {
                    return Err(Error::Record(format!(
                        "result row without a TaskStatus: {record:?}"
                    )));
                }
            };
            self.summary.add(&record);
            if which == 0 && !self.include_succeeded {
                continue;
            }
            let file = &mut self.files[which];
            file.writer.write_byte_record(&record)?;
            file.rows += 1;
            self.rows_written += 1;
            let pending = file.writer.get_ref().len();
            if file.uploaded + pending >= self.max_bytes {
                self.flush(which).await?;
            } else if pending >= REPORT_PART_BYTES {
                self.send_part(which).await?;
            }
        }
        Ok(())
    }

    /// The key of a report file: a digest of job, outcome and file number.
    fn file_key(&self, which: usize) -> String {
        let file = &self.files[which];
        let name = hex::encode(Md5::digest(format!(
            "{}/{}/{}",
            self.job_id, file.status, file.index
        )));
        format!("{}/results/{name}.csv", self.dir)
    }

    /// The rows not yet uploaded, leaving an empty buffer.
    fn take_pending(&mut self, which: usize) -> Result<Vec<u8>> {
        let file = &mut self.files[which];
        file.writer.flush()?;
        let full = std::mem::replace(&mut file.writer, row_writer());
        full.into_inner().map_err(|e| Error::Io(e.into_error()))
    }

    /// Sends the rows held as the file's next part, starting its upload on the first.
    async fn send_part(&mut self, which: usize) -> Result<()> {
        if self.files[which].upload.is_none() {
            let key = self.file_key(which);
            let upload = self
                .objects
                .start_upload(&self.bucket, &key, "text/csv")
                .await?;
            self.files[which].upload = Some(upload);
        }
        let body = self.take_pending(which)?;
        let file = &mut self.files[which];
        file.uploaded += body.len();
        let upload = file.upload.as_mut().expect("started above");
        self.objects.upload_part(upload, body).await
    }

    /// Ends the open file of an outcome (if it has rows): one `PutObject`, or the last part
    /// and the completion of its upload.
    async fn flush(&mut self, which: usize) -> Result<()> {
        if self.files[which].rows == 0 {
            return Ok(());
        }
        let key = self.file_key(which);
        let body = self.take_pending(which)?;
        let file = &mut self.files[which];
        let status = file.status;
        file.index += 1;
        file.rows = 0;
        file.uploaded = 0;
        let md5 = match file.upload.take() {
            None => {
                self.objects
                    .put_bytes(&self.bucket, &key, body, "text/csv")
                    .await?
            }
            Some(mut upload) => {
                let sent = match body.is_empty() {
                    true => Ok(()),
                    false => self.objects.upload_part(&mut upload, body).await,
                };
                match sent {
                    Ok(()) => self.objects.complete_upload(&upload).await,
                    Err(e) => Err(e),
                }
                .inspect_err(|_| file.upload = Some(upload))?
            }
        };
        self.results.push(ResultFile {
            task_execution_status: status.into(),
            bucket: self.bucket.clone(),
            md5_checksum: md5,
            key,
        });
        Ok(())
    }

    /// Writes the remaining rows and `manifest.json`; returns the manifest.
    pub async fn finish(mut self, report_date: &str) -> Result<ReportManifest> {
        let flushed = self.flush_both().await;
        self.abort_on_error(flushed).await?;
        // Succeeded files first, then failed, each in write order (as AWS lists them).
        self.results
            .sort_by_key(|r| r.task_execution_status != "succeeded");
        let manifest = ReportManifest {
            format: REPORT_FORMAT.into(),
            report_creation_date: report_date.into(),
            results: self.results,
            report_schema: REPORT_SCHEMA.into(),
        };
        let body = serde_json::to_vec(&manifest).map_err(Error::Message)?;
        let key = format!("{}/manifest.json", self.dir);
        self.objects
            .put_bytes(&self.bucket, &key, body, "application/json")
            .await?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(key: &str, version: Option<&str>) -> Task {
        Task {
            row: 0,
            bucket: "bkt".into(),
            key: key.into(),
            version_id: version.map(String::from),
            invalid: None,
        }
    }

    #[test]
    fn rows_match_aws_column_order() {
        let tasks = [task("photos/a b+c.jpg", None), task("x", Some("v1"))];
        let outcomes = [
            Outcome::success("Successful"),
            Outcome::failure(404, "NoSuchKey", "The specified key does not exist."),
        ];
        let text = String::from_utf8(chunk_rows(&tasks, &outcomes).unwrap()).unwrap();
        assert_eq!(
            text,
            "bkt,photos/a%20b%2Bc.jpg,,succeeded,200,,Successful\n\
             bkt,x,v1,failed,404,NoSuchKey,The specified key does not exist.\n"
        );
    }

    #[test]
    fn rows_read_back_as_written() {
        let tasks = [task("a b+c", Some("v1")), task("x", None)];
        let outcomes = [
            Outcome::success("Successful"),
            Outcome::failure(404, "NoSuchKey", "gone, \"really\""),
        ];
        let rows = read_rows(&chunk_rows(&tasks, &outcomes).unwrap()).unwrap();
        assert_eq!(
            rows[0],
            ReportRow {
                bucket: "bkt".into(),
                key: "a%20b%2Bc".into(),
                version_id: "v1".into(),
                status: "succeeded".into(),
                http_status: "200".into(),
                error_code: "".into(),
                message: "Successful".into(),
            }
        );
        assert_eq!(
            (rows[1].error_code.as_str(), rows[1].message.as_str()),
            ("NoSuchKey", "gone, \"really\"")
        );
    }

    #[test]
    fn messages_with_commas_and_quotes_are_quoted() {
        let text = String::from_utf8(
            chunk_rows(
                &[task("k", None)],
                &[Outcome::failure(200, "PermanentFailure", "a, \"b\"")],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            text,
            "bkt,k,,failed,200,PermanentFailure,\"a, \"\"b\"\"\"\n"
        );
    }

    #[test]
    fn encoded_keys_decode_back() {
        for key in ["a b", "1+1=2", "100%", "caf\u{e9}/\u{2713}", "a,b\"c"] {
            assert_eq!(
                crate::manifest::csv::decode_key(&encode_key(key)).unwrap(),
                key
            );
        }
    }

    #[test]
    fn invalid_rows_keep_their_raw_key() {
        let mut t = task("bad%zz", None);
        t.invalid = Some("row 1: malformed".into());
        let text = String::from_utf8(
            chunk_rows(
                &[t],
                &[Outcome::failure(
                    400,
                    "InvalidManifestRow",
                    "row 1: malformed",
                )],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            text,
            "bkt,bad%zz,,failed,400,InvalidManifestRow,row 1: malformed\n"
        );
    }

    fn summary_of(rows: &str) -> ReportSummary {
        let mut summary = ReportSummary::default();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(rows.as_bytes());
        for record in reader.byte_records() {
            summary.add(&record.unwrap());
        }
        summary
    }

    #[test]
    fn a_summary_counts_rows_by_outcome_and_code_and_keeps_the_first_failures() {
        let s = summary_of(
            "bkt,ok,,succeeded,200,,Successful\n\
             bkt,a%20b,v1,failed,404,NoSuchKey,\"gone, really\"\n\
             bkt,c,,failed,403,AccessDenied,no\n\
             bkt,d,,failed,404,NoSuchKey,gone\n",
        );
        assert_eq!((s.succeeded, s.failed, s.other_error_codes), (1, 3, 0));
        assert_eq!(s.by_error_code["NoSuchKey"], 2);
        assert_eq!(s.by_error_code["AccessDenied"], 1);
        assert_eq!(s.first_failures.len(), 3);
        let first = &s.first_failures[0];
        assert_eq!(
            (first.key.as_str(), first.version_id.as_deref()),
            ("a b", Some("v1"))
        );
        assert_eq!(
            (first.http_status_code, first.result_message.as_str()),
            (404, "gone, really")
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["ByErrorCode"]["NoSuchKey"], 2);
        assert_eq!(json["FirstFailures"][0]["HTTPStatusCode"], 404);
        assert_eq!(json["FirstFailures"][1].get("VersionId"), None);
    }

    #[test]
    fn a_summary_stays_small_however_many_codes_and_failures() {
        let long = "\u{e9}".repeat(300);
        let rows: String = (0..120)
            .map(|i| format!("bkt,k{i},,failed,500,Code{i},{long}\n"))
            .collect();
        let s = summary_of(&rows);
        assert_eq!(s.failed, 120);
        assert_eq!(s.by_error_code.len(), SUMMARY_ERROR_CODES);
        assert_eq!(s.other_error_codes, 120 - SUMMARY_ERROR_CODES as u64);
        assert_eq!(s.first_failures.len(), SUMMARY_FAILED_ROWS);
        let message = &s.first_failures[0].result_message;
        assert!(
            message.len() <= SUMMARY_MESSAGE_BYTES && message.len() >= 254,
            "{}",
            message.len()
        );
        assert!(serde_json::to_vec(&s).unwrap().len() < 16 * 1024);
    }

    #[test]
    fn report_dirs() {
        assert_eq!(report_dir(None, "j"), "job-j");
        assert_eq!(report_dir(Some(""), "j"), "job-j");
        assert_eq!(report_dir(Some("reports/"), "j"), "reports/job-j");
    }

    #[test]
    fn manifest_json_uses_aws_names() {
        let m = ReportManifest {
            format: REPORT_FORMAT.into(),
            report_creation_date: "2019-04-05T17:48:39.725Z".into(),
            results: vec![ResultFile {
                task_execution_status: "succeeded".into(),
                bucket: "b".into(),
                md5_checksum: "00".into(),
                key: "job-j/results/x.csv".into(),
            }],
            report_schema: REPORT_SCHEMA.into(),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["Format"], "Report_CSV_20180820");
        assert_eq!(v["Results"][0]["MD5Checksum"], "00");
        assert_eq!(v["Results"][0]["TaskExecutionStatus"], "succeeded");
        assert_eq!(v["ReportSchema"], REPORT_SCHEMA);
    }
}
