//! Building a CreateJob body from `batchops create` flags (or reading it from a file).

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// `batchops create` flags. With `--file`, the body is read from the file and the other flags
/// are not allowed.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CreateFlags {
    /// A CreateJob JSON document (S3 Control field names).
    #[arg(long, conflicts_with_all = ["operation", "manifest"])]
    pub file: Option<std::path::PathBuf>,
    /// `copy` (S3PutObjectCopy) or `tag` (S3PutObjectTagging).
    #[arg(long)]
    pub operation: Option<String>,
    /// The manifest: `s3://bucket/key` or `arn:aws:s3:::bucket/key`.
    #[arg(long)]
    pub manifest: Option<String>,
    /// The manifest's ETag (checked before any task runs).
    #[arg(long)]
    pub manifest_etag: Option<String>,
    /// Manifest columns, e.g. `Bucket,Key,VersionId`.
    #[arg(long)]
    pub fields: Option<String>,
    /// Copy: destination bucket.
    #[arg(long)]
    pub target_bucket: Option<String>,
    /// Copy: destination key prefix.
    #[arg(long)]
    pub target_prefix: Option<String>,
    /// Copy: storage class.
    #[arg(long)]
    pub storage_class: Option<String>,
    /// Tagging: a tag `key=value` (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Report bucket (default: the stack bucket).
    #[arg(long)]
    pub report_bucket: Option<String>,
    #[arg(long, default_value = "reports")]
    pub report_prefix: String,
    /// `AllTasks` or `FailedTasksOnly`.
    #[arg(long, default_value = "AllTasks")]
    pub report_scope: String,
    /// Write no completion report.
    #[arg(long)]
    pub no_report: bool,
    #[arg(long, default_value_t = 10)]
    pub priority: i64,
    #[arg(long)]
    pub description: Option<String>,
    /// Wait in Suspended, with the total known, until `batchops confirm`.
    #[arg(long)]
    pub confirmation_required: bool,
    /// Idempotency token: the same token and body create one job.
    #[arg(long)]
    pub token: Option<String>,
}

fn arn(s3_or_arn: &str) -> String {
    match s3_or_arn.strip_prefix("s3://") {
        Some(rest) => format!("arn:aws:s3:::{rest}"),
        None if s3_or_arn.starts_with("arn:") => s3_or_arn.to_string(),
        None => format!("arn:aws:s3:::{s3_or_arn}"),
    }
}

/// The CreateJob body the flags describe.
pub fn create_body(f: &CreateFlags) -> anyhow::Result<Value> {
    if let Some(path) = &f.file {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_slice(&data)
            .with_context(|| format!("{} is not JSON", path.display()));
    }
    let operation = match f.operation.as_deref() {
        Some("copy" | "S3PutObjectCopy") => {
            let target = f
                .target_bucket
                .as_deref()
                .context("--target-bucket is required for copy")?;
            let mut p = json!({ "TargetResource": arn(target) });
            if let Some(prefix) = &f.target_prefix {
                p["TargetKeyPrefix"] = prefix.clone().into();
            }
            if let Some(sc) = &f.storage_class {
                p["StorageClass"] = sc.clone().into();
            }
            json!({ "S3PutObjectCopy": p })
        }
        Some("tag" | "S3PutObjectTagging") => {
            let tags = f
                .tags
                .iter()
                .map(|t| {
                    let (k, v) = t
                        .split_once('=')
                        .with_context(|| format!("--tag {t:?} is not key=value"))?;
                    Ok(json!({"Key": k, "Value": v}))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            json!({ "S3PutObjectTagging": { "TagSet": tags } })
        }
        Some(other) => {
            bail!("--operation {other:?}: use copy or tag (or --file for any operation)")
        }
        None => bail!("give --file, or --operation with --manifest"),
    };
    let manifest = f.manifest.as_deref().context("--manifest is required")?;
    let mut location = json!({ "ObjectArn": arn(manifest) });
    if let Some(e) = &f.manifest_etag {
        location["ETag"] = e.clone().into();
    }
    let mut spec = json!({ "Format": "S3BatchOperations_CSV_20180820" });
    if let Some(fields) = &f.fields {
        spec["Fields"] = fields
            .split(',')
            .map(|s| s.trim())
            .collect::<Vec<_>>()
            .into();
    }
    let mut report = json!({ "Enabled": !f.no_report });
    if !f.no_report {
        report["Format"] = "Report_CSV_20180820".into();
        report["Prefix"] = f.report_prefix.clone().into();
        report["ReportScope"] = f.report_scope.clone().into();
        if let Some(b) = &f.report_bucket {
            report["Bucket"] = arn(b).into();
        }
    }
    let mut body = json!({
        "Operation": operation,
        "Manifest": { "Spec": spec, "Location": location },
        "Report": report,
        "Priority": f.priority,
        "ConfirmationRequired": f.confirmation_required,
    });
    if let Some(d) = &f.description {
        body["Description"] = d.clone().into();
    }
    if let Some(t) = &f.token {
        body["ClientRequestToken"] = t.clone().into();
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_flags_make_an_s3_control_body() {
        let f = CreateFlags {
            operation: Some("copy".into()),
            manifest: Some("s3://src/m.csv".into()),
            manifest_etag: Some("abc".into()),
            target_bucket: Some("dst".into()),
            target_prefix: Some("p".into()),
            report_prefix: "reports".into(),
            report_scope: "AllTasks".into(),
            priority: 3,
            ..Default::default()
        };
        let body = create_body(&f).unwrap();
        let req: batchops_core::job::CreateJobRequest =
            serde_json::from_value(body.clone()).unwrap();
        req.validate().unwrap();
        assert_eq!(
            body["Manifest"]["Location"]["ObjectArn"],
            "arn:aws:s3:::src/m.csv"
        );
        assert_eq!(
            body["Operation"]["S3PutObjectCopy"]["TargetResource"],
            "arn:aws:s3:::dst"
        );
    }

    #[test]
    fn tag_flags_need_key_value() {
        let mut f = CreateFlags {
            operation: Some("tag".into()),
            manifest: Some("s3://src/m.csv".into()),
            tags: vec!["a=1".into()],
            ..Default::default()
        };
        assert_eq!(
            create_body(&f).unwrap()["Operation"]["S3PutObjectTagging"]["TagSet"][0]["Key"],
            "a"
        );
        f.tags = vec!["oops".into()];
        assert!(create_body(&f).is_err());
        f.operation = Some("teleport".into());
        assert!(create_body(&f).is_err());
    }
}
