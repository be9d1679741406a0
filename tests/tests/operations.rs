//! Operations and version ids, checked by their effect on the objects.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use batchops_tests::{TestStack, body_of};
use serde_json::json;
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
