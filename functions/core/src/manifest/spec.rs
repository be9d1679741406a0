//! The `Manifest` of a CreateJob body (S3 Control's names), beside the readers that follow it:
//! where the object list is, its format, and the columns of a CSV manifest.

use serde::{Deserialize, Serialize};

/// `Manifest`: where the object list is and how it is laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobManifest {
    pub spec: ManifestSpec,
    pub location: ManifestLocation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestSpec {
    pub format: ManifestFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<ManifestField>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestFormat {
    #[serde(rename = "S3BatchOperations_CSV_20180820")]
    BatchOperationsCsv,
    /// An S3 Inventory report: `Location` names its `manifest.json`, whose `files` are gzip CSV
    /// data files with the columns of its `fileSchema`. The 2021 name (the format a manifest
    /// generator writes) is read the same way.
    #[serde(
        rename = "S3InventoryReport_CSV_20161130",
        alias = "S3InventoryReport_CSV_20211130"
    )]
    InventoryReportCsv,
}

/// A column of an `S3BatchOperations_CSV_20180820` manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestField {
    Ignore,
    Bucket,
    Key,
    VersionId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestLocation {
    /// `arn:aws:s3:::bucket/key` of the manifest object.
    pub object_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
    /// Required by AWS; optional here. When given it must match the object's ETag.
    #[serde(default, rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// Column positions of an `S3BatchOperations_CSV_20180820` manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    pub count: usize,
    pub bucket: usize,
    pub key: usize,
    pub version_id: Option<usize>,
}

/// Resolves `Spec.Fields` (default `Bucket, Key`): exactly one `Bucket` and one `Key`, at most
/// one `VersionId`, any number of `Ignore`.
pub fn manifest_columns(fields: Option<&[ManifestField]>) -> Result<Columns, String> {
    let fields = fields.unwrap_or(&[ManifestField::Bucket, ManifestField::Key]);
    let find = |f: ManifestField| -> Result<Option<usize>, String> {
        let mut at = fields
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == f)
            .map(|(i, _)| i);
        let first = at.next();
        if at.next().is_some() {
            return Err(format!("{f:?} appears more than once"));
        }
        Ok(first)
    };
    Ok(Columns {
        count: fields.len(),
        bucket: find(ManifestField::Bucket)?.ok_or("must include Bucket")?,
        key: find(ManifestField::Key)?.ok_or("must include Key")?,
        version_id: find(ManifestField::VersionId)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_need_bucket_and_key_once() {
        use ManifestField::*;
        assert_eq!(
            manifest_columns(Some(&[Ignore, Bucket, Key, VersionId])).unwrap(),
            Columns {
                count: 4,
                bucket: 1,
                key: 2,
                version_id: Some(3)
            }
        );
        assert!(manifest_columns(Some(&[Bucket])).is_err());
        assert!(manifest_columns(Some(&[Bucket, Key, Key])).is_err());
        assert_eq!(manifest_columns(None).unwrap().count, 2);
    }
}
