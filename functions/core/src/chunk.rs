//! The messages that flow between the functions, declared once so that the sender and the
//! receiver cannot drift: [`PlanMessage`] (api → planner), [`Chunk`] (planner → worker) and
//! [`FinalizeMessage`] (worker/planner → finalizer); and the [`Chunker`] that cuts tasks into
//! chunks bounded both by count and by SQS's message size limit.

use serde::{Deserialize, Serialize};

/// SQS's largest message (and largest `SendMessageBatch` payload): 256 KiB.
pub const SQS_MAX_BYTES: usize = 256 * 1024;

/// A chunk body's JSON stays under this, leaving room for SQS's own accounting.
pub const CHUNK_MAX_BYTES: usize = SQS_MAX_BYTES - 6 * 1024;

/// The longest bucket, key, version id or reason a task carries (S3's key limit). A row with
/// a longer field is an invalid task, and an invalid task's fields are cut to this for its
/// report row, so every task fits in a chunk message whatever the manifest holds.
pub const MAX_FIELD_BYTES: usize = 1024;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// One object to operate on: one manifest row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The row's position among the manifest's non-empty rows, from 0.
    pub row: u64,
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Set when the row could not be parsed: the task is reported failed with this message
    /// and never run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

/// A chunk: one SQS message on the work queue. Chunk numbers are dense from 0 and
/// deterministic, which is what makes counting them exactly once possible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub job_id: String,
    pub chunk: u64,
    pub tasks: Vec<Task>,
}

impl Task {
    /// The task with every field within [`MAX_FIELD_BYTES`]: a valid row with a longer key,
    /// version id or bucket becomes invalid (saying which field, and how long it was), and an
    /// invalid row's fields are cut.
    pub fn bounded(mut self) -> Self {
        if self.invalid.is_none() {
            let fields = [
                ("bucket name", self.bucket.len()),
                ("key", self.key.len()),
                (
                    "version id",
                    self.version_id.as_ref().map_or(0, String::len),
                ),
            ];
            if let Some((name, len)) = fields.iter().find(|(_, len)| *len > MAX_FIELD_BYTES) {
                self.invalid = Some(format!(
                    "row {}: the {name} is {len} bytes; at most {MAX_FIELD_BYTES}",
                    self.row + 1
                ));
            }
        }
        if let Some(reason) = self.invalid.as_mut() {
            truncate_utf8(reason, MAX_FIELD_BYTES);
            truncate_utf8(&mut self.bucket, MAX_FIELD_BYTES);
            truncate_utf8(&mut self.key, MAX_FIELD_BYTES);
            if let Some(v) = self.version_id.as_mut() {
                truncate_utf8(v, MAX_FIELD_BYTES);
            }
        }
        self
    }
}

impl Chunk {
    pub fn from_body(body: &str) -> crate::Result<Self> {
        serde_json::from_str(body).map_err(crate::Error::Message)
    }
}

/// Bytes of `s` as a JSON string body (without its quotes), escaped as `serde_json` does:
/// `"` and `\\` and the short control escapes take two bytes, other control characters six
/// (`\\u00XX`), everything else (multi-byte UTF-8 included) is written as is.
fn json_string_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Start (or continue) planning a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMessage {
    pub job_id: String,
}

/// All of a job's chunks are counted: write its report and end it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeMessage {
    pub job_id: String,
}

/// Cuts a stream of tasks into chunks of at most `max_tasks` tasks and at most `max_bytes`
/// of JSON. Memory is one chunk.
pub struct Chunker {
    job_id: String,
    max_tasks: usize,
    max_bytes: usize,
    next_chunk: u64,
    tasks: Vec<Task>,
    bytes: usize,
}

impl Chunker {
    pub fn new(job_id: impl Into<String>, max_tasks: usize, first_chunk: u64) -> Self {
        Self::with_max_bytes(job_id, max_tasks, first_chunk, CHUNK_MAX_BYTES)
    }

    pub fn with_max_bytes(
        job_id: impl Into<String>,
        max_tasks: usize,
        first_chunk: u64,
        max_bytes: usize,
    ) -> Self {
        let job_id = job_id.into();
        Self {
            max_tasks: max_tasks.max(1),
            max_bytes,
            next_chunk: first_chunk,
            tasks: Vec::new(),
            bytes: Self::envelope_bytes(&job_id, first_chunk),
            job_id,
        }
    }

    /// `{"job_id":"…","chunk":N,"tasks":[]}` without its tasks.
    fn envelope_bytes(job_id: &str, chunk: u64) -> usize {
        r#"{"job_id":""#.len()
            + json_string_len(job_id)
            + r#"","chunk":"#.len()
            + decimal_digits(chunk)
            + r#","tasks":[]}"#.len()
    }

    /// The task's JSON size as `serde_json` writes it, plus one for the separating comma,
    /// computed without serialising (the planner's per-row hot path; a unit test and the
    /// `chunk_message` fuzz target hold it equal to the serialised length).
    fn task_bytes(task: &Task) -> usize {
        // {"row":N,"bucket":"…","key":"…"} with ,"version_id":"…" and ,"invalid":"…" when set
        let optional = |name: &str, value: &Option<String>| {
            value.as_deref().map_or(0, |v| {
                r#","":""#.len() + name.len() + json_string_len(v) + 1
            })
        };
        r#"{"row":"#.len()
            + decimal_digits(task.row)
            + r#","bucket":""#.len()
            + json_string_len(&task.bucket)
            + r#"","key":""#.len()
            + json_string_len(&task.key)
            + r#""}"#.len()
            + optional("version_id", &task.version_id)
            + optional("invalid", &task.invalid)
            + 1
    }

    /// Adds a task; returns the open chunk, now full, when this task does not fit in it (by
    /// count or by bytes): the task then opens the next chunk.
    pub fn push(&mut self, task: Task) -> Option<Chunk> {
        let size = Self::task_bytes(&task);
        let full = if !self.tasks.is_empty()
            && (self.tasks.len() >= self.max_tasks || self.bytes + size > self.max_bytes)
        {
            self.take()
        } else {
            None
        };
        self.bytes += size;
        self.tasks.push(task);
        full
    }

    /// The open chunk, if it has any task.
    pub fn finish(&mut self) -> Option<Chunk> {
        self.take()
    }

    /// Number the next chunk will get.
    pub fn next_chunk(&self) -> u64 {
        self.next_chunk
    }

    fn take(&mut self) -> Option<Chunk> {
        if self.tasks.is_empty() {
            return None;
        }
        let chunk = Chunk {
            job_id: self.job_id.clone(),
            chunk: self.next_chunk,
            tasks: std::mem::take(&mut self.tasks),
        };
        self.next_chunk += 1;
        self.bytes = Self::envelope_bytes(&self.job_id, self.next_chunk);
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_an_overlong_field_becomes_invalid_and_its_fields_are_cut() {
        let valid = Task {
            row: 6,
            bucket: "b".into(),
            key: "k".into(),
            version_id: Some("é".repeat(600)),
            invalid: None,
        }
        .bounded();
        assert_eq!(
            valid.invalid.as_deref(),
            Some("row 7: the version id is 1200 bytes; at most 1024")
        );
        assert_eq!(valid.version_id.as_ref().unwrap().len(), 1024);
        let invalid = Task {
            row: 0,
            bucket: "x".repeat(300_000),
            key: "é".repeat(700),
            version_id: None,
            invalid: Some("r".repeat(5000)),
        }
        .bounded();
        assert_eq!(invalid.bucket.len(), 1024);
        assert_eq!(invalid.key.len(), 1024, "cut at a character boundary");
        assert_eq!(invalid.invalid.as_ref().unwrap().len(), 1024);
        let fine = task(3, 1024);
        assert_eq!(
            fine.clone().bounded(),
            fine,
            "a row within the bounds is unchanged"
        );
    }

    fn task(row: u64, key_len: usize) -> Task {
        Task {
            row,
            bucket: "bucket".into(),
            key: "k".repeat(key_len),
            version_id: None,
            invalid: None,
        }
    }

    fn drain(chunker: &mut Chunker, tasks: impl IntoIterator<Item = Task>) -> Vec<Chunk> {
        let mut out: Vec<Chunk> = tasks.into_iter().filter_map(|t| chunker.push(t)).collect();
        out.extend(chunker.finish());
        out
    }

    #[test]
    fn cuts_by_count() {
        let mut c = Chunker::new("job", 1000, 0);
        let chunks = drain(&mut c, (0..2500).map(|i| task(i, 10)));
        assert_eq!(
            chunks.iter().map(|c| c.tasks.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(
            chunks.iter().map(|c| c.chunk).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let rows: Vec<u64> = chunks
            .iter()
            .flat_map(|c| c.tasks.iter().map(|t| t.row))
            .collect();
        assert_eq!(rows, (0..2500).collect::<Vec<_>>());
    }

    #[test]
    fn cuts_by_bytes_under_the_sqs_limit() {
        // 1,000 keys of 1,000 bytes would be ~1 MB: must be split below 256 KiB.
        let mut c = Chunker::new("job", 1000, 7);
        let chunks = drain(&mut c, (0..1000).map(|i| task(i, 1000)));
        assert!(chunks.len() >= 4, "{}", chunks.len());
        assert_eq!(chunks[0].chunk, 7);
        for ch in &chunks {
            let body = serde_json::to_vec(ch).unwrap();
            assert!(body.len() <= CHUNK_MAX_BYTES, "{} bytes", body.len());
        }
        assert_eq!(chunks.iter().map(|c| c.tasks.len()).sum::<usize>(), 1000);
    }

    #[test]
    fn a_single_huge_task_still_gets_its_own_chunk() {
        let mut c = Chunker::with_max_bytes("job", 10, 0, 100);
        let chunks = drain(&mut c, [task(0, 10), task(1, 500), task(2, 10)]);
        assert_eq!(
            chunks.iter().map(|c| c.tasks.len()).collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }

    #[test]
    fn task_bytes_is_the_serialised_length() {
        let all_bytes: String = (0u8..0x80).map(char::from).collect();
        for (key, version, invalid) in [
            ("plain/key.txt".to_string(), None, None),
            (all_bytes.clone(), Some("v\"1\\".to_string()), None),
            (
                "ключ 🗝 \u{7f}\u{1f}".to_string(),
                None,
                Some("row 3: bad\n".to_string()),
            ),
            (String::new(), Some(String::new()), Some(all_bytes)),
        ] {
            for row in [0, 9, 10, 12345, u64::MAX] {
                let t = Task {
                    row,
                    bucket: "my-bucket".into(),
                    key: key.clone(),
                    version_id: version.clone(),
                    invalid: invalid.clone(),
                };
                let json = serde_json::to_vec(&t).unwrap();
                assert_eq!(Chunker::task_bytes(&t), json.len() + 1, "{t:?}");
            }
        }
    }

    #[test]
    fn the_envelope_is_measured_as_serialised() {
        // Found by the chunk_message fuzz target: a job id that JSON must escape.
        for (job_id, chunk) in [
            ("job", 0),
            ("a\"b\\c\u{c}", 9),
            ("ключ", 10),
            ("", u64::MAX),
        ] {
            let empty = Chunk {
                job_id: job_id.into(),
                chunk,
                tasks: vec![],
            };
            let json = serde_json::to_vec(&empty).unwrap();
            assert_eq!(
                Chunker::envelope_bytes(job_id, chunk),
                json.len(),
                "{job_id:?}"
            );
        }
    }

    #[test]
    fn empty_input_makes_no_chunk() {
        let mut c = Chunker::new("job", 10, 0);
        assert!(c.finish().is_none());
        assert_eq!(c.next_chunk(), 0);
    }

    #[test]
    fn chunk_message_round_trips() {
        let ch = Chunk {
            job_id: "j".into(),
            chunk: 3,
            tasks: vec![task(9, 3)],
        };
        let body = serde_json::to_string(&ch).unwrap();
        assert_eq!(Chunk::from_body(&body).unwrap(), ch);
        assert!(Chunk::from_body("{not json").is_err());
    }
}
