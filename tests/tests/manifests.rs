//! Manifest formats beyond the CSV one: S3 Inventory reports (`manifest.json` + gzip CSV data
//! files) and the manifest generator (a filtered listing of a bucket), end to end against the
//! emulator.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, StorageClass, VersioningConfiguration};
use batchops_core::report::encode_key;
use batchops_tests::TestStack;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate";

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// One inventory row, every field quoted as S3 Inventory writes it, the key form-encoded.
fn inventory_row(bucket: &str, key: &str, version: &str, latest: bool, marker: bool) -> String {
    let encoded = encode_key(key).replace("%20", "+");
    format!(
        "\"{bucket}\",\"{encoded}\",\"{version}\",\"{latest}\",\"{marker}\",\"12\",\"2026-01-01T00:00:00.000Z\"\n"
    )
}

fn tagging_job(manifest: Value, report_bucket: &str) -> Value {
    json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "batch", "Value": "done"}]}},
        "Manifest": manifest,
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{report_bucket}"),
                   "Format": "Report_CSV_20180820", "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 10
    })
}

fn inventory_manifest(bucket: &str, key: &str) -> Value {
    json!({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
           "Location": {"ObjectArn": format!("arn:aws:s3:::{bucket}/{key}")}})
}

/// Writes data files (gzipped) and a `manifest.json` naming them; `md5_of` lets a test lie.
async fn put_inventory(
    stack: &TestStack,
    source: &str,
    dest: &str,
    files: &[Vec<u8>],
    md5_of: impl Fn(usize, &[u8]) -> String,
) -> String {
    let mut entries = Vec::new();
    for (i, body) in files.iter().enumerate() {
        let key = format!("inv/{source}/cfg/data/file-{i}.csv.gz");
        stack.put_raw_manifest(dest, &key, body.clone()).await;
        entries.push(json!({"key": key, "size": body.len(), "MD5checksum": md5_of(i, body)}));
    }
    let manifest = json!({
        "sourceBucket": source,
        "destinationBucket": format!("arn:aws:s3:::{dest}"),
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": entries,
    });
    let key = "inv/2026-01-01T00-00Z/manifest.json".to_string();
    stack
        .put_raw_manifest(dest, &key, serde_json::to_vec(&manifest).unwrap())
        .await;
    key
}

fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

async fn tags(stack: &TestStack, bucket: &str, key: &str, version: Option<&str>) -> Vec<String> {
    let out = stack
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(String::from))
        .send()
        .await
        .unwrap();
    out.tag_set()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inventory_report_runs_each_listed_version_and_skips_delete_markers() {
    let stack = TestStack::start().await;
    let source = stack.bucket("inv-src").await;
    let dest = stack.bucket("inv-dst").await;
    stack
        .s3
        .put_bucket_versioning()
        .bucket(&source)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Two versions of an awkward key, and plain objects spread over two data files.
    let awkward = "dir/a b+c%d,\"e\" caf\u{e9}.txt";
    let mut versions = Vec::new();
    for body in ["one", "two"] {
        let out = stack
            .s3
            .put_object()
            .bucket(&source)
            .key(awkward)
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
        versions.push(out.version_id().unwrap().to_string());
    }
    let plain: Vec<String> = (0..20).map(|i| format!("plain/{i:02}.txt")).collect();
    let mut plain_versions = Vec::new();
    for k in &plain {
        let out = stack
            .s3
            .put_object()
            .bucket(&source)
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        plain_versions.push(out.version_id().unwrap().to_string());
    }
    let mut first = inventory_row(&source, awkward, &versions[1], true, false);
    first.push_str(&inventory_row(&source, awkward, &versions[0], false, false));
    first.push_str(&inventory_row(&source, "deleted.txt", "dm1", true, true));
    let mut second = String::new();
    for (k, v) in plain.iter().zip(&plain_versions) {
        second.push_str(&inventory_row(&source, k, v, true, false));
    }
    let files = [gzip(&first), gzip(&second)];
    let key = put_inventory(&stack, &source, &dest, &files, |_, b| md5_hex(b)).await;

    let job_id = stack
        .api
        .create(&tagging_job(inventory_manifest(&dest, &key), &dest))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(
        p["TotalNumberOfTasks"], 22,
        "the delete marker is no task: {job}"
    );
    assert_eq!(p["NumberOfTasksSucceeded"], 22, "{job}");
    assert_eq!(
        job["Manifest"]["Spec"]["Format"],
        "S3InventoryReport_CSV_20161130"
    );

    // Each listed version was tagged, not just the latest.
    for v in &versions {
        assert_eq!(
            tags(&stack, &source, awkward, Some(v)).await,
            ["batch=done"]
        );
    }
    for k in &plain {
        assert_eq!(tags(&stack, &source, k, None).await, ["batch=done"]);
    }
    let report = stack.report(&dest, "reports", &job_id).await;
    assert_eq!(report.rows.len(), 22);
    let reported_versions: BTreeSet<&str> = report
        .rows
        .iter()
        .filter(|r| r.key == encode_key(awkward))
        .map(|r| r.version_id.as_str())
        .collect();
    assert_eq!(
        reported_versions,
        versions.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    stack.dev.stop().await;
}

/// Creates an inventory job whose files are `files`, waits for it to end, returns it.
async fn inventory_job_outcome(
    stack: &TestStack,
    files: &[Vec<u8>],
    md5_of: impl Fn(usize, &[u8]) -> String,
    delete_file: Option<usize>,
) -> Value {
    let source = stack.bucket("inv-src").await;
    let dest = stack.bucket("inv-dst").await;
    stack.put_objects(&source, &["a.txt".to_string()]).await;
    let key = put_inventory(stack, &source, &dest, files, md5_of).await;
    if let Some(i) = delete_file {
        stack
            .s3
            .delete_object()
            .bucket(&dest)
            .key(format!("inv/{source}/cfg/data/file-{i}.csv.gz"))
            .send()
            .await
            .unwrap();
    }
    let job_id = stack
        .api
        .create(&tagging_job(inventory_manifest(&dest, &key), &dest))
        .await
        .unwrap();
    stack.wait(&job_id, Duration::from_secs(120)).await
}

fn one_row_file() -> Vec<u8> {
    gzip("\"SRC\",\"a.txt\",\"\",\"true\",\"false\",\"1\",\"2026-01-01T00:00:00.000Z\"\n")
}

fn assert_failed_before_any_task(job: &Value, code: &str, needle: &str) {
    assert_eq!(job["Status"], "Failed", "{job}");
    let reason = &job["FailureReasons"][0];
    assert_eq!(reason["FailureCode"], code, "{job}");
    assert!(
        reason["FailureReason"].as_str().unwrap().contains(needle),
        "{job}"
    );
    let p = &job["ProgressSummary"];
    assert_eq!(p["NumberOfTasksSucceeded"], 0, "{job}");
    assert_eq!(p["NumberOfTasksFailed"], 0, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inventory_data_file_with_a_wrong_md5_fails_the_job_before_any_task_runs() {
    let stack = TestStack::start().await;
    let files = [one_row_file(), one_row_file()];
    let job = inventory_job_outcome(
        &stack,
        &files,
        |i, b| {
            if i == 1 {
                "0123456789abcdef0123456789abcdef".into()
            } else {
                md5_hex(b)
            }
        },
        None,
    )
    .await;
    // The first file is fine and read first, but its row is not queued before the second
    // file's checksum is checked: no task runs, and the reason names the corrupt file.
    assert_failed_before_any_task(&job, "ManifestChecksumMismatch", "file-1.csv.gz");

    let files = [one_row_file()];
    let job = inventory_job_outcome(&stack, &files, |_, _| "00".repeat(16), None).await;
    assert_failed_before_any_task(&job, "ManifestChecksumMismatch", "file-0.csv.gz");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_inventory_data_file_fails_the_job_before_any_task_runs() {
    let stack = TestStack::start().await;
    let files = [one_row_file(), one_row_file()];
    let job = inventory_job_outcome(&stack, &files, |_, b| md5_hex(b), Some(1)).await;
    assert_failed_before_any_task(&job, "ManifestReadFailure", "file-1.csv.gz");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inventory_data_file_that_is_not_gzip_fails_the_job() {
    let stack = TestStack::start().await;
    let files = [b"\"SRC\",\"a.txt\"\n".to_vec()];
    let job = inventory_job_outcome(&stack, &files, |_, b| md5_hex(b), None).await;
    assert_failed_before_any_task(&job, "ManifestReadFailure", "file-0.csv.gz");
    stack.dev.stop().await;
}

fn generator_job(source: &str, out: &str, filter: Value) -> Value {
    json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "batch", "Value": "done"}]}},
        "ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": format!("arn:aws:s3:::{source}"),
            "EnableManifestOutput": true,
            "ManifestOutputLocation": {"Bucket": format!("arn:aws:s3:::{out}"), "ManifestPrefix": "generated",
                                       "ManifestFormat": "S3InventoryReport_CSV_20211130"},
            "Filter": filter
        }},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{out}"), "Format": "Report_CSV_20180820",
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 10
    })
}

async fn tagged(stack: &TestStack, bucket: &str, keys: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in keys {
        if !tags(stack, bucket, k, None).await.is_empty() {
            out.insert(k.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_generator_lists_with_filters_and_writes_the_manifest_it_made() {
    let stack = TestStack::start_with(batchops_tests::StackOptions {
        workers: 4,
        // Small chunks, so the generated manifest spans several chunks.
        tune: |c| c.chunk_size = 4,
    })
    .await;
    let source = stack.bucket("gen-src").await;
    let out = stack.bucket("gen-out").await;
    let mut keys = Vec::new();
    let mut put = |key: String, size: usize, class: Option<StorageClass>| {
        keys.push(key.clone());
        stack
            .s3
            .put_object()
            .bucket(&source)
            .key(key)
            .set_storage_class(class)
            .body(ByteStream::from(vec![b'x'; size]))
            .send()
    };
    // Matches: prefix logs/ or data/, suffix .gz, substring 2026, 10 < size < 100, STANDARD.
    let mut wanted = BTreeSet::new();
    for i in 0..6 {
        let k = format!("logs/2026-{i:02} x+y.gz");
        put(k.clone(), 50, None).await.unwrap();
        wanted.insert(k);
    }
    let k = "data/caf\u{e9}-2026.gz".to_string();
    put(k.clone(), 20, Some(StorageClass::Standard))
        .await
        .unwrap();
    wanted.insert(k);
    put("logs/2026-small.gz".into(), 5, None).await.unwrap();
    put("logs/2026-big.gz".into(), 500, None).await.unwrap();
    put("logs/2025-old.gz".into(), 50, None).await.unwrap();
    put("logs/2026-text.txt".into(), 50, None).await.unwrap();
    put("other/2026-x.gz".into(), 50, None).await.unwrap();
    put("logs/2026-ia.gz".into(), 50, Some(StorageClass::StandardIa))
        .await
        .unwrap();

    let hour_ago =
        batchops_core::time::iso(time::OffsetDateTime::now_utc() - time::Duration::hours(1));
    let filter = json!({
        "CreatedAfter": hour_ago,
        "KeyNameConstraint": {"MatchAnyPrefix": ["logs/", "data/", "logs/2026"],
                              "MatchAnySuffix": [".gz"], "MatchAnySubstring": ["2026"]},
        "ObjectSizeGreaterThanBytes": 10,
        "ObjectSizeLessThanBytes": 100,
        "MatchAnyStorageClass": ["STANDARD"],
        "EligibleForReplication": false
    });
    let job_id = stack
        .api
        .create(&generator_job(&source, &out, filter))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["TotalNumberOfTasks"], 7, "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 7, "{job}");
    assert!(job["ManifestGenerator"]["S3JobManifestGenerator"].is_object());
    assert_eq!(tagged(&stack, &source, &keys).await, wanted);

    // The generated manifest: an inventory-style manifest.json with gzip Bucket,Key files…
    let dir = format!("generated/job-{job_id}");
    let manifest: Value = serde_json::from_slice(
        &stack
            .get(&out, &format!("{dir}/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["fileSchema"], "Bucket, Key");
    assert_eq!(manifest["sourceBucket"], source.as_str());
    let mut listed = BTreeSet::new();
    for f in manifest["files"].as_array().unwrap() {
        let body = stack.get(&out, f["key"].as_str().unwrap()).await.unwrap();
        assert_eq!(f["MD5checksum"], md5_hex(&body));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        for line in text.lines() {
            let (b, k) = line.split_once(',').unwrap();
            assert_eq!(b, source);
            listed.insert(batchops_core::manifest::csv::decode_key(k).unwrap());
        }
    }
    assert_eq!(listed, wanted);

    // …which batchops reads back as an inventory report.
    let again = stack
        .api
        .create(&tagging_job(
            inventory_manifest(&out, &format!("{dir}/manifest.json")),
            &out,
        ))
        .await
        .unwrap();
    let job = stack.wait(&again, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 7, "{job}");

    // A filter nothing passes: the job fails as an empty manifest.
    let filter = json!({"CreatedBefore": hour_ago});
    let job_id = stack
        .api
        .create(&generator_job(&source, &out, filter))
        .await
        .unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Failed", "{job}");
    assert_eq!(job["FailureReasons"][0]["FailureCode"], "ManifestEmpty");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_job_takes_exactly_one_of_manifest_and_generator() {
    let stack = TestStack::start_with(batchops_tests::StackOptions {
        workers: 0,
        tune: |_| {},
    })
    .await;
    let mut both = generator_job("src-bucket", "out-bucket", json!({}));
    both["Manifest"] = inventory_manifest("dst-bucket", "m.json");
    let (status, answer) = stack.post_jobs_raw(both.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["Message"]
            .as_str()
            .unwrap()
            .contains("ManifestGenerator")
    );

    let mut neither = generator_job("src-bucket", "out-bucket", json!({}));
    neither.as_object_mut().unwrap().remove("ManifestGenerator");
    let (status, answer) = stack.post_jobs_raw(neither.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["Message"].as_str().unwrap().contains("Manifest"));

    let bad = generator_job(
        "src-bucket",
        "out-bucket",
        json!({"ObjectSizeLessThanBytes": -1}),
    );
    let (status, answer) = stack.post_jobs_raw(bad.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["Message"]
            .as_str()
            .unwrap()
            .contains("Filter.ObjectSizeLessThanBytes"),
        "{answer}"
    );
    stack.dev.stop().await;
}
