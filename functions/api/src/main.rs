use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    batchops_core::telemetry::init();
    let deps = Arc::new(batchops_core::Deps::from_env().await?);
    lambda_http::run(batchops_api::router(deps)).await
}
