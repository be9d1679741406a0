//! `S3PutObjectCopy` with its parameters, and the multipart copy of large objects (with the
//! threshold lowered so that a few MiB count as large), checked by their effect on the copies.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, Permission, ServerSideEncryption, StorageClass, Type};
use batchops_tests::{Row, StackOptions, TestStack, assert_counts, assert_failed_row, row_of};
use serde_json::json;
use std::collections::HashMap;

const MIB: usize = 1 << 20;

async fn tags(stack: &TestStack, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = stack
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let mut pairs: Vec<_> = out
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    pairs.sort();
    pairs
}

async fn put_tagged(stack: &TestStack, bucket: &str, key: &str, body: Vec<u8>) {
    stack
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .content_type("text/x-source")
        .metadata("origin", "source")
        .tagging("team=data&stage=raw")
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_applies_every_destination_parameter() {
    let stack = TestStack::start().await;
    let source = stack.bucket("cpsrc").await;
    // Object Lock settings are left out: moto refuses any PUT carrying lock headers without a
    // Content-MD5, which a CopyObject has no body for (unit tests check they are sent).
    let target = stack.bucket("cpdst").await;
    let keys: Vec<String> = (0..6).map(|i| format!("docs/{i}.txt")).collect();
    for k in &keys {
        put_tagged(&stack, &source, k, format!("content of {k}").into_bytes()).await;
    }
    let owner = stack
        .s3
        .get_object_acl()
        .bucket(&source)
        .key(&keys[0])
        .send()
        .await
        .unwrap()
        .owner()
        .and_then(|o| o.id())
        .unwrap()
        .to_string();
    let mut rows: Vec<Row> = keys.iter().map(|k| Row::new(&source, k)).collect();
    rows.push(Row::new(&source, "docs/absent.txt"));
    let (job, report) = stack
        .run_job(
            &source,
            &rows,
            json!({"S3PutObjectCopy": {
                "TargetResource": format!("arn:aws:s3:::{target}"),
                "TargetKeyPrefix": "copied",
                "StorageClass": "STANDARD_IA",
                "MetadataDirective": "REPLACE",
                "NewObjectMetadata": {"ContentType": "text/plain", "CacheControl": "max-age=60",
                                      "ContentLanguage": "en", "UserMetadata": {"copied-by": "batchops"},
                                      "SSEAlgorithm": "AES256"},
                "NewObjectTagging": [{"Key": "copy", "Value": "yes"}],
                "AccessControlGrants": [
                    {"Grantee": {"TypeIdentifier": "id", "Identifier": owner}, "Permission": "FULL_CONTROL"},
                    {"Grantee": {"TypeIdentifier": "uri", "Identifier": "http://acs.amazonaws.com/groups/global/AllUsers"},
                     "Permission": "READ"}],
                "RedirectLocation": "/moved",
                "ChecksumAlgorithm": "SHA256"
            }}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 6, 1);
    for k in &keys {
        let dest = format!("copied/{k}");
        let head = stack
            .s3
            .head_object()
            .bucket(&target)
            .key(&dest)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{dest}: {e:?}"));
        assert_eq!(
            head.storage_class(),
            Some(&StorageClass::StandardIa),
            "{dest}"
        );
        assert_eq!(head.content_type(), Some("text/plain"));
        assert_eq!(head.cache_control(), Some("max-age=60"));
        assert_eq!(head.content_language(), Some("en"));
        let meta = head.metadata().cloned().unwrap_or_default();
        assert_eq!(meta.get("copied-by").map(String::as_str), Some("batchops"));
        assert!(
            !meta.contains_key("origin"),
            "REPLACE drops the source's metadata"
        );
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        assert_eq!(head.website_redirect_location(), Some("/moved"));
        assert!(
            head.checksum_sha256().is_some(),
            "{dest}: no SHA256 checksum"
        );
        assert_eq!(
            tags(&stack, &target, &dest).await,
            [("copy".to_string(), "yes".to_string())]
        );
        let acl = stack
            .s3
            .get_object_acl()
            .bucket(&target)
            .key(&dest)
            .send()
            .await
            .unwrap();
        assert!(
            acl.grants()
                .iter()
                .any(|g| g.permission() == Some(&Permission::Read)
                    && g.grantee().is_some_and(|e| e.r#type() == &Type::Group
                        && e.uri() == Some("http://acs.amazonaws.com/groups/global/AllUsers"))),
            "{dest}: {:?}",
            acl.grants()
        );
        assert_eq!(
            stack.get(&target, &dest).await.unwrap(),
            format!("content of {k}").into_bytes()
        );
    }
    let missing = row_of(&report, "docs/absent.txt");
    assert_failed_row(missing, "404", "NoSuchKey");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_object_tagging_absent_copies_tags_and_empty_removes_them() {
    let stack = TestStack::start().await;
    let source = stack.bucket("tgsrc").await;
    let keys: Vec<String> = (0..4).map(|i| format!("t{i}")).collect();
    for k in &keys {
        put_tagged(&stack, &source, k, k.clone().into_bytes()).await;
    }
    let rows: Vec<Row> = keys.iter().map(|k| Row::new(&source, k)).collect();
    let (job, report) = stack
        .run_job(
            &source,
            &rows,
            json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{source}"), "TargetKeyPrefix": "kept"}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 4, 0);
    let (job, report) = stack
        .run_job(
            &source,
            &rows,
            json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{source}"), "TargetKeyPrefix": "bare",
                                       "NewObjectTagging": []}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 4, 0);
    let source_tags = [
        ("stage".to_string(), "raw".to_string()),
        ("team".to_string(), "data".to_string()),
    ];
    for k in &keys {
        assert_eq!(
            tags(&stack, &source, &format!("kept/{k}")).await,
            source_tags
        );
        assert!(tags(&stack, &source, &format!("bare/{k}")).await.is_empty());
        let head = stack
            .s3
            .head_object()
            .bucket(&source)
            .key(format!("kept/{k}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.content_type(),
            Some("text/x-source"),
            "COPY keeps metadata"
        );
    }
    stack.dev.stop().await;
}

/// A body of `len` bytes that differs per `seed`.
fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_past_the_threshold_are_copied_part_by_part() {
    let stack = TestStack::start_with(StackOptions {
        workers: 2,
        tune: |c| {
            c.multipart_threshold = 10 * MIB as u64;
            c.multipart_part_size = 5 * MIB as u64;
        },
    })
    .await;
    let source = stack.versioned_bucket("mpsrc").await;
    let target = stack.bucket("mpdst").await;
    let mut bodies = HashMap::new();
    let mut rows = Vec::new();
    for (i, key) in ["big/a.bin", "big/b.bin"].iter().enumerate() {
        let data = body(i as u8, 12 * MIB);
        put_tagged(&stack, &source, key, data.clone()).await;
        let version = stack
            .head(&source, key, None)
            .await
            .version_id()
            .unwrap()
            .to_string();
        rows.push(Row::version(&source, key, &version));
        bodies.insert(key.to_string(), data);
    }
    // An old version: the copy must be of it, not of the current one.
    let old = body(7, 11 * MIB);
    let old_version = stack
        .put(&source, "big/versioned.bin", old.clone())
        .await
        .unwrap();
    stack
        .put(&source, "big/versioned.bin", b"newer".to_vec())
        .await;
    rows.push(Row::version(&source, "big/versioned.bin", &old_version));
    bodies.insert("big/versioned.bin".into(), old);
    // Below the threshold: an ordinary CopyObject.
    let small_version = stack
        .put(&source, "small.txt", b"small".to_vec())
        .await
        .unwrap();
    rows.push(Row::version(&source, "small.txt", &small_version));
    bodies.insert("small.txt".into(), b"small".to_vec());
    rows.push(Row::version(&source, "big/a.bin", "no-such-version"));

    let (job, report) = stack
        .run_job(
            &source,
            &rows,
            json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}")}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 4, 1);
    for (key, data) in &bodies {
        let copied = stack.get(&target, key).await.unwrap();
        assert_eq!(copied.len(), data.len(), "{key}");
        assert!(copied == *data, "{key}: the copy differs from the source");
    }
    for key in ["big/a.bin", "big/b.bin"] {
        let head = stack.head(&target, key, None).await;
        assert!(
            head.e_tag().unwrap().ends_with("-3\""),
            "{key}: a 12 MiB object in 5 MiB parts has a 3-part ETag, got {:?}",
            head.e_tag()
        );
        assert_eq!(
            head.content_type(),
            Some("text/x-source"),
            "metadata carried over"
        );
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("source")
        );
        assert_eq!(
            tags(&stack, &target, key).await,
            [
                ("stage".to_string(), "raw".to_string()),
                ("team".to_string(), "data".to_string())
            ],
            "tags carried over"
        );
    }
    let small = row_of(&report, "small.txt");
    assert_eq!(small.message, "Successful");
    let big = report
        .rows
        .iter()
        .filter(|r| r.status == "succeeded" && r.key.starts_with("big/"))
        .collect::<Vec<_>>();
    assert_eq!(big.len(), 3);
    for r in big {
        assert!(
            r.message
                .starts_with("Successful (multipart copy in 3 parts)"),
            "{r:?}"
        );
    }
    let bad = report.rows.iter().find(|r| r.status == "failed").unwrap();
    assert_eq!(
        (
            bad.http_status.as_str(),
            bad.error_code.as_str(),
            bad.version_id.as_str()
        ),
        ("404", "NoSuchVersion", "no-such-version"),
        "{bad:?}"
    );
    let uploads = stack
        .s3
        .list_multipart_uploads()
        .bucket(&target)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "no upload left open");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_multipart_copy_is_aborted_and_reported() {
    // Parts of 1 MiB are below S3's 5 MiB minimum: CompleteMultipartUpload refuses them
    // (`EntityTooSmall`) after every part was copied, so the upload must be aborted.
    let stack = TestStack::start_with(StackOptions {
        workers: 1,
        tune: |c| {
            c.multipart_threshold = 2 * MIB as u64;
            c.multipart_part_size = MIB as u64;
            c.task_max_attempts = 2;
        },
    })
    .await;
    let source = stack.bucket("absrc").await;
    let target = stack.bucket("abdst").await;
    stack.put(&source, "three.bin", body(3, 3 * MIB)).await;
    let (job, report) = stack
        .run_job(
            &source,
            &[Row::new(&source, "three.bin")],
            json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}")}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 0, 1);
    let row = row_of(&report, "three.bin");
    assert_eq!(
        (row.status.as_str(), row.error_code.as_str()),
        ("failed", "EntityTooSmall"),
        "{row:?}"
    );
    assert!(stack.get(&target, "three.bin").await.is_none());
    let uploads = stack
        .s3
        .list_multipart_uploads()
        .bucket(&target)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "the failed upload was aborted: {:?}",
        uploads.uploads()
    );
    stack.dev.stop().await;
}

/// Security issue §4: with `RequesterPays`, every request the copy makes of the source bucket
/// says the requester pays — the multipart path's HeadObject and GetObjectTagging and a dry
/// run's HeadObject included, not only the CopyObject. The emulator does not enforce requester
/// pays, so the proxy's record of the requests is what is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_requester_pays_copy_says_so_on_every_request_of_the_source() {
    let (proxy, stack) = TestStack::behind_proxy(StackOptions {
        workers: 2,
        tune: |c| {
            c.multipart_threshold = 10 * MIB as u64;
            c.multipart_part_size = 5 * MIB as u64;
        },
    })
    .await;
    let source = stack.bucket("rpsrc").await;
    let target = stack.bucket("rpdst").await;
    let manifests = stack.bucket("rpman").await;
    put_tagged(&stack, &source, "big.bin", body(3, 11 * MIB)).await;
    put_tagged(&stack, &source, "small.txt", b"small".to_vec()).await;
    let rows = [Row::new(&source, "big.bin"), Row::new(&source, "small.txt")];
    let before = proxy.s3_requests().len();
    let copy = json!({"S3PutObjectCopy": {
        "TargetResource": format!("arn:aws:s3:::{target}"), "RequesterPays": true}});
    let (job, report) = stack
        .run_job(&manifests, &rows, copy.clone(), json!({}))
        .await;
    assert_counts(&job, &report, 2, 0);
    assert_eq!(
        tags(&stack, &target, "big.bin").await.len(),
        2,
        "the multipart copy carried the tags over"
    );
    let (job, report) = stack
        .run_job(&manifests, &rows, copy, json!({"DryRun": true}))
        .await;
    assert_counts(&job, &report, 2, 0);

    let of_source: Vec<_> = proxy
        .s3_requests()
        .into_iter()
        .skip(before)
        .filter(|r| r.bucket() == source || r.amz_headers.contains_key("x-amz-copy-source"))
        .collect();
    let heads = of_source.iter().filter(|r| r.method == "HEAD").count();
    let tag_reads = of_source
        .iter()
        .filter(|r| r.method == "GET" && r.target.contains("tagging"))
        .count();
    assert!(
        heads >= 3 && tag_reads >= 1,
        "the multipart HEAD, its tag read and the dry run's HEADs were seen: {of_source:#?}"
    );
    let unpaid: Vec<_> = of_source
        .iter()
        .filter(|r| {
            r.amz_headers.get("x-amz-request-payer").map(String::as_str) != Some("requester")
        })
        .collect();
    assert!(
        unpaid.is_empty(),
        "requests of the requester-pays source without x-amz-request-payer: {unpaid:#?}"
    );
    stack.dev.stop().await;
}
