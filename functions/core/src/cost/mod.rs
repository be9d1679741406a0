//! What a job costs, in USD: the S3 requests its operation makes, batchops' own control plane
//! (Lambda, SQS, DynamoDB, S3 for results), and what Amazon S3 Batch Operations would charge
//! for the same job. DescribeJob (JSON API) shows it as `CostEstimate` once the job's total is
//! known; once the job has ended, it is figured on the tasks that ran (`Basis: "Counted"`).
//!
//! Prices live in one table, [`Prices`] (public on-demand prices, us-east-1, on the date it
//! names); a deployer overrides any of them with `BATCHOPS_PRICES`, a JSON object of the
//! fields to change (`{"Region": "eu-west-1", "S3PutPer1000": 0.0054}`).
//!
//! Per task, by operation: a copy is one PUT-class request (`CopyObject`; a copy above the
//! multipart threshold adds its parts, which no manifest tells in advance); tagging, ACL,
//! retention and legal hold one PUT; a checksum a HEAD and a GET; a dry run a HEAD; a restore
//! one restore request (its retrieval fee per GB depends on the tier and is not included);
//! deletes cost nothing; `LambdaInvoke` one Lambda request (the user function's duration is
//! its own). The control plane per chunk comes from the call counts `make bench` measures
//! (bench/results.md): about 4 SQS requests, 8 DynamoDB write and 6 read units, one result
//! file written and read, and one worker invocation of [`WORKER_SECONDS_PER_TASK`] per task.

mod prices;

pub use prices::Prices;

use crate::job::Job;
use crate::ops::JobOperation;
use serde::Serialize;

/// S3 requests one task of an operation makes: (PUT-class, GET-class, restore).
pub fn requests_per_task(op: &JobOperation) -> (u64, u64, u64) {
    match op {
        JobOperation::S3PutObjectCopy(_)
        | JobOperation::S3PutObjectTagging(_)
        | JobOperation::S3PutObjectAcl(_)
        | JobOperation::S3PutObjectRetention(_)
        | JobOperation::S3PutObjectLegalHold(_) => (1, 0, 0),
        JobOperation::S3ComputeObjectChecksum(_) => (0, 2, 0),
        JobOperation::S3InitiateRestoreObject(_) => (0, 0, 1),
        JobOperation::S3DeleteObjectTagging(_)
        | JobOperation::S3DeleteObject(_)
        | JobOperation::LambdaInvoke(_) => (0, 0, 0),
    }
}

/// Control-plane calls per chunk (bench/results.md).
const SQS_PER_CHUNK: f64 = 4.0;
const DYNAMODB_WRITES_PER_CHUNK: f64 = 8.0;
const DYNAMODB_READS_PER_CHUNK: f64 = 6.0;
/// Per job: its plan and finalize messages, its status writes, the manifest read and the
/// report's files.
const SQS_PER_JOB: f64 = 6.0;
const DYNAMODB_WRITES_PER_JOB: f64 = 20.0;
const DYNAMODB_READS_PER_JOB: f64 = 20.0;
const S3_PUTS_PER_JOB: f64 = 3.0;
const S3_GETS_PER_JOB: f64 = 1.0;
/// Worker time per task with 32 tasks in flight (`make bench`: about 600 tasks/s per worker).
pub const WORKER_SECONDS_PER_TASK: f64 = 1.0 / 600.0;
/// The worker's memory (template.yaml), in GB.
const WORKER_GB: f64 = 0.5;

/// A job's figures, each in USD.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CostEstimate {
    /// `Estimate` (from the manifest's total) or `Counted` (the tasks that ran, once ended).
    pub basis: &'static str,
    pub tasks: u64,
    pub currency: &'static str,
    pub price_date: String,
    pub region: String,
    pub s3_requests: S3Requests,
    pub control_plane: ControlPlane,
    /// What batchops costs: the S3 requests and its control plane.
    #[serde(rename = "BatchopsUSD")]
    pub batchops_usd: f64,
    /// What Amazon S3 Batch Operations would charge: its job and task fees and the same S3
    /// requests.
    #[serde(rename = "AmazonS3BatchOperationsUSD")]
    pub amazon_s3_batch_operations_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Requests {
    pub put: u64,
    pub get: u64,
    pub restore: u64,
    /// Lambda requests of `LambdaInvoke` tasks (priced as Lambda requests).
    pub lambda: u64,
    #[serde(rename = "USD")]
    pub usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ControlPlane {
    #[serde(rename = "LambdaUSD")]
    pub lambda_usd: f64,
    #[serde(rename = "SQSUSD")]
    pub sqs_usd: f64,
    #[serde(rename = "DynamoDBUSD")]
    pub dynamodb_usd: f64,
    #[serde(rename = "S3USD")]
    pub s3_usd: f64,
    #[serde(rename = "USD")]
    pub usd: f64,
}

/// Rounded to a millionth of a dollar (what the figures can tell apart).
fn usd(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The job's figures, once its total is known (`None` before: nothing to count yet).
pub fn estimate(job: &Job, prices: &Prices, chunk_size: u64) -> Option<CostEstimate> {
    let op = job.request.operation.as_ref()?;
    let ended = job.status.is_terminal();
    let (basis, tasks) = if ended {
        ("Counted", job.succeeded + job.failed)
    } else if job.total_tasks > 0 {
        ("Estimate", job.total_tasks)
    } else {
        return None;
    };
    let (put, get, restore) = requests_per_task(op);
    let lambda = u64::from(matches!(op, JobOperation::LambdaInvoke(_))) * tasks;
    let s3 = S3Requests {
        put: put * tasks,
        get: get * tasks,
        restore: restore * tasks,
        lambda,
        usd: usd((put * tasks) as f64 / 1000.0 * prices.s3_put_per_1000
            + (get * tasks) as f64 / 1000.0 * prices.s3_get_per_1000
            + (restore * tasks) as f64 / 1000.0 * prices.s3_restore_per_1000
            + lambda as f64 / 1e6 * prices.lambda_requests_per_million),
    };
    let chunks = if ended && job.chunks_total > 0 {
        job.chunks_total
    } else {
        tasks.div_ceil(chunk_size.max(1))
    } as f64;
    let lambda_usd = chunks * prices.lambda_requests_per_million / 1e6
        + tasks as f64 * WORKER_SECONDS_PER_TASK * WORKER_GB * prices.lambda_gb_second;
    let sqs_usd = (SQS_PER_JOB + chunks * SQS_PER_CHUNK) * prices.sqs_requests_per_million / 1e6;
    let dynamodb_usd = (DYNAMODB_WRITES_PER_JOB + chunks * DYNAMODB_WRITES_PER_CHUNK)
        * prices.dynamodb_write_units_per_million
        / 1e6
        + (DYNAMODB_READS_PER_JOB + chunks * DYNAMODB_READS_PER_CHUNK)
            * prices.dynamodb_read_units_per_million
            / 1e6;
    let s3_usd = (S3_PUTS_PER_JOB + chunks) * prices.s3_put_per_1000 / 1000.0
        + (S3_GETS_PER_JOB + chunks) * prices.s3_get_per_1000 / 1000.0;
    let control = ControlPlane {
        lambda_usd: usd(lambda_usd),
        sqs_usd: usd(sqs_usd),
        dynamodb_usd: usd(dynamodb_usd),
        s3_usd: usd(s3_usd),
        usd: usd(lambda_usd + sqs_usd + dynamodb_usd + s3_usd),
    };
    let aws = prices.batch_operations_per_job
        + tasks as f64 / 1e6 * prices.batch_operations_per_million_tasks
        + s3.usd;
    Some(CostEstimate {
        basis,
        tasks,
        currency: "USD",
        price_date: prices.date.clone(),
        region: prices.region.clone(),
        batchops_usd: usd(s3.usd + control.usd),
        amazon_s3_batch_operations_usd: usd(aws),
        s3_requests: s3,
        control_plane: control,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{CreateJobRequest, JobStatus};

    fn job(op: serde_json::Value, total: u64) -> Job {
        let request: CreateJobRequest = serde_json::from_value(serde_json::json!({
            "Operation": op,
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::src/m.csv", "ETag": "e"}},
            "Report": {"Enabled": false},
        }))
        .unwrap();
        let mut j = Job::new("j".into(), request, "2026-01-01T00:00:00.000Z".into());
        j.total_tasks = total;
        j
    }

    #[test]
    fn a_million_copies_cost_their_puts_and_aws_adds_its_fees() {
        let j = job(
            serde_json::json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::t"}}),
            1_000_000,
        );
        let e = estimate(&j, &Prices::default(), 1000).unwrap();
        assert_eq!((e.basis, e.tasks), ("Estimate", 1_000_000));
        assert_eq!((e.s3_requests.put, e.s3_requests.get), (1_000_000, 0));
        assert_eq!(e.s3_requests.usd, 5.0, "1 M PUTs at $0.005 per 1,000");
        // $0.25 per job + $1.00 per million tasks + the same $5 of requests.
        assert_eq!(e.amazon_s3_batch_operations_usd, 6.25);
        // 1,000 chunks: SQS 4,006 requests, DynamoDB 8,020 WRU + 6,020 RRU, S3 1,003 PUTs
        // + 1,001 GETs, Lambda 1,000 requests + 1 M × (1/600) s × 0.5 GB.
        let c = &e.control_plane;
        assert_eq!(c.sqs_usd, usd(4006.0 * 0.4 / 1e6));
        assert_eq!(
            c.dynamodb_usd,
            usd(8020.0 * 1.25 / 1e6 + 6020.0 * 0.25 / 1e6)
        );
        assert_eq!(
            c.s3_usd,
            usd(1003.0 * 0.005 / 1000.0 + 1001.0 * 0.0004 / 1000.0)
        );
        assert_eq!(
            c.lambda_usd,
            usd(1000.0 * 0.2 / 1e6 + 1e6 / 600.0 * 0.5 * 0.0000133334)
        );
        assert!(
            c.usd < 0.05,
            "the control plane is cents per million tasks: {c:?}"
        );
        assert_eq!(e.batchops_usd, usd(5.0 + c.usd));
        assert!(e.batchops_usd < e.amazon_s3_batch_operations_usd);
    }

    #[test]
    fn requests_follow_the_operation() {
        let n = 2000;
        let cases = [
            (
                serde_json::json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}}),
                (0, 2 * n, 0),
            ),
            (
                serde_json::json!({"S3InitiateRestoreObject": {"ExpirationInDays": 1, "GlacierJobTier": "STANDARD"}}),
                (0, 0, n),
            ),
            (serde_json::json!({"S3DeleteObjectTagging": {}}), (0, 0, 0)),
            (
                serde_json::json!({"S3PutObjectTagging": {"TagSet": []}}),
                (n, 0, 0),
            ),
        ];
        for (op, (put, get, restore)) in cases {
            let e = estimate(&job(op.clone(), n), &Prices::default(), 1000).unwrap();
            let r = &e.s3_requests;
            assert_eq!((r.put, r.get, r.restore), (put, get, restore), "{op}");
        }
    }

    #[test]
    fn an_ended_job_is_counted_on_the_tasks_that_ran_and_an_uncounted_one_has_none() {
        let mut j = job(serde_json::json!({"S3PutObjectTagging": {"TagSet": []}}), 0);
        assert_eq!(
            estimate(&j, &Prices::default(), 1000),
            None,
            "total not known yet"
        );
        j.total_tasks = 10_000;
        j.status = JobStatus::Cancelled;
        j.succeeded = 1500;
        j.failed = 500;
        j.chunks_total = 2;
        let e = estimate(&j, &Prices::default(), 1000).unwrap();
        assert_eq!(
            (e.basis, e.tasks, e.s3_requests.put),
            ("Counted", 2000, 2000)
        );
    }

    #[test]
    fn a_deployer_overrides_prices_and_a_bad_override_is_refused() {
        let p =
            Prices::with_overrides(r#"{"Region": "eu-west-1", "S3PutPer1000": 0.0054}"#).unwrap();
        assert_eq!(
            (p.region.as_str(), p.s3_put_per_1000),
            ("eu-west-1", 0.0054)
        );
        assert_eq!(p.sqs_requests_per_million, 0.40, "the rest stays");
        assert_eq!(Prices::with_overrides("").unwrap(), Prices::default());
        assert!(
            Prices::with_overrides(r#"{"S3PutPer1k": 1}"#).is_err(),
            "unknown field"
        );
        assert!(Prices::with_overrides("[1]").is_err());
        assert!(Prices::with_overrides(r#"{"S3PutPer1000": "cheap"}"#).is_err());
    }
}
