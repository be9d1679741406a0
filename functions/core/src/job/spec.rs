//! The CreateJob request, with the field names of the S3 Control API, so that a body written for
//! `aws s3control create-job --cli-input-json` works here unchanged (`AccountId` is accepted and
//! ignored; `RoleArn` is recorded and described, while the stack's own roles act for the job).

use serde::{Deserialize, Serialize};

/// The request's building blocks live in their own modules; re-exported here so that the
/// whole CreateJob body reads as one place.
pub use super::arn::{parse_bucket_arn, parse_object_arn, valid_bucket_name};
pub use super::timestamp::Timestamp;
pub use super::validate::{Invalid, Tag, invalid, validate_tags};
pub use crate::manifest::generator::{
    GENERATED_MANIFEST_FORMAT, JobManifestGenerator, JobManifestGeneratorFilter, KeyNameConstraint,
    S3JobManifestGenerator, S3ManifestOutputLocation,
};
pub use crate::manifest::spec::{
    Columns, JobManifest, ManifestField, ManifestFormat, ManifestLocation, ManifestSpec,
    manifest_columns,
};

/// The operation types live beside their code in [`crate::ops`]; they are re-exported here so
/// that the whole CreateJob body reads as one place.
pub use crate::ops::JobOperation;
pub use crate::ops::acl::{
    AccessControlList, AccessControlPolicy, AclParams, Grant, Grantee, Owner,
};
pub use crate::ops::checksum::ChecksumParams;
pub use crate::ops::copy::{CopyParams, ObjectMetadata};
pub use crate::ops::delete::DeleteParams;
pub use crate::ops::delete_tagging::DeleteTaggingParams;
pub use crate::ops::lambda::LambdaInvokeParams;
pub use crate::ops::legal_hold::{LegalHold, LegalHoldParams};
pub use crate::ops::restore::RestoreParams;
pub use crate::ops::retention::{Retention, RetentionParams};
pub use crate::ops::tagging::TaggingParams;

/// `POST /jobs` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateJobRequest {
    /// Required by [`CreateJobRequest::validate`]; absent only on the record of an intake
    /// object so malformed that no operation could be read from it (a `Failed` job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<JobOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<JobManifest>,
    /// Instead of `Manifest`: list a bucket with filters (exactly one of the two is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generator: Option<JobManifestGenerator>,
    pub report: JobReport,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub confirmation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Beyond AWS: when the job fails (default: 1,000 tasks run and over 50% failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<FailureThreshold>,
    /// Accepted for compatibility with S3 Control bodies; unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Required by S3 Control, so every stock client sends it: recorded and shown by
    /// DescribeJob. The stack's own roles act for the job (no role is assumed yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Beyond AWS: check that each object exists (a HeadObject honouring the version id) and
    /// report what the operation would do, without running it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Once at least `MinTasks` tasks have run and more than `Percent` % of them failed, the job
/// fails (`Failing` → `Failed`) and its remaining chunks are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FailureThreshold {
    pub min_tasks: u64,
    pub percent: u8,
}

impl Default for FailureThreshold {
    fn default() -> Self {
        Self {
            min_tasks: 1000,
            percent: 50,
        }
    }
}

impl FailureThreshold {
    /// Whether `failed` of `run` tasks crosses the threshold.
    pub fn exceeded(&self, run: u64, failed: u64) -> bool {
        run >= self.min_tasks.max(1) && failed * 100 > u64::from(self.percent) * run
    }
}

/// `Report`: whether and where the completion report is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobReport {
    pub enabled: bool,
    /// `arn:aws:s3:::bucket`; defaults to the stack bucket when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<ReportScope>,
    /// The account expected to own the report bucket: accepted and shown; the report is
    /// written with the stack's role, whose allow-list already names the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportScope {
    AllTasks,
    FailedTasksOnly,
}

impl CreateJobRequest {
    /// Checks what serde's types cannot: ARNs, column sets, ranges. The error names the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.priority < 0 || self.priority > i64::from(i32::MAX) {
            return Err(invalid("Priority", "must be between 0 and 2147483647"));
        }
        if let Some(d) = &self.description
            && d.chars().count() > 256
        {
            return Err(invalid("Description", "must be at most 256 characters"));
        }
        if let Some(t) = &self.client_request_token
            && (t.is_empty() || t.len() > 64)
        {
            return Err(invalid("ClientRequestToken", "must be 1 to 64 characters"));
        }
        if let Some(t) = &self.failure_threshold
            && t.percent > 100
        {
            return Err(invalid(
                "FailureThreshold.Percent",
                "must be between 0 and 100",
            ));
        }
        validate_tags("Tags", &self.tags, 50)?;
        self.validate_manifest()?;
        let operation = self
            .operation
            .as_ref()
            .ok_or_else(|| invalid("Operation", "is required"))?;
        operation.validate()?;
        if let Some(b) = &self.report.bucket
            && parse_bucket_arn(b).is_none()
        {
            return Err(invalid(
                "Report.Bucket",
                "must be a bucket ARN like arn:aws:s3:::bucket",
            ));
        }
        if let Some(f) = &self.report.format
            && f != "Report_CSV_20180820"
        {
            return Err(invalid("Report.Format", "must be Report_CSV_20180820"));
        }
        if let Some(p) = &self.report.prefix {
            // Report keys are `<prefix>/job-<id>/results/<digest>.csv`: a prefix of at most
            // 512 bytes keeps them under S3's 1,024-byte key limit.
            if p.is_empty() || p.len() > 512 {
                return Err(invalid("Report.Prefix", "must be 1 to 512 bytes long"));
            }
            if p.chars().any(char::is_control) {
                return Err(invalid(
                    "Report.Prefix",
                    "must not contain control characters",
                ));
            }
        }
        Ok(())
    }

    /// Every bucket the job reads or writes, with the field naming it (for the allow-list).
    pub fn buckets(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(m) = &self.manifest
            && let Some((b, _)) = parse_object_arn(&m.location.object_arn)
        {
            out.push(("Manifest.Location.ObjectArn".to_string(), b));
        }
        if let Some(JobManifestGenerator::S3JobManifestGenerator(g)) = &self.manifest_generator {
            if let Some(b) = parse_bucket_arn(&g.source_bucket) {
                out.push((
                    "ManifestGenerator.S3JobManifestGenerator.SourceBucket".into(),
                    b,
                ));
            }
            if let Some(b) = g
                .manifest_output_location
                .as_ref()
                .and_then(|o| parse_bucket_arn(&o.bucket))
            {
                out.push((
                    "ManifestGenerator.S3JobManifestGenerator.ManifestOutputLocation.Bucket".into(),
                    b,
                ));
            }
        }
        if let Some(b) = self.report.bucket.as_deref().and_then(parse_bucket_arn) {
            out.push(("Report.Bucket".to_string(), b));
        }
        if let Some(op) = &self.operation {
            out.extend(op.buckets());
        }
        out
    }

    /// Why the request may not use the stack's own bucket where it names it, if it does: the
    /// field and the reason. That bucket holds every job's intermediate results and intake
    /// objects, so a job may name it only where it belongs — a manifest under `intake/`, a
    /// report under `reports/`, a generated manifest under `generated/` — whatever the
    /// allow-list says (`*` included).
    pub fn stack_bucket_refusal(&self, stack_bucket: &str) -> Option<(String, String)> {
        let under = |path: Option<&str>, home: &str| {
            let p = path.unwrap_or_default().trim_start_matches('/');
            p == home || p.starts_with(&format!("{home}/"))
        };
        for (field, bucket) in self.buckets() {
            if bucket != stack_bucket {
                continue;
            }
            let refusal = match field.as_str() {
                "Manifest.Location.ObjectArn" => {
                    let key = self
                        .manifest
                        .as_ref()
                        .and_then(|m| parse_object_arn(&m.location.object_arn))
                        .map(|(_, k)| k);
                    (!under(key.as_deref(), "intake")).then(|| {
                        (
                            field,
                            "names the stack's own bucket, which holds manifests only under intake/"
                                .to_string(),
                        )
                    })
                }
                "Report.Bucket" => (!under(self.report.prefix.as_deref(), "reports")).then(|| {
                    (
                        "Report.Prefix".to_string(),
                        "reports in the stack's own bucket go under reports/ (a report under \
                         intake/ would start a job)"
                            .to_string(),
                    )
                }),
                "ManifestGenerator.S3JobManifestGenerator.ManifestOutputLocation.Bucket" => {
                    let prefix = match &self.manifest_generator {
                        Some(JobManifestGenerator::S3JobManifestGenerator(g)) => g
                            .manifest_output_location
                            .as_ref()
                            .and_then(|o| o.manifest_prefix.clone()),
                        None => None,
                    };
                    (!under(prefix.as_deref(), "generated")).then(|| {
                        (
                            "ManifestGenerator.S3JobManifestGenerator.ManifestOutputLocation.ManifestPrefix"
                                .to_string(),
                            "generated manifests in the stack's own bucket go under generated/"
                                .to_string(),
                        )
                    })
                }
                _ => Some((
                    field,
                    "names the stack's own bucket, which holds other jobs' results: no job may \
                     read or change objects there"
                        .to_string(),
                )),
            };
            if refusal.is_some() {
                return refusal;
            }
        }
        None
    }

    pub fn failure_threshold(&self) -> FailureThreshold {
        self.failure_threshold.unwrap_or_default()
    }

    pub fn report_scope(&self) -> ReportScope {
        self.report.report_scope.unwrap_or(ReportScope::AllTasks)
    }
}

impl CreateJobRequest {
    /// Exactly one of `Manifest` and `ManifestGenerator`, each well formed.
    fn validate_manifest(&self) -> Result<(), Invalid> {
        match (&self.manifest, &self.manifest_generator) {
            (Some(_), Some(_)) => Err(invalid(
                "ManifestGenerator",
                "give either Manifest or ManifestGenerator, not both",
            )),
            (None, None) => Err(invalid(
                "Manifest",
                "is required (or give a ManifestGenerator instead)",
            )),
            (Some(manifest), None) => {
                if parse_object_arn(&manifest.location.object_arn).is_none() {
                    return Err(invalid(
                        "Manifest.Location.ObjectArn",
                        "must be an S3 object ARN like arn:aws:s3:::bucket/key",
                    ));
                }
                match manifest.spec.format {
                    ManifestFormat::BatchOperationsCsv => {
                        manifest_columns(manifest.spec.fields.as_deref())
                            .map_err(|m| invalid("Manifest.Spec.Fields", m))?;
                    }
                    ManifestFormat::InventoryReportCsv => {
                        if manifest.spec.fields.is_some() {
                            return Err(invalid(
                                "Manifest.Spec.Fields",
                                "an inventory report names its columns in its manifest.json \
                                 (fileSchema); Fields is only for S3BatchOperations_CSV_20180820",
                            ));
                        }
                    }
                }
                Ok(())
            }
            (None, Some(generator)) => generator.s3().validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> serde_json::Value {
        serde_json::json!({
            "Operation": {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dest-bucket"}},
            "Manifest": {
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": "arn:aws:s3:::src-bucket/manifest.csv", "ETag": "abc"}
            },
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::rep-bucket", "Format": "Report_CSV_20180820",
                       "Prefix": "reports", "ReportScope": "AllTasks"},
            "Priority": 10,
            "ConfirmationRequired": false
        })
    }

    #[test]
    fn s3_control_body_parses_and_validates() {
        let req: CreateJobRequest = serde_json::from_value(body()).unwrap();
        req.validate().unwrap();
        let buckets: Vec<_> = req.buckets().into_iter().map(|(_, b)| b).collect();
        assert_eq!(buckets, ["src-bucket", "rep-bucket", "dest-bucket"]);
    }

    #[test]
    fn unknown_operation_is_refused() {
        let mut b = body();
        b["Operation"] = serde_json::json!({"S3Teleport": {}});
        assert!(serde_json::from_value::<CreateJobRequest>(b).is_err());
    }

    #[test]
    fn bad_arn_names_the_field() {
        let mut b = body();
        b["Manifest"]["Location"]["ObjectArn"] = "s3://src/manifest.csv".into();
        let req: CreateJobRequest = serde_json::from_value(b).unwrap();
        assert_eq!(
            req.validate().unwrap_err().field,
            "Manifest.Location.ObjectArn"
        );
    }

    #[test]
    fn negative_priority_is_refused() {
        let mut b = body();
        b["Priority"] = (-1).into();
        let req: CreateJobRequest = serde_json::from_value(b).unwrap();
        assert_eq!(req.validate().unwrap_err().field, "Priority");
    }

    #[test]
    fn failure_threshold_semantics() {
        let t = FailureThreshold::default();
        assert!(!t.exceeded(999, 999), "not before MinTasks have run");
        assert!(!t.exceeded(1000, 500), "exactly 50% is not more than 50%");
        assert!(t.exceeded(1000, 501));
        let strict = FailureThreshold {
            min_tasks: 10,
            percent: 0,
        };
        assert!(strict.exceeded(10, 1) && !strict.exceeded(10, 0));
    }

    #[test]
    fn tags_are_checked() {
        let tag = |k: &str| Tag {
            key: k.into(),
            value: "v".into(),
        };
        assert!(validate_tags("Tags", &[tag("a"), tag("b")], 50).is_ok());
        assert_eq!(
            validate_tags("Tags", &[tag("a"), tag("a")], 50)
                .unwrap_err()
                .field,
            "Tags"
        );
        assert!(validate_tags("Tags", &[tag("")], 50).is_err());
        assert!(validate_tags("Tags", &[tag("a"), tag("b")], 1).is_err());
    }

    fn generator_body() -> serde_json::Value {
        let mut b = body();
        b.as_object_mut().unwrap().remove("Manifest");
        b["ManifestGenerator"] = serde_json::json!({"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::src-bucket",
            "EnableManifestOutput": true,
            "ManifestOutputLocation": {"Bucket": "arn:aws:s3:::out-bucket", "ManifestPrefix": "gen",
                                       "ManifestFormat": "S3InventoryReport_CSV_20211130"},
            "Filter": {"CreatedAfter": "2026-01-01T00:00:00Z", "CreatedBefore": 1900000000,
                       "KeyNameConstraint": {"MatchAnyPrefix": ["a/"], "MatchAnySuffix": [".txt"],
                                             "MatchAnySubstring": ["x"]},
                       "ObjectSizeGreaterThanBytes": 0, "ObjectSizeLessThanBytes": 100,
                       "MatchAnyStorageClass": ["STANDARD"], "EligibleForReplication": true}
        }});
        b
    }

    #[test]
    fn manifest_generator_parses_and_validates() {
        let req: CreateJobRequest = serde_json::from_value(generator_body()).unwrap();
        req.validate().unwrap();
        let g = req.manifest_generator.as_ref().unwrap().s3();
        let f = g.filter.as_ref().unwrap();
        assert_eq!(
            f.created_after.as_ref().unwrap().epoch_millis(),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            f.created_before.as_ref().unwrap().epoch_millis(),
            Some(1_900_000_000_000)
        );
        let buckets: Vec<_> = req.buckets().into_iter().map(|(_, b)| b).collect();
        assert_eq!(
            buckets,
            ["src-bucket", "out-bucket", "rep-bucket", "dest-bucket"]
        );
        // Round-trips through the stored record.
        let again: CreateJobRequest =
            serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(again, req);
    }

    #[test]
    fn exactly_one_manifest_source() {
        let mut both = generator_body();
        both["Manifest"] = body()["Manifest"].clone();
        let req: CreateJobRequest = serde_json::from_value(both).unwrap();
        assert_eq!(req.validate().unwrap_err().field, "ManifestGenerator");
        let mut neither = body();
        neither.as_object_mut().unwrap().remove("Manifest");
        let req: CreateJobRequest = serde_json::from_value(neither).unwrap();
        assert_eq!(req.validate().unwrap_err().field, "Manifest");
    }

    #[test]
    fn generator_errors_name_the_field() {
        let at = "ManifestGenerator.S3JobManifestGenerator";
        // An unreadable timestamp is refused while parsing the body (a 400 naming it).
        let mut b = generator_body();
        b["ManifestGenerator"]["S3JobManifestGenerator"]["Filter"] =
            serde_json::json!({"CreatedAfter": "yesterday"});
        let err = serde_json::from_value::<CreateJobRequest>(b).unwrap_err();
        assert!(err.to_string().contains("invalid timestamp"), "{err}");
        let cases: [(&str, serde_json::Value, String); 4] = [
            (
                "SourceBucket",
                "not an arn!".into(),
                format!("{at}.SourceBucket"),
            ),
            (
                "Filter",
                serde_json::json!({"MatchAnyStorageClass": ["COLD"]}),
                format!("{at}.Filter.MatchAnyStorageClass"),
            ),
            (
                "Filter",
                serde_json::json!({"ObjectReplicationStatuses": ["FAILED"]}),
                format!("{at}.Filter.ObjectReplicationStatuses"),
            ),
            (
                "ManifestOutputLocation",
                serde_json::json!({"Bucket": "arn:aws:s3:::out-bucket", "ManifestFormat": "CSV"}),
                format!("{at}.ManifestOutputLocation.ManifestFormat"),
            ),
        ];
        for (name, value, field) in cases {
            let mut b = generator_body();
            b["ManifestGenerator"]["S3JobManifestGenerator"][name] = value;
            let req: CreateJobRequest = serde_json::from_value(b).unwrap();
            assert_eq!(req.validate().unwrap_err().field, field);
        }
        let mut b = generator_body();
        b["ManifestGenerator"]["S3JobManifestGenerator"]
            .as_object_mut()
            .unwrap()
            .remove("ManifestOutputLocation");
        let req: CreateJobRequest = serde_json::from_value(b).unwrap();
        assert_eq!(
            req.validate().unwrap_err().field,
            format!("{at}.ManifestOutputLocation")
        );
    }

    #[test]
    fn inventory_format_takes_no_fields() {
        let mut b = body();
        b["Manifest"]["Spec"]["Format"] = "S3InventoryReport_CSV_20161130".into();
        let req: CreateJobRequest = serde_json::from_value(b.clone()).unwrap();
        assert_eq!(req.validate().unwrap_err().field, "Manifest.Spec.Fields");
        b["Manifest"]["Spec"]
            .as_object_mut()
            .unwrap()
            .remove("Fields");
        let req: CreateJobRequest = serde_json::from_value(b).unwrap();
        req.validate().unwrap();
        assert_eq!(
            req.manifest.unwrap().spec.format,
            ManifestFormat::InventoryReportCsv
        );
    }

    #[test]
    fn dry_run_round_trips() {
        let mut b = body();
        b["DryRun"] = true.into();
        let req: CreateJobRequest = serde_json::from_value(b).unwrap();
        assert!(req.dry_run);
        assert_eq!(serde_json::to_value(&req).unwrap()["DryRun"], true);
        let plain: CreateJobRequest = serde_json::from_value(body()).unwrap();
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("DryRun")
                .is_none()
        );
    }
}
