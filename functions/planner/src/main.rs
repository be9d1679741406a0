use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    batchops_core::telemetry::init();
    let deps = batchops_core::Deps::from_env().await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        // Planning stops in good time before this invocation's deadline and goes on in the next.
        let left = batchops_lambda::time_left(&event.context);
        let stop = batchops_core::planner::stop_time(&deps.config, Some(left));
        async move { Ok::<_, Error>(batchops_planner::handle(&deps, event.payload, stop).await) }
    }))
    .await
}
