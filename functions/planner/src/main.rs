use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    batchops_core::telemetry::init();
    let deps = batchops_core::Deps::from_env().await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(batchops_planner::handle(&deps, event.payload).await) }
    }))
    .await
}
