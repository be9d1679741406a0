//! Every AWS call the domain makes, behind three narrow seams, one file each:
//! [`JobStore`] (DynamoDB, which publishes job [`events`] to EventBridge), [`Queues`] (SQS) and [`Objects`] (S3) — the per-object task calls
//! live in [`crate::ops`], on the task clients built here — plus [`stack`], which
//! creates a stack's resources on an emulator for `batchops dev` and the tests.

pub mod dynamo;
pub mod events;
pub mod s3;
pub mod sqs;
#[cfg(feature = "emulator")]
pub mod stack;

pub use dynamo::{ChunkCounts, ChunkRecord, JobStore};
pub use s3::{Objects, Upload};
pub use sqs::Queues;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;

/// The SDK clients, built once per process from one [`SdkConfig`].
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// S3 for the pipeline's own reads and writes (manifests, results, reports), with the
    /// SDK's standard retries.
    pub s3_control: aws_sdk_s3::Client,
    /// S3 for the per-object tasks, with the SDK's retries off: [`crate::ops::run_task`] retries
    /// with its own capped, jittered backoff so that every try is counted and reported.
    pub s3_tasks: aws_sdk_s3::Client,
    /// Lambda for `LambdaInvoke` tasks, retries off for the same reason. Its endpoint comes
    /// from `AWS_ENDPOINT_URL_LAMBDA` (or `AWS_ENDPOINT_URL`) like every other client's.
    pub lambda: aws_sdk_lambda::Client,
    /// EventBridge, for job events ([`events`]).
    pub eventbridge: aws_sdk_eventbridge::Client,
}

/// How many times the pipeline's own clients (DynamoDB, SQS, S3 control calls) try a request
/// that fails retryably before the error reaches the handler.
pub const CONTROL_ATTEMPTS: u32 = 5;

impl Clients {
    pub fn new(sdk: &SdkConfig, force_path_style: bool) -> Self {
        let control_retry = RetryConfig::standard().with_max_attempts(CONTROL_ATTEMPTS);
        let s3 = |retry: RetryConfig| {
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(force_path_style)
                    .retry_config(retry)
                    .build(),
            )
        };
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .retry_config(control_retry.clone())
                    .retry_classifier(dynamo::ConflictRetry)
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .retry_config(control_retry.clone())
                    .build(),
            ),
            s3_control: s3(control_retry.clone()),
            s3_tasks: s3(RetryConfig::disabled()),
            // One try, bounded: an event that does not go out stays in its job's outbox for
            // the next status write or the sweep, and a failing bus must not hold a job up.
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(sdk)
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(std::time::Duration::from_secs(5))
                            .build(),
                    )
                    .build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(sdk)
                    .retry_config(RetryConfig::disabled())
                    .build(),
            ),
        }
    }
}
