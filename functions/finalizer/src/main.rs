use batchops_finalizer::FinalizerEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    batchops_core::telemetry::init();
    let deps = batchops_core::Deps::from_env().await?;
    run(service_fn(|event: LambdaEvent<FinalizerEvent>| {
        let deps = deps.clone();
        async move {
            batchops_finalizer::handle(&deps, event.payload)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
