//! The S3 intake: an object created under `intake/` in the stack bucket starts a job.
//!
//! - A JSON object (`.json` key or `application/json` content type) is a CreateJob body; its
//!   `Manifest` may point at any allowed bucket.
//! - Anything else is an `S3BatchOperations_CSV_20180820` manifest, and the job comes from the
//!   object's user metadata (`x-amz-meta-…`):
//!
//! | metadata | meaning | default |
//! |---|---|---|
//! | `operation` | `S3PutObjectCopy` or `S3PutObjectTagging` (required) | |
//! | `target-bucket`, `target-prefix`, `storage-class` | copy destination | |
//! | `tags` | tag set for `S3PutObjectTagging`, form-encoded: `k1=v1&k2=v2` | |
//! | `fields` | manifest columns, e.g. `Bucket,Key,VersionId` | `Bucket,Key` |
//! | `report-bucket`, `report-prefix`, `report-scope` | completion report | stack bucket, `reports`, `AllTasks` |
//! | `priority`, `description`, `confirmation-required` | as in CreateJob | `0`, none, `false` |
//!
//! S3 may deliver an event twice: the job's `ClientRequestToken` is derived from the object's
//! bucket, key and ETag, so a redelivery finds the same job. A bad intake object becomes a
//! `Failed` job whose `FailureReasons` say what is wrong — never silence.

use crate::Deps;
use crate::job::spec::{
    CopyParams, JobManifest, JobOperation, JobReport, ManifestField, ManifestFormat,
    ManifestLocation, ManifestSpec, ReportScope, Tag, TaggingParams,
};
use crate::job::{Actor, CreateJobRequest};
use crate::jobs::{self, ServiceError};
use md5::{Digest, Md5};
use std::collections::HashMap;
use tracing::{info, instrument};

/// Key prefix of the intake in the stack bucket.
pub const INTAKE_PREFIX: &str = "intake/";

/// Largest JSON intake object read.
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Decodes a key as S3 event notifications carry it (form-urlencoded: `+` is a space).
pub fn decode_event_key(raw: &str) -> Option<String> {
    crate::manifest::csv::decode_key(raw).ok()
}

/// What happened to an intake object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intake {
    Started(String),
    Failed(String),
    Ignored(String),
}

/// Starts a job from an intake object uploaded by `uploader` (the S3 event's
/// `userIdentity.principalId`; the emulator sends none), recorded as the job's creator. Only a
/// store or queue outage is an `Err` (the event is then redelivered); every problem with the
/// object itself ends as a `Failed` job.
#[instrument(skip(deps))]
pub async fn start_from_object(
    deps: &Deps,
    bucket: &str,
    key: &str,
    uploader: Option<&str>,
) -> crate::Result<Intake> {
    let actor = Actor::intake(uploader.map(String::from));
    info!(uploader = actor.name(), "intake object");
    if bucket != deps.config.bucket || !key.starts_with(INTAKE_PREFIX) || key.ends_with('/') {
        info!("not an intake object; ignored");
        return Ok(Intake::Ignored(format!(
            "s3://{bucket}/{key} is not under {INTAKE_PREFIX}"
        )));
    }
    let head = match deps.objects.head(bucket, key).await {
        Ok(h) => h,
        // Deleted before we looked: nothing to start, nothing to report.
        Err(crate::Error::S3 {
            status: Some(404), ..
        }) => {
            return Ok(Intake::Ignored(format!(
                "s3://{bucket}/{key} no longer exists"
            )));
        }
        Err(e) => return Err(e),
    };
    let token = hex::encode(Md5::digest(format!("{bucket}/{key}/{}", head.etag)));
    let location = ManifestLocation {
        object_arn: format!("arn:aws:s3:::{bucket}/{key}"),
        object_version_id: None,
        etag: Some(head.etag.clone()),
    };
    let is_json = key.ends_with(".json")
        || head
            .content_type
            .as_deref()
            .is_some_and(|c| c.contains("json"));
    let request = if is_json {
        if head.size > MAX_JSON_BYTES as i64 {
            Err(format!(
                "the CreateJob document is {} bytes; at most {MAX_JSON_BYTES} are read",
                head.size
            ))
        } else {
            // The object checked above, not one written since (that one has its own event).
            let data = match deps
                .objects
                .get_bytes_if(bucket, key, Some(&head.etag))
                .await
            {
                Ok(data) => data,
                Err(crate::Error::S3 {
                    status: Some(404 | 412),
                    ..
                }) => {
                    return Ok(Intake::Ignored(format!(
                        "s3://{bucket}/{key} changed after it was checked; its new version's \
                         event starts its job"
                    )));
                }
                Err(e) => return Err(e),
            };
            serde_json::from_slice::<CreateJobRequest>(&data)
                .map_err(|e| format!("the intake object is not a valid CreateJob document: {e}"))
        }
    } else {
        request_from_metadata(&head.metadata, location.clone(), &deps.config.bucket)
    };
    let mut request = match request {
        Ok(r) => r,
        Err(reason) => return failed(deps, location, &token, &reason, &actor).await,
    };
    request.client_request_token.get_or_insert(token.clone());
    match jobs::create_job(deps, request, &actor).await {
        Ok(job_id) => Ok(Intake::Started(job_id)),
        Err(ServiceError::Internal(e)) => Err(e),
        Err(refused) => failed(deps, location, &token, &refused.to_string(), &actor).await,
    }
}

async fn failed(
    deps: &Deps,
    location: ManifestLocation,
    token: &str,
    reason: &str,
    actor: &Actor,
) -> crate::Result<Intake> {
    let request = CreateJobRequest {
        operation: None,
        manifest: Some(JobManifest {
            spec: ManifestSpec {
                format: ManifestFormat::BatchOperationsCsv,
                fields: None,
            },
            location,
        }),
        report: JobReport {
            enabled: false,
            bucket: None,
            format: None,
            prefix: None,
            report_scope: None,
            expected_bucket_owner: None,
        },
        priority: 0,
        confirmation_required: false,
        client_request_token: Some(token.to_string()),
        description: Some("intake object refused".into()),
        tags: Vec::new(),
        failure_threshold: None,
        account_id: None,
        role_arn: None,
        dry_run: false,
        manifest_generator: None,
    };
    let job_id = jobs::create_failed_job(deps, request, "IntakeInvalid", reason, actor).await?;
    Ok(Intake::Failed(job_id))
}

/// Builds a CreateJob request from a CSV intake object's user metadata.
pub fn request_from_metadata(
    meta: &HashMap<String, String>,
    location: ManifestLocation,
    stack_bucket: &str,
) -> Result<CreateJobRequest, String> {
    let get = |k: &str| {
        meta.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let operation = match get("operation").as_deref() {
        None => return Err("the intake object has no x-amz-meta-operation".into()),
        Some("S3PutObjectCopy") => JobOperation::S3PutObjectCopy(Box::new(CopyParams {
            target_resource: format!(
                "arn:aws:s3:::{}",
                get("target-bucket").ok_or("S3PutObjectCopy needs x-amz-meta-target-bucket")?
            ),
            target_key_prefix: get("target-prefix"),
            storage_class: get("storage-class"),
            ..Default::default()
        })),
        Some("S3PutObjectTagging") => {
            let tags =
                get("tags").ok_or("S3PutObjectTagging needs x-amz-meta-tags (k1=v1&k2=v2)")?;
            let tag_set = tags
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let dec = |s: &str| {
                        decode_event_key(s).ok_or_else(|| format!("bad tag encoding in {pair:?}"))
                    };
                    Ok(Tag {
                        key: dec(k)?,
                        value: dec(v)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            JobOperation::S3PutObjectTagging(TaggingParams { tag_set })
        }
        Some(other) => {
            return Err(format!(
                "x-amz-meta-operation {other:?} is not an operation intake supports"
            ));
        }
    };
    let fields = match get("fields") {
        None => None,
        Some(f) => Some(
            f.split(',')
                .map(|c| match c.trim() {
                    "Bucket" => Ok(ManifestField::Bucket),
                    "Key" => Ok(ManifestField::Key),
                    "VersionId" => Ok(ManifestField::VersionId),
                    "Ignore" => Ok(ManifestField::Ignore),
                    other => Err(format!(
                        "x-amz-meta-fields: {other:?} is not Bucket, Key, VersionId or Ignore"
                    )),
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
    };
    let report_scope = match get("report-scope").as_deref() {
        None | Some("AllTasks") => ReportScope::AllTasks,
        Some("FailedTasksOnly") => ReportScope::FailedTasksOnly,
        Some(other) => {
            return Err(format!(
                "x-amz-meta-report-scope {other:?} is not AllTasks or FailedTasksOnly"
            ));
        }
    };
    let priority = match get("priority") {
        None => 0,
        Some(p) => p
            .parse()
            .map_err(|_| format!("x-amz-meta-priority {p:?} is not a number"))?,
    };
    Ok(CreateJobRequest {
        operation: Some(operation),
        manifest: Some(JobManifest {
            spec: ManifestSpec {
                format: ManifestFormat::BatchOperationsCsv,
                fields,
            },
            location,
        }),
        report: JobReport {
            enabled: true,
            bucket: Some(format!(
                "arn:aws:s3:::{}",
                get("report-bucket").unwrap_or_else(|| stack_bucket.to_string())
            )),
            format: Some("Report_CSV_20180820".into()),
            prefix: Some(get("report-prefix").unwrap_or_else(|| "reports".into())),
            report_scope: Some(report_scope),
            expected_bucket_owner: None,
        },
        priority,
        confirmation_required: matches!(
            get("confirmation-required").as_deref(),
            Some("true" | "TRUE" | "1" | "yes")
        ),
        client_request_token: None,
        description: get("description"),
        tags: Vec::new(),
        failure_threshold: None,
        account_id: None,
        role_arn: None,
        dry_run: matches!(
            get("dry-run").as_deref(),
            Some("true" | "TRUE" | "1" | "yes")
        ),
        manifest_generator: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location() -> ManifestLocation {
        ManifestLocation {
            object_arn: "arn:aws:s3:::stack-bucket/intake/m.csv".into(),
            object_version_id: None,
            etag: Some("e".into()),
        }
    }

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn copy_from_metadata() {
        let r = request_from_metadata(
            &meta(&[
                ("operation", "S3PutObjectCopy"),
                ("target-bucket", "dest-bkt"),
                ("target-prefix", "p"),
                ("priority", "7"),
            ]),
            location(),
            "stack-bucket",
        )
        .unwrap();
        r.validate().unwrap();
        assert_eq!(r.priority, 7);
        assert_eq!(
            r.report.bucket.as_deref(),
            Some("arn:aws:s3:::stack-bucket")
        );
        match r.operation.unwrap() {
            JobOperation::S3PutObjectCopy(p) => {
                assert_eq!(p.target_resource, "arn:aws:s3:::dest-bkt");
                assert_eq!(p.target_key_prefix.as_deref(), Some("p"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tagging_from_metadata() {
        let r = request_from_metadata(
            &meta(&[
                ("operation", "S3PutObjectTagging"),
                ("tags", "a=1&b=two+words"),
                ("fields", "Bucket,Key,VersionId"),
            ]),
            location(),
            "stack-bucket",
        )
        .unwrap();
        r.validate().unwrap();
        match r.operation.unwrap() {
            JobOperation::S3PutObjectTagging(p) => {
                assert_eq!(
                    p.tag_set[1],
                    Tag {
                        key: "b".into(),
                        value: "two words".into()
                    }
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_metadata_is_explained() {
        for (pairs, needle) in [
            (vec![], "x-amz-meta-operation"),
            (vec![("operation", "S3Teleport")], "S3Teleport"),
            (vec![("operation", "S3PutObjectCopy")], "target-bucket"),
            (vec![("operation", "S3PutObjectTagging")], "tags"),
            (
                vec![
                    ("operation", "S3PutObjectTagging"),
                    ("tags", "a=1"),
                    ("fields", "Bucket,Nope"),
                ],
                "Nope",
            ),
            (
                vec![
                    ("operation", "S3PutObjectTagging"),
                    ("tags", "a=1"),
                    ("priority", "high"),
                ],
                "priority",
            ),
        ] {
            let err = request_from_metadata(&meta(&pairs), location(), "stack-bucket").unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle}");
        }
    }

    #[test]
    fn event_keys_are_form_decoded() {
        assert_eq!(
            decode_event_key("intake/my+manifest%2B1.csv").as_deref(),
            Some("intake/my manifest+1.csv")
        );
    }
}
