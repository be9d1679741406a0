use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    batchops_core::telemetry::init();
    let deps = batchops_core::Deps::from_env().await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        // Chunks not finished by this invocation's deadline keep what ran and go on in another.
        let left = batchops_lambda::time_left(&event.context);
        // A deadline already past is no deadline (a local runner that sends none): nothing
        // would run.
        let deadline = (!left.is_zero()).then(|| tokio::time::Instant::now() + left);
        async move {
            Ok::<_, Error>(batchops_worker::handle_until(&deps, event.payload, deadline).await)
        }
    }))
    .await
}
