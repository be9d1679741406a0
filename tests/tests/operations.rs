//! Operations and version ids, checked by their effect on the objects.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, ObjectLockLegalHoldStatus,
    ObjectLockMode, Permission, StorageClass, VersioningConfiguration,
};
use batchops_core::report::encode_key;
use batchops_tests::{Row, TestStack, assert_counts, assert_failed_row, body_of, row_of};
use md5::Digest as _;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_object_tagging_replaces_each_objects_tags() {
    let stack = TestStack::start().await;
    let bucket = stack.bucket("tag").await;
    let keys: Vec<String> = (0..20).map(|i| format!("t/{i} x")).collect();
    stack.put_objects(&bucket, &keys).await;
    let mut rows: Vec<_> = keys.iter().map(|k| (bucket.clone(), k.clone())).collect();
    rows.push((bucket.clone(), "t/absent".into()));
    let etag = stack.put_manifest(&bucket, "m.csv", &rows).await;
    let body = json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "project", "Value": "batchops"}, {"Key": "tier", "Value": "gold"}]}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820"},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{bucket}/m.csv"), "ETag": etag}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{bucket}"), "Prefix": "reports", "ReportScope": "AllTasks"}
    });
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 20);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 1);
    for key in &keys {
        let tags = stack
            .s3
            .get_object_tagging()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let mut pairs: Vec<(String, String)> = tags
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("project".into(), "batchops".into()),
                ("tier".into(), "gold".into())
            ],
            "{key}"
        );
    }
    let report = stack.report(&bucket, "reports", &job_id).await;
    let failed: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.status == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].key, "t/absent");
    assert_eq!(failed[0].http_status, "404");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_honours_the_manifests_version_ids() {
    let stack = TestStack::start().await;
    let source = stack.bucket("ver").await;
    let target = stack.bucket("dst").await;
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
    let mut manifest = String::new();
    for i in 0..5 {
        let key = format!("doc {i}.txt");
        let v1 = stack
            .s3
            .put_object()
            .bucket(&source)
            .key(&key)
            .body(ByteStream::from(
                format!("version one of {key}").into_bytes(),
            ))
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_string();
        stack.put_objects(&source, std::slice::from_ref(&key)).await;
        manifest.push_str(&format!(
            "{source},{},{v1}\n",
            batchops_core::report::encode_key(&key)
        ));
    }
    manifest.push_str(&format!("{source},doc%200.txt,no-such-version\n"));
    let etag = stack
        .put_raw_manifest(&source, "v.csv", manifest.into_bytes())
        .await;
    let body = json!({
        "Operation": {"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{target}")}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::{source}/v.csv"), "ETag": etag}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{target}"), "Prefix": "r", "ReportScope": "AllTasks"}
    });
    let job_id = stack.api.create(&body).await.unwrap();
    let job = stack.wait(&job_id, Duration::from_secs(120)).await;
    assert_eq!(job["Status"], "Complete", "{job}");
    assert_eq!(job["ProgressSummary"]["NumberOfTasksSucceeded"], 5);
    assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"], 1);
    for i in 0..5 {
        let key = format!("doc {i}.txt");
        let copied = stack.get(&target, &key).await.unwrap();
        assert_eq!(
            String::from_utf8(copied).unwrap(),
            format!("version one of {key}")
        );
        assert_ne!(
            stack.get(&source, &key).await.unwrap(),
            format!("version one of {key}").into_bytes()
        );
        assert_eq!(stack.get(&source, &key).await.unwrap(), body_of(&key));
    }
    let report = stack.report(&target, "r", &job_id).await;
    let failed: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.status == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].version_id, "no-such-version");
    assert!(
        report.rows.iter().all(|r| !r.version_id.is_empty()),
        "rows carry their version ids"
    );
    stack.dev.stop().await;
}

async fn tag_pairs(
    stack: &TestStack,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Vec<(String, String)> {
    let out = stack
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(String::from))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_object_tagging_clears_only_the_listed_versions() {
    let stack = TestStack::start().await;
    let bucket = stack.versioned_bucket("dtag").await;
    let mut rows = Vec::new();
    let mut current = Vec::new();
    for i in 0..5 {
        let key = format!("doc {i}");
        let old = stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from_static(b"old"))
            .tagging("era=old")
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let new = stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from_static(b"new"))
            .tagging("era=new")
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        rows.push(Row::version(&bucket, &key, &old));
        current.push((key, new));
    }
    // A bucket that does not exist: moto answers 500 for a missing version here, S3 404.
    let nowhere = batchops_tests::unique("no-such-bucket");
    rows.push(Row::version(&nowhere, "never written", "v"));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3DeleteObjectTagging": {}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 5, 1);
    for (row, (key, new)) in rows.iter().zip(&current) {
        assert!(
            tag_pairs(&stack, &bucket, key, row.version_id.as_deref())
                .await
                .is_empty(),
            "{key}: the listed version has no tags left"
        );
        assert_eq!(
            tag_pairs(&stack, &bucket, key, Some(new)).await,
            [("era".to_string(), "new".to_string())],
            "{key}: the current version keeps its tags"
        );
    }
    let missing = row_of(&report, "never written");
    assert_failed_row(missing, "404", "NoSuchBucket");
    assert!(!missing.message.is_empty());
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_object_acl_applies_a_canned_acl() {
    let stack = TestStack::start().await;
    let bucket = stack.bucket("acl").await;
    let keys: Vec<String> = (0..6).map(|i| format!("public/{i}")).collect();
    stack.put_objects(&bucket, &keys).await;
    let mut rows: Vec<Row> = keys.iter().map(|k| Row::new(&bucket, k)).collect();
    rows.push(Row::new(&bucket, "public/absent"));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 6, 1);
    for k in &keys {
        let acl = stack
            .s3
            .get_object_acl()
            .bucket(&bucket)
            .key(k)
            .send()
            .await
            .unwrap();
        assert!(
            acl.grants()
                .iter()
                .any(|g| g.permission() == Some(&Permission::Read)
                    && g.grantee().and_then(|e| e.uri()) == Some(ALL_USERS)),
            "{k}: {:?}",
            acl.grants()
        );
    }
    let missing = row_of(&report, "public/absent");
    assert_failed_row(missing, "404", "NoSuchKey");
    stack.dev.stop().await;
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_object_acl_replaces_the_acl_with_explicit_grants() {
    let stack = TestStack::start().await;
    let bucket = stack.versioned_bucket("grant").await;
    let mut rows = Vec::new();
    for i in 0..4 {
        let v = stack
            .put(&bucket, &format!("g{i}"), b"data".to_vec())
            .await
            .unwrap();
        rows.push(Row::version(&bucket, &format!("g{i}"), &v));
    }
    rows.push(Row::version(&bucket, "g-absent", "v"));
    let owner = stack
        .s3
        .get_object_acl()
        .bucket(&bucket)
        .key("g0")
        .send()
        .await
        .unwrap()
        .owner()
        .and_then(|o| o.id())
        .unwrap()
        .to_string();
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"AccessControlList": {
                "Owner": {"ID": owner},
                "Grants": [
                    {"Grantee": {"TypeIdentifier": "id", "Identifier": owner}, "Permission": "FULL_CONTROL"},
                    {"Grantee": {"TypeIdentifier": "uri", "Identifier": AUTHENTICATED_USERS}, "Permission": "READ"},
                    {"Grantee": {"TypeIdentifier": "uri", "Identifier": ALL_USERS}, "Permission": "READ_ACP"}
                ]}}}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 4, 1);
    for row in &rows[..4] {
        let acl = stack
            .s3
            .get_object_acl()
            .bucket(&bucket)
            .key(&row.key)
            .set_version_id(row.version_id.clone())
            .send()
            .await
            .unwrap();
        let mut grants: Vec<(String, String)> = acl
            .grants()
            .iter()
            .map(|g| {
                let e = g.grantee().unwrap();
                let who = e.uri().or(e.id()).unwrap_or_default().to_string();
                (who, g.permission().unwrap().as_str().to_string())
            })
            .collect();
        grants.sort();
        let mut expected = vec![
            (owner.clone(), "FULL_CONTROL".to_string()),
            (AUTHENTICATED_USERS.to_string(), "READ".to_string()),
            (ALL_USERS.to_string(), "READ_ACP".to_string()),
        ];
        expected.sort();
        assert_eq!(grants, expected, "{}", row.key);
    }
    let bad = row_of(&report, "g-absent");
    assert_failed_row(bad, "404", "NoSuchKey");
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initiate_restore_starts_restores_of_archived_objects_only() {
    let stack = TestStack::start().await;
    let bucket = stack.bucket("restore").await;
    let keys: Vec<String> = (0..5).map(|i| format!("archive/{i}")).collect();
    for k in &keys {
        stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(k)
            .body(ByteStream::from_static(b"cold"))
            .storage_class(StorageClass::Glacier)
            .send()
            .await
            .unwrap();
    }
    stack.put(&bucket, "hot/standard", b"hot".to_vec()).await;
    let mut rows: Vec<Row> = keys.iter().map(|k| Row::new(&bucket, k)).collect();
    rows.push(Row::new(&bucket, "hot/standard"));
    rows.push(Row::new(&bucket, "archive/absent"));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "BULK"}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 5, 2);
    for k in &keys {
        let head = stack.head(&bucket, k, None).await;
        let restore = head.restore().unwrap_or_default();
        assert!(
            restore.contains("ongoing-request=") && restore.contains("expiry-date="),
            "{k}: x-amz-restore is {restore:?}"
        );
    }
    let hot = row_of(&report, "hot/standard");
    assert_failed_row(hot, "403", "InvalidObjectState");
    assert!(
        hot.message.contains("not in an archive storage class"),
        "{}",
        hot.message
    );
    let absent = row_of(&report, "archive/absent");
    assert_eq!(
        (absent.http_status.as_str(), absent.error_code.as_str()),
        ("404", "NoSuchKey")
    );
    stack.dev.stop().await;
}

/// Puts `n` objects into an Object Lock bucket; returns their rows (with version ids).
async fn locked_objects(stack: &TestStack, bucket: &str, n: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for i in 0..n {
        let key = format!("record {i}");
        // Object Lock buckets want a checksum on every upload.
        let v = stack
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(body_of(&key)))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        rows.push(Row::version(bucket, &key, &v));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_object_retention_locks_each_listed_version() {
    let stack = TestStack::start().await;
    let bucket = stack.object_lock_bucket("retain").await;
    let mut rows = locked_objects(&stack, &bucket, 5).await;
    let (plain, plain_version) = unlocked_object(&stack).await;
    rows.push(Row::version(&plain, "unlockable", &plain_version));
    // Unix seconds, as the AWS CLI also accepts timestamps.
    let until = batchops_core::time::unix_now() + 2 * 86_400;
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until}}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 5, 1);
    for row in &rows[..5] {
        // moto's GetObjectRetention answers 500: HeadObject carries the lock instead.
        let head = stack
            .head(&bucket, &row.key, row.version_id.as_deref())
            .await;
        assert_eq!(
            head.object_lock_mode(),
            Some(&ObjectLockMode::Governance),
            "{}",
            row.key
        );
        assert_eq!(
            head.object_lock_retain_until_date().map(|d| d.secs()),
            Some(until)
        );
    }
    assert_not_lockable(row_of(&report, "unlockable"));
    stack.dev.stop().await;
}

/// An object in a bucket without Object Lock (versioned, so rows can carry its version).
async fn unlocked_object(stack: &TestStack) -> (String, String) {
    let plain = stack.versioned_bucket("nolock").await;
    let v = stack
        .put(&plain, "unlockable", b"x".to_vec())
        .await
        .unwrap();
    (plain, v)
}

fn assert_not_lockable(row: &batchops_cli::client::ReportRow) {
    assert_failed_row(row, "400", "InvalidRequest");
    assert!(row.message.contains("ObjectLockConfiguration"), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_object_legal_hold_holds_each_listed_version() {
    let stack = TestStack::start().await;
    let bucket = stack.object_lock_bucket("hold").await;
    let mut rows = locked_objects(&stack, &bucket, 5).await;
    let (plain, plain_version) = unlocked_object(&stack).await;
    rows.push(Row::version(&plain, "unlockable", &plain_version));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 5, 1);
    for row in &rows[..5] {
        let head = stack
            .head(&bucket, &row.key, row.version_id.as_deref())
            .await;
        assert_eq!(
            head.object_lock_legal_hold_status(),
            Some(&ObjectLockLegalHoldStatus::On),
            "{}",
            row.key
        );
        // A held version cannot be deleted.
        assert!(
            stack
                .s3
                .delete_object()
                .bucket(&bucket)
                .key(&row.key)
                .set_version_id(row.version_id.clone())
                .send()
                .await
                .is_err(),
            "{} is held",
            row.key
        );
    }
    assert_not_lockable(row_of(&report, "unlockable"));
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_object_removes_listed_versions_or_adds_delete_markers() {
    let stack = TestStack::start().await;
    let bucket = stack.versioned_bucket("del").await;
    let mut versions = Vec::new();
    for i in 0..6 {
        let key = format!("item {i}");
        let v1 = stack.put(&bucket, &key, b"one".to_vec()).await.unwrap();
        let v2 = stack.put(&bucket, &key, b"two".to_vec()).await.unwrap();
        versions.push((key, v1, v2));
    }
    let nowhere = batchops_tests::unique("no-such-bucket");

    // With version ids: those versions go for good, the others stay.
    let mut rows: Vec<Row> = versions[..3]
        .iter()
        .map(|(k, v1, _)| Row::version(&bucket, k, v1))
        .collect();
    rows.push(Row::version(&nowhere, "item 0", "v"));
    let (job, report) = stack
        .run_job(&bucket, &rows, json!({"S3DeleteObject": {}}), json!({}))
        .await;
    assert_counts(&job, &report, 3, 1);
    for (key, v1, v2) in &versions[..3] {
        let old = stack
            .s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .version_id(v1)
            .send()
            .await;
        assert!(old.is_err(), "{key}: version {v1} is deleted");
        assert_eq!(stack.get(&bucket, key).await.unwrap(), b"two", "{key}");
        let current = stack.head(&bucket, key, None).await;
        assert_eq!(current.version_id(), Some(v2.as_str()));
    }
    let bad = row_of(&report, "item 0");
    let bad = if bad.status == "failed" {
        bad
    } else {
        report.rows.iter().find(|r| r.status == "failed").unwrap()
    };
    assert_eq!(
        (
            bad.bucket.as_str(),
            bad.http_status.as_str(),
            bad.error_code.as_str()
        ),
        (nowhere.as_str(), "404", "NoSuchBucket"),
        "{bad:?}"
    );

    // Without version ids: a delete marker each; every version is still there.
    let mut rows: Vec<Row> = versions[3..]
        .iter()
        .map(|(k, _, _)| Row::new(&bucket, k))
        .collect();
    rows.push(Row::new(&nowhere, "item 3"));
    let (job, report) = stack
        .run_job(&bucket, &rows, json!({"S3DeleteObject": {}}), json!({}))
        .await;
    assert_counts(&job, &report, 3, 1);
    for (key, v1, v2) in &versions[3..] {
        assert!(
            stack.get(&bucket, key).await.is_none(),
            "{key} reads as deleted"
        );
        let listed = stack
            .s3
            .list_object_versions()
            .bucket(&bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.delete_markers().len(), 1, "{key}: one delete marker");
        let kept: Vec<_> = listed
            .versions()
            .iter()
            .filter_map(|v| v.version_id())
            .collect();
        assert!(
            kept.contains(&v1.as_str()) && kept.contains(&v2.as_str()),
            "{key}: {kept:?}"
        );
        let row = report
            .rows
            .iter()
            .find(|r| r.bucket == bucket && r.key == encode_key(key))
            .unwrap();
        assert!(
            row.message.starts_with("Successful (delete marker "),
            "{row:?}"
        );
    }
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_checks_each_object_and_changes_nothing() {
    let stack = TestStack::start().await;
    let bucket = stack.versioned_bucket("dry").await;
    let mut rows = Vec::new();
    for i in 0..8 {
        let key = format!("keep {i}");
        let v = stack.put(&bucket, &key, body_of(&key)).await.unwrap();
        rows.push(Row::version(&bucket, &key, &v));
    }
    rows.push(Row::version(&bucket, "keep 0", "no-such-version"));
    rows.push(Row::version(&bucket, "never there", "v"));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3DeleteObject": {}}),
            json!({"DryRun": true}),
        )
        .await;
    assert_counts(&job, &report, 8, 2);
    assert_eq!(job["DryRun"], true, "{job}");
    for row in &rows[..8] {
        assert_eq!(
            stack.get(&bucket, &row.key).await.unwrap(),
            body_of(&row.key),
            "{} untouched",
            row.key
        );
        let r = report
            .rows
            .iter()
            .find(|r| r.key == encode_key(&row.key) && r.status == "succeeded")
            .unwrap();
        assert_eq!(
            r.message,
            format!(
                "would run S3DeleteObject ({} bytes)",
                body_of(&row.key).len()
            )
        );
    }
    let mut failed: Vec<(String, String, String)> = report
        .rows
        .iter()
        .filter(|r| r.status == "failed")
        .map(|r| (r.key.clone(), r.http_status.clone(), r.error_code.clone()))
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            (
                "keep%200".to_string(),
                "404".to_string(),
                "NoSuchVersion".to_string()
            ),
            (
                "never%20there".to_string(),
                "404".to_string(),
                "NoSuchVersion".to_string()
            ),
        ]
    );
    stack.dev.stop().await;
}

/// The report message of a checksum task, parsed.
fn checksum_message(report: &batchops_cli::client::Report, key: &str, version: &str) -> Value {
    let row = report
        .rows
        .iter()
        .find(|r| r.key == encode_key(key) && r.version_id == version)
        .unwrap_or_else(|| panic!("no row for {key} {version}"));
    assert_eq!(row.status, "succeeded", "{row:?}");
    serde_json::from_str(&row.message).unwrap_or_else(|e| panic!("{row:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compute_checksum_reports_each_objects_checksum() {
    let stack = TestStack::start().await;
    let bucket = stack.versioned_bucket("sum").await;
    // Single-part objects uploaded with the SDK's CRC32, which S3 keeps: an independent value.
    let mut singles = Vec::new();
    for i in 0..4 {
        let key = format!("one piece {i}");
        let data = body_of(&key).repeat(100 + i);
        let v = stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        singles.push((key, v, data));
    }
    // Overwritten: the listed (old) version is the one checksummed.
    let (old_key, old_version, _) = singles[0].clone();
    stack.put(&bucket, &old_key, b"newer".to_vec()).await;
    // A two-part upload (5 MiB + 1 MiB): its ETag is the MD5 of the parts' MD5s, "-2".
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let upload = stack
        .s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key("two parts")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, range) in [(1, 0..5 * 1024 * 1024), (2, 5 * 1024 * 1024..big.len())] {
        let out = stack
            .s3
            .upload_part()
            .bucket(&bucket)
            .key("two parts")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(big[range].to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let done = stack
        .s3
        .complete_multipart_upload()
        .bucket(&bucket)
        .key("two parts")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let big_version = done.version_id().unwrap().to_string();
    let big_etag = done.e_tag().unwrap().trim_matches('"').to_string();
    assert!(big_etag.ends_with("-2"), "{big_etag}");

    // FULL_OBJECT CRC32 over the single-part versions, plus a key that is not there.
    let mut rows: Vec<Row> = singles
        .iter()
        .map(|(k, v, _)| Row::version(&bucket, k, v))
        .collect();
    rows.push(Row::version(&bucket, "not there", "v"));
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 4, 1);
    for (key, version, _) in &singles {
        let head = stack
            .s3
            .head_object()
            .bucket(&bucket)
            .key(key)
            .version_id(version)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let msg = checksum_message(&report, key, version);
        assert_eq!(
            msg["checksum_base64"],
            head.checksum_crc32().unwrap(),
            "{key}"
        );
        assert_eq!(msg["etag"], head.e_tag().unwrap().trim_matches('"'));
        assert_eq!(msg["checksumAlgorithm"], "CRC32");
        assert_eq!(msg["checksumType"], "FULL_OBJECT");
    }
    assert_eq!(
        checksum_message(&report, &old_key, &old_version)["etag"],
        format!("{:x}", md5::Md5::digest(&singles[0].2)),
        "the old version was read"
    );
    let absent = row_of(&report, "not there");
    assert_eq!(
        (absent.status.as_str(), absent.http_status.as_str()),
        ("failed", "404"),
        "{absent:?}"
    );

    // COMPOSITE MD5: the multipart ETag for the two-part object; a single-part object has
    // no parts, so its checksum is the full-object one (its ETag).
    let rows = [
        Row::version(&bucket, "two parts", &big_version),
        Row::version(&bucket, &singles[1].0, &singles[1].1),
    ];
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows,
            json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "MD5", "ChecksumType": "COMPOSITE"}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 2, 0);
    let msg = checksum_message(&report, "two parts", &big_version);
    assert_eq!(
        msg["checksum_hex"].as_str().unwrap().to_lowercase(),
        big_etag,
        "{msg}"
    );
    assert_eq!(msg["checksumType"], "COMPOSITE");
    let msg = checksum_message(&report, &singles[1].0, &singles[1].1);
    assert_eq!(
        msg["checksum_hex"].as_str().unwrap().to_lowercase(),
        format!("{:x}", md5::Md5::digest(&singles[1].2))
    );
    assert_eq!(msg["checksumType"], "FULL_OBJECT");

    // FULL_OBJECT MD5 of the two-part object: the MD5 of all its bytes.
    let (job, report) = stack
        .run_job(
            &bucket,
            &rows[..1],
            json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "MD5"}}),
            json!({}),
        )
        .await;
    assert_counts(&job, &report, 1, 0);
    let msg = checksum_message(&report, "two parts", &big_version);
    assert_eq!(
        msg["checksum_hex"].as_str().unwrap().to_lowercase(),
        format!("{:x}", md5::Md5::digest(&big))
    );
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_job_refuses_bad_operation_parameters_naming_the_field() {
    let stack = TestStack::start().await;
    let base = |operation: Value| {
        json!({
            "Operation": operation,
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820"},
                         "Location": {"ObjectArn": "arn:aws:s3:::some-bucket/m.csv"}},
            "Report": {"Enabled": false}
        })
    };
    let cases = [
        (
            json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dst-bucket", "StorageClass": "COLD"}}),
            "Operation.S3PutObjectCopy.StorageClass",
        ),
        (
            json!({"S3PutObjectTagging": {"TagSet": [{"Key": "", "Value": "v"}]}}),
            "Operation.S3PutObjectTagging.TagSet[0].Key",
        ),
        (
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "open"}}}),
            "Operation.S3PutObjectAcl.AccessControlPolicy.CannedAccessControlList",
        ),
        (
            json!({"S3InitiateRestoreObject": {"ExpirationInDays": 0}}),
            "Operation.S3InitiateRestoreObject.ExpirationInDays",
        ),
        (
            json!({"S3PutObjectRetention": {"Retention": {"Mode": "COMPLIANCE"}}}),
            "Operation.S3PutObjectRetention.Retention.RetainUntilDate",
        ),
        (
            json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "MAYBE"}}}),
            "Operation.S3PutObjectLegalHold.LegalHold.Status",
        ),
        (
            json!({"LambdaInvoke": {"FunctionArn": "f", "UserArguments": {"a": "b"}}}),
            "Operation.LambdaInvoke.UserArguments",
        ),
        (
            json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"}}),
            "Operation.S3ComputeObjectChecksum.ChecksumType",
        ),
    ];
    for (operation, field) in cases {
        let (status, answer) = stack.post_jobs_raw(base(operation).to_string()).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["Message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{message:?} should name {field}"
        );
    }
    // Unknown fields and unknown operations are refused too.
    for operation in [
        json!({"S3DeleteObject": {"Force": true}}),
        json!({"S3ReplicateObject": {}}),
    ] {
        let (status, answer) = stack.post_jobs_raw(base(operation).to_string()).await;
        assert_eq!(status, 400, "{answer}");
    }
    stack.dev.stop().await;
}
