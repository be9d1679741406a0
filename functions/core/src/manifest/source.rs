//! Opening a manifest — a CSV object, an inventory report or a generator — as one
//! [`ManifestStream`] of [`super::Item`]s, read from a start or from a saved [`Resume`] point.

use super::generator::S3JobManifestGenerator;
use super::spec::{JobManifest, ManifestFormat};
use super::stream::ManifestStream;
use super::{ManifestError, Resume};
use crate::Config;
use crate::adapters::Objects;

/// What a job reads its tasks from.
#[derive(Clone, Copy, Debug)]
pub enum ManifestSource<'a> {
    Manifest(&'a JobManifest),
    /// A generator, and the scan span its chunks end at (see [`super::Item`]).
    Generator(&'a S3JobManifestGenerator, u64),
}

/// Opens a job's manifest, from its start or from `resume`. Problems with the manifest as a
/// whole (missing, wrong ETag, bad inventory `manifest.json`) come back here; problems found
/// later (a corrupt inventory data file, a dropped connection) end the stream with an `Err`.
pub async fn open(
    objects: &Objects,
    config: &Config,
    source: ManifestSource<'_>,
    resume: Option<&Resume>,
) -> Result<ManifestStream, ManifestError> {
    match source {
        ManifestSource::Manifest(m) => match m.spec.format {
            ManifestFormat::BatchOperationsCsv => super::csv::open(objects, m, resume).await,
            ManifestFormat::InventoryReportCsv => {
                super::inventory::open(objects, config, m, resume).await
            }
        },
        ManifestSource::Generator(g, scan_span) => {
            super::generator::open(objects, g, resume, scan_span).await
        }
    }
}
