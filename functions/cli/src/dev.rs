//! The local dev runner. It drives the very handlers the Lambdas run, fed by pollers that do
//! what Lambda's SQS event source mapping does:
//!
//! - receive up to a batch of messages with a visibility timeout, long-polling;
//! - build the same `aws_lambda_events` `SqsEvent` payload (with `ApproximateReceiveCount`);
//! - call the handler and read its partial batch response (`ReportBatchItemFailures`);
//! - delete the messages that succeeded; leave the failed ones to the handler, which makes
//!   them visible again after its retry delay as in AWS (the base delay here is
//!   `retry_delay`, to keep local runs brisk); an intake message, whose queue the handler
//!   does not know, reappears after `retry_delay`;
//! - the queue's redrive policy moves a message to its DLQ after [`MAX_RECEIVES`] receives.
//!
//! [`MAX_RECEIVES`]: batchops_core::adapters::stack::MAX_RECEIVES

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use batchops_core::adapters::Clients;
use batchops_core::adapters::stack::ensure_stack;
use batchops_core::config::StackNames;
use batchops_core::{Config, Deps};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Settings of one dev runner.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Prefix of every resource name (`<stack>-jobs`, `<stack>-bucket`, `<stack>-plan` …).
    pub stack: String,
    /// Where the API listens; port 0 picks a free port.
    pub api_addr: SocketAddr,
    /// Concurrent worker pollers [4]; 0 for none.
    pub workers: usize,
    /// Messages per worker receive [1], like a BatchSize of the event source mapping.
    pub worker_batch: i32,
    /// Visibility timeout of received messages, seconds [60].
    pub visibility_timeout: i32,
    /// Delay before a failed message is visible again, seconds [1].
    pub retry_delay: i32,
    /// Interval of the finalizer's sweep [60 s]; zero runs no sweep.
    pub sweep_interval: Duration,
    /// Adjusts the configuration after the stack is created (chunk size, limits …).
    pub tune: fn(&mut Config),
    /// Run the finalize-queue poller [true] (tests turn it off to lose finalize messages).
    pub finalizer: bool,
    /// Run the plan-queue poller [true] (tests turn it off to keep jobs `New`).
    pub planner: bool,
    /// Resources that exist already (a stack deployed from template.yaml) instead of the
    /// `<stack>-*` ones the runner creates [none].
    pub existing: Option<StackNames>,
    /// Each function's own credentials (its role), as Lambda gives each function its role;
    /// [none]: every poller uses the runner's SDK configuration.
    pub roles: Option<FunctionRoles>,
    /// Host names besides loopback and `*.localhost` that requests may name (`/etc/hosts` or
    /// dnsmasq names for this machine) [none]; any other `Host` is refused.
    pub extra_hosts: Vec<String>,
}

/// The SDK configuration of each function, for a run where each acts as its own IAM role.
/// A poller receives and deletes with its function's role, as Lambda's event source mapping
/// does; the sweep is the finalizer's.
#[derive(Clone, Debug)]
pub struct FunctionRoles {
    pub api: aws_config::SdkConfig,
    pub planner: aws_config::SdkConfig,
    pub worker: aws_config::SdkConfig,
    pub finalizer: aws_config::SdkConfig,
}

impl DevOptions {
    pub fn new(stack: impl Into<String>, api_addr: SocketAddr) -> Self {
        Self {
            stack: stack.into(),
            api_addr,
            workers: 4,
            worker_batch: 1,
            visibility_timeout: 60,
            retry_delay: 1,
            sweep_interval: Duration::from_secs(60),
            tune: |_| {},
            finalizer: true,
            planner: true,
            existing: None,
            roles: None,
            extra_hosts: Vec::new(),
        }
    }
}

/// A running dev stack: the API address, the shared dependencies, and its tasks.
pub struct Dev {
    pub addr: SocketAddr,
    pub deps: Arc<Deps>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Dev {
    /// Creates the stack's resources if missing, then starts the API and the pollers.
    pub async fn start(sdk: &aws_config::SdkConfig, opts: DevOptions) -> anyhow::Result<Dev> {
        // Anyone who reaches the API acts with the runner's credentials, unsigned.
        anyhow::ensure!(
            opts.api_addr.ip().is_loopback(),
            "batchops dev listens on a loopback address only (127.0.0.1 or ::1), not {}: \
             its API takes requests unsigned and acts with your credentials",
            opts.api_addr
        );
        let names = match opts.existing.clone() {
            Some(names) => names,
            None => {
                let clients = Clients::new(sdk, true);
                ensure_stack(&clients, &opts.stack, opts.visibility_timeout as u32).await?
            }
        };
        let intake_queue_url = names.intake_queue_url.clone();
        let mut config = Config::for_stack_with(names, |k| std::env::var(k).ok())?;
        // A failed message comes back after seconds; a delivery's claim on a chunk lasts as
        // long as a message stays hidden, so a dead poller's chunk is taken over.
        config.retry_visibility_secs = opts.retry_delay.max(1) as u32;
        config.chunk_lease = Duration::from_secs(opts.visibility_timeout.max(1) as u64);
        (opts.tune)(&mut config);
        let deps = Arc::new(Deps::new(config.clone(), sdk));
        // Each function's dependencies: its own role's, or the runner's.
        let of = |role: fn(&FunctionRoles) -> &aws_config::SdkConfig| match &opts.roles {
            Some(roles) => Arc::new(Deps::new(config.clone(), role(roles))),
            None => deps.clone(),
        };
        let (api_deps, planner_deps, worker_deps, finalizer_deps) = (
            of(|r| &r.api),
            of(|r| &r.planner),
            of(|r| &r.worker),
            of(|r| &r.finalizer),
        );
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let listener = tokio::net::TcpListener::bind(opts.api_addr).await?;
        let addr = listener.local_addr()?;
        let app = batchops_api::guard::local_only(
            batchops_api::router(api_deps),
            opts.extra_hosts.clone(),
        );
        let mut api_rx = rx.clone();
        tasks.spawn(async move {
            let stop = async move {
                let _ = api_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                warn!(error = %e, "API server stopped");
            }
        });

        let poller = |deps: &Deps, queue: String, batch: i32| Poller {
            sqs: deps.queues.client().clone(),
            queues: vec![queue],
            batch,
            visibility: opts.visibility_timeout,
            retry_delay: None,
            shutdown: rx.clone(),
        };
        let d = planner_deps.clone();
        // No Lambda deadline here: the planner's own budget decides when it re-enqueues itself.
        if opts.planner {
            tasks.spawn(
                poller(&d, d.config.plan_queue_url.clone(), 1).run(move |ev| {
                    let d = d.clone();
                    let stop = batchops_core::planner::stop_time(&d.config, None);
                    async move { batchops_planner::handle(&d, ev, stop).await }
                }),
            );
        }
        let d = planner_deps.clone();
        let mut intake = poller(&d, intake_queue_url, 10);
        intake.retry_delay = Some(opts.retry_delay);
        tasks.spawn(intake.run(move |ev| {
            let d = d.clone();
            let stop = batchops_core::planner::stop_time(&d.config, None);
            async move { batchops_planner::handle(&d, ev, stop).await }
        }));
        // `workers: 0` runs no worker poller: tests then deliver chunks to the handler by hand.
        // Each worker drains the high-priority band before the normal one.
        for _ in 0..opts.workers {
            let d = worker_deps.clone();
            let mut worker = poller(&d, d.config.work_high_queue_url.clone(), opts.worker_batch);
            if d.config.work_queue_url != d.config.work_high_queue_url {
                worker.queues.push(d.config.work_queue_url.clone());
            }
            tasks.spawn(worker.run(move |ev| {
                let d = d.clone();
                async move { batchops_worker::handle(&d, ev).await }
            }));
        }
        let d = finalizer_deps.clone();
        if opts.finalizer {
            tasks.spawn(
                poller(&d, d.config.finalize_queue_url.clone(), 10).run(move |ev| {
                    let d = d.clone();
                    async move { batchops_finalizer::handle_sqs(&d, ev).await }
                }),
            );
        }
        let d = finalizer_deps.clone();
        let mut sweep_rx = rx.clone();
        let sweeping = !opts.sweep_interval.is_zero();
        let every = opts.sweep_interval;
        tasks.spawn(async move {
            if !sweeping {
                return;
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = sweep_rx.wait_for(|s| *s) => break,
                }
                match batchops_core::finalizer::sweep(&d).await {
                    // The sweep logs what it repaired.
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "sweep failed"),
                }
            }
        });
        info!(%addr, stack = %opts.stack, "batchops dev is up");
        Ok(Dev {
            addr,
            deps,
            shutdown,
            tasks,
        })
    }

    /// Stops polling (in-flight batches finish first) and the API.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until Ctrl-C or SIGTERM, then stops.
    pub async fn run_until_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        info!("shutting down");
        self.stop().await;
    }
}

/// One SQS poller feeding one handler from one or more queues, in priority order: it takes
/// from a later queue only when the earlier ones are empty.
struct Poller {
    sqs: aws_sdk_sqs::Client,
    queues: Vec<String>,
    batch: i32,
    visibility: i32,
    /// `Some`: make a failed message visible again after this; `None`: the handler does.
    retry_delay: Option<i32>,
    shutdown: watch::Receiver<bool>,
}

impl Poller {
    /// Receives from the first queue that has messages; long-polls only the last one.
    async fn receive(&self) -> Option<(String, Vec<aws_sdk_sqs::types::Message>)> {
        for (i, queue) in self.queues.iter().enumerate() {
            let last = i + 1 == self.queues.len();
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(self.batch)
                .visibility_timeout(self.visibility)
                .wait_time_seconds(if last { 1 } else { 0 })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            match out {
                Ok(o) => {
                    let messages = o.messages.unwrap_or_default();
                    if !messages.is_empty() {
                        return Some((queue.clone(), messages));
                    }
                }
                Err(e) => {
                    warn!(queue, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return None;
                }
            }
        }
        None
    }

    async fn run<H, Fut>(self, handler: H)
    where
        H: Fn(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let mut stop = self.shutdown.clone();
            let Some((queue, messages)) = (tokio::select! {
                r = self.receive() => r,
                _ = stop.wait_for(|s| *s) => break,
            }) else {
                continue;
            };
            let mut handles = HashMap::new();
            let mut records = Vec::with_capacity(messages.len());
            for m in messages {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.md5_of_body = m.md5_of_body.clone();
                record.attributes = m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_string(), v))
                    .collect();
                record.event_source = Some("aws:sqs".into());
                // What the handler needs to change a failed message's visibility: the queue's
                // name at the end of an ARN.
                let name = queue.rsplit('/').next().unwrap_or_default();
                record.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{name}"));
                if let (Some(id), Some(h)) = (m.message_id, m.receipt_handle) {
                    handles.insert(id, h);
                }
                records.push(record);
            }
            let mut event = SqsEvent::default();
            event.records = records;
            let response = handler(event).await;
            let failed: HashSet<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            let mut deletes = Vec::new();
            for (i, (id, handle)) in handles.into_iter().enumerate() {
                if failed.contains(&id) {
                    if let Some(delay) = self.retry_delay {
                        let _ = self
                            .sqs
                            .change_message_visibility()
                            .queue_url(&queue)
                            .receipt_handle(handle)
                            .visibility_timeout(delay)
                            .send()
                            .await;
                    }
                } else {
                    deletes.push(
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(handle)
                            .build()
                            .expect("id and handle set"),
                    );
                }
            }
            if !deletes.is_empty()
                && let Err(e) = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(&queue)
                    .set_entries(Some(deletes))
                    .send()
                    .await
            {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed; messages will be redelivered");
            }
        }
    }
}
