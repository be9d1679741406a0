//! Fuzzes the `S3BatchOperations_CSV_20180820` row parser: any bytes, any column layout.
//! It must never panic; rows are numbered densely; a task not marked invalid has a valid
//! bucket name and a key of 1 to 1,024 bytes.
#![no_main]

use batchops_core::job::spec::{ManifestField, manifest_columns, valid_bucket_name};
use batchops_core::manifest::csv::{MAX_KEY_BYTES, Rows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&layout, input)) = data.split_first() else { return };
    let fields: &[ManifestField] = match layout % 4 {
        0 => &[ManifestField::Bucket, ManifestField::Key],
        1 => &[ManifestField::Bucket, ManifestField::Key, ManifestField::VersionId],
        2 => &[ManifestField::Ignore, ManifestField::Bucket, ManifestField::Key],
        _ => &[ManifestField::Key, ManifestField::Ignore, ManifestField::Bucket, ManifestField::VersionId],
    };
    let columns = manifest_columns(Some(fields)).expect("valid layout");
    let mut expected_row = 7;
    for item in Rows::new(input, columns, 7) {
        let Ok(task) = item else { return };
        assert_eq!(task.row, expected_row);
        expected_row += 1;
        if task.invalid.is_none() {
            assert!(valid_bucket_name(&task.bucket), "{task:?}");
            assert!(!task.key.is_empty() && task.key.len() <= MAX_KEY_BYTES, "{task:?}");
        }
    }
});
