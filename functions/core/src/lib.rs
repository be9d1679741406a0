//! # batchops-core
//!
//! The domain of batchops — a self-hosted counterpart of Amazon S3 Batch Operations — and the
//! narrow seams through which it talks to AWS. The Lambda crates (`planner`, `worker`,
//! `finalizer`, `api`) only translate events into calls on this crate; the `batchops dev`
//! runner drives the very same calls, so local runs and Lambda runs share every line of logic.
//!
//! ## Layout
//! - [`config`]: the typed [`Config`] loaded once from the environment.
//! - [`job`]: the job record ([`job::Job`]), the CreateJob request types with S3 Control field
//!   names ([`job::spec`]) and the status machine ([`job::status`]).
//! - [`manifest`]: streaming manifest readers; [`manifest::csv`] parses
//!   `S3BatchOperations_CSV_20180820` rows.
//! - [`chunk`]: the chunk message shared by planner and worker, and the size-bounded chunker.
//! - [`ops`]: one module per operation; [`ops::run_task`] adds retries with backoff.
//! - [`report`]: result rows and the `Report_CSV_20180820` completion report writer.
//! - [`adapters`]: every AWS call the domain makes — [`adapters::JobStore`] (DynamoDB),
//!   [`adapters::Queues`] (SQS), [`adapters::Objects`] (S3) — plus `adapters::stack`, which
//!   creates the stack's resources on an emulator (feature `emulator`: the dev runner's,
//!   the tests' and the bench's, in no Lambda binary).
//! - [`planner`], [`worker`], [`finalizer`]: the three pipeline stages as plain async functions.
//! - [`error`]: the crate's error type; each variant knows whether retrying can help.

pub mod adapters;
pub mod batch;
pub mod checkpoint;
pub mod chunk;
pub mod config;
pub mod cost;
pub mod error;
pub mod finalizer;
pub mod ids;
pub mod intake;
pub mod job;
pub mod jobs;
pub mod lifecycle;
pub mod manifest;
pub mod ops;
pub mod parking;
pub mod planner;
pub mod report;
pub mod telemetry;
pub mod time;
pub mod worker;

pub use config::Config;
pub use error::{Error, Result};

/// Everything a handler needs, built once per process (per Lambda cold start) and shared.
#[derive(Clone, Debug)]
pub struct Deps {
    pub config: Config,
    pub store: adapters::JobStore,
    pub queues: adapters::Queues,
    pub objects: adapters::Objects,
    /// The Lambda client `LambdaInvoke` tasks call (SDK retries off, like the task S3 client).
    pub lambda: aws_sdk_lambda::Client,
    /// Where "now" comes from (the system's clock but in the model's schedules).
    pub clock: time::Clock,
    /// Where ids and random choices come from (seeded in the model's schedules).
    pub ids: ids::Ids,
    /// The configuration the clients came from, for the clients of a job's own role.
    sdk: aws_config::SdkConfig,
    /// Task clients acting as a job's `RoleArn` (with `BATCHOPS_ROLE_ARN_PATTERN`), by role.
    job_roles:
        std::sync::Arc<tokio::sync::Mutex<std::collections::HashMap<String, adapters::Clients>>>,
}

/// The configuration's region; `us-east-1` when none is set.
fn region_of(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map_or_else(|| "us-east-1".to_string(), |r| r.to_string())
}

impl Deps {
    /// Builds the clients from the default AWS configuration chain (`AWS_ENDPOINT_URL` and the
    /// per-service `AWS_ENDPOINT_URL_S3` / `_SQS` / `_DYNAMODB` / `_LAMBDA` overrides are honoured there).
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Ok(Self::new(config, &sdk))
    }

    /// Builds the clients from an explicit SDK configuration (tests and the dev runner).
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let clients = adapters::Clients::new(sdk, config.s3_force_path_style);
        let mut store = adapters::JobStore::new(clients.dynamodb.clone(), config.table.clone());
        if let Some(bus) = &config.event_bus {
            store = store.with_events(adapters::dynamo::EventSink {
                events: adapters::events::Events::new(clients.eventbridge.clone(), bus),
                region: region_of(sdk),
                account: config.account_id.clone(),
                bucket: config.bucket.clone(),
            });
        }
        Self {
            store,
            queues: adapters::Queues::new(clients.sqs.clone(), &config),
            objects: adapters::Objects::new(clients.s3_control.clone(), clients.s3_tasks.clone()),
            lambda: clients.lambda,
            clock: time::Clock::system(),
            ids: ids::Ids::random(),
            config,
            sdk: sdk.clone(),
            job_roles: Default::default(),
        }
    }

    /// The same dependencies telling time by `clock` and drawing ids from `ids` (the store's
    /// stamps, leases and retry delays too).
    pub fn with_time(mut self, clock: time::Clock, ids: ids::Ids) -> Self {
        self.store = self.store.with_time(clock, ids.clone());
        self.clock = clock;
        self.ids = ids;
        self
    }

    /// The AWS region the stack runs in (for job ARNs); `us-east-1` when none is configured.
    pub fn region(&self) -> String {
        region_of(&self.sdk)
    }

    /// The S3 and Lambda clients a job's tasks run with: with a role-ARN pattern set, the
    /// job's own `RoleArn`, assumed (`sts:AssumeRole`, refreshed before it expires; one
    /// provider per role and process); otherwise the stack's own role.
    pub async fn task_clients(
        &self,
        role_arn: Option<&str>,
    ) -> (aws_sdk_s3::Client, aws_sdk_lambda::Client) {
        let (Some(_), Some(role)) = (&self.config.role_arn_pattern, role_arn) else {
            return (self.objects.tasks().clone(), self.lambda.clone());
        };
        let mut roles = self.job_roles.lock().await;
        if let Some(c) = roles.get(role) {
            return (c.s3_tasks.clone(), c.lambda.clone());
        }
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("batchops-worker")
            .configure(&self.sdk)
            .build()
            .await;
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build();
        let clients = adapters::Clients::new(&sdk, self.config.s3_force_path_style);
        let out = (clients.s3_tasks.clone(), clients.lambda.clone());
        roles.insert(role.to_string(), clients);
        out
    }
}
