//! Fuzzes the S3 Inventory readers: `manifest.json` (its `fileSchema` included) and the data
//! file rows read in that column order. Never a panic; rows numbered densely; a task not
//! marked invalid has a key.
#![no_main]

use batchops_core::manifest::inventory::{InventoryColumns, InventoryManifest, InventoryRows};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the manifest.json, the rest a data file.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (manifest, rows) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let schema = match InventoryManifest::parse(manifest) {
        Ok(m) => {
            let _ = m.data_bucket();
            m.file_schema.clone()
        }
        Err(_) => "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size".to_string(),
    };
    let Ok(columns) = InventoryColumns::from_schema(&schema) else { return };
    let mut rows = InventoryRows::new(rows, columns, "source-bucket", 3);
    let mut expected = 3;
    while let Some(item) = rows.next_item() {
        let Ok((task, _)) = item else { return };
        assert_eq!(task.row, expected);
        expected += 1;
        if task.invalid.is_none() {
            assert!(!task.key.is_empty(), "{task:?}");
        }
    }
});
