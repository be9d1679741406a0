//! The price table a cost estimate is figured with (a leaf: the configuration holds one).

use serde::{Deserialize, Serialize};

/// The price table: USD, on-demand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct Prices {
    /// When these prices were read off the providers' price pages.
    pub date: String,
    pub region: String,
    pub s3_put_per_1000: f64,
    pub s3_get_per_1000: f64,
    /// S3 Glacier Flexible Retrieval restore requests, standard tier.
    pub s3_restore_per_1000: f64,
    pub lambda_requests_per_million: f64,
    /// Arm64.
    #[serde(rename = "LambdaGBSecond")]
    pub lambda_gb_second: f64,
    #[serde(rename = "SQSRequestsPerMillion")]
    pub sqs_requests_per_million: f64,
    #[serde(rename = "DynamoDBWriteUnitsPerMillion")]
    pub dynamodb_write_units_per_million: f64,
    #[serde(rename = "DynamoDBReadUnitsPerMillion")]
    pub dynamodb_read_units_per_million: f64,
    pub batch_operations_per_job: f64,
    pub batch_operations_per_million_tasks: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            date: "2026-12-01".into(),
            region: "us-east-1".into(),
            s3_put_per_1000: 0.005,
            s3_get_per_1000: 0.0004,
            s3_restore_per_1000: 0.05,
            lambda_requests_per_million: 0.20,
            lambda_gb_second: 0.000_013_333_4,
            sqs_requests_per_million: 0.40,
            dynamodb_write_units_per_million: 1.25,
            dynamodb_read_units_per_million: 0.25,
            batch_operations_per_job: 0.25,
            batch_operations_per_million_tasks: 1.00,
        }
    }
}

impl Prices {
    /// The default table with `overrides` (a JSON object of the fields to change) applied.
    pub fn with_overrides(overrides: &str) -> Result<Self, String> {
        if overrides.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut table = serde_json::to_value(Self::default()).map_err(|e| e.to_string())?;
        let changes: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(overrides).map_err(|e| format!("not a JSON object: {e}"))?;
        for (k, v) in changes {
            table[k] = v;
        }
        serde_json::from_value(table).map_err(|e| e.to_string())
    }
}
