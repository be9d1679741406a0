//! `echo-lambda`: the user function of the `LambdaInvoke` integration tests, run under
//! `cargo lambda watch`. It reads the S3 Batch Operations invocation as plain JSON (so the test
//! sees exactly what batchops sent) and answers according to the task's key:
//!
//! - `ok/...`: `Succeeded`, with the request's task and job echoed in `resultString`;
//! - `permanent/...`: `PermanentFailure`;
//! - `flaky/...`: `TemporaryFailure` on the first invocation for that key, then `Succeeded`;
//! - `temporary/...`: `TemporaryFailure` every time;
//! - `error/...`: a function error (the handler returns `Err`);
//! - `malformed/...`: a response without `results`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

/// Invocations seen per key: the runtime keeps one process warm between invocations.
static SEEN: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let req = event.payload;
    let task = req["tasks"][0].clone();
    let key = task["s3Key"].as_str().unwrap_or_default().to_string();
    let seen = {
        let mut guard = SEEN.lock().unwrap();
        let n = guard
            .get_or_insert_with(HashMap::new)
            .entry(key.clone())
            .or_default();
        *n += 1;
        *n
    };
    let (code, message) = match key.split('/').next().unwrap_or_default() {
        "ok" => (
            "Succeeded",
            json!({"task": task, "job": req["job"], "schema": req["invocationSchemaVersion"]})
                .to_string(),
        ),
        "permanent" => ("PermanentFailure", format!("refused {key}")),
        "flaky" if seen == 1 => ("TemporaryFailure", format!("busy with {key}, try again")),
        "flaky" => ("Succeeded", format!("done {key} on invocation {seen}")),
        "temporary" => ("TemporaryFailure", format!("still busy with {key}")),
        "error" => return Err(format!("cannot handle {key}").into()),
        "malformed" => {
            return Ok(
                json!({"invocationSchemaVersion": req["invocationSchemaVersion"], "note": "no results"}),
            );
        }
        _ => ("PermanentFailure", format!("unexpected key {key}")),
    };
    Ok(json!({
        "invocationSchemaVersion": req["invocationSchemaVersion"],
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": req["invocationId"],
        "results": [{"taskId": task["taskId"], "resultCode": code, "resultString": message}]
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handle)).await
}
