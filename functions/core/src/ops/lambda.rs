//! `LambdaInvoke`: invokes a Lambda function once per object, as AWS's job does, with AWS's
//! request and response documents, so a function written for S3 Batch Operations runs here
//! unchanged.
//!
//! The request (`invocationSchemaVersion` `1.0` or `2.0`) carries one task: its `taskId`, the
//! URL-encoded `s3Key`, `s3VersionId` (or `null`), and the bucket as `s3BucketArn` (1.0) or
//! `s3Bucket` (2.0, which also passes the job's `UserArguments`). The function answers
//! `results[]`, each with the `taskId`, a `resultCode` and a `resultString`:
//!
//! - `Succeeded`: the task succeeds; `resultString` is the report's message.
//! - `TemporaryFailure`: retried with backoff up to the task's try limit, then failed.
//! - `PermanentFailure`: the task fails with `resultString` as the message.
//!
//! A response without a result for the task counts as its `treatMissingKeysAs` code
//! [`PermanentFailure`]. A function error (an exception, a timeout) and a response that is not
//! such a document fail the task with the reason, as AWS reports them (HTTP 200, error code
//! `PermanentFailure`).

use super::{OpContext, OpError, Operation, invalid};
use crate::chunk::Task;
use crate::job::validate::Invalid;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `LambdaInvoke` parameters (S3 Control `LambdaInvokeOperation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LambdaInvokeParams {
    /// The function: a full or partial ARN (with an optional version or alias qualifier) or a
    /// bare name, as Lambda's Invoke accepts it.
    pub function_arn: String,
    /// `1.0` (default) or `2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_schema_version: Option<String>,
    /// Key-value pairs passed to every invocation as `job.userArguments` (schema 2.0 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_arguments: Option<BTreeMap<String, String>>,
}

impl LambdaInvokeParams {
    fn schema(&self) -> &str {
        self.invocation_schema_version.as_deref().unwrap_or("1.0")
    }
}

/// Whether `s` names a function the way Lambda's Invoke `FunctionName` accepts it:
/// `[arn:<partition>:lambda:<region>:][<account>:][function:]<name>[:<qualifier>]`.
pub fn valid_function(s: &str) -> bool {
    let mut rest = s;
    if let Some(after) = rest.strip_prefix("arn:") {
        let parts: Vec<&str> = after.splitn(4, ':').collect();
        if parts.len() != 4 || parts[1] != "lambda" || parts[2].is_empty() {
            return false;
        }
        rest = parts[3];
    }
    if let Some((account, after)) = rest.split_once(':')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
    {
        rest = after;
    }
    rest = rest.strip_prefix("function:").unwrap_or(rest);
    let (name, qualifier) = match rest.split_once(':') {
        Some((n, q)) => (n, Some(q)),
        None => (rest, None),
    };
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && qualifier.is_none_or(|q| q == "$LATEST" || (q.len() <= 128 && word(q)))
        && s.len() <= 170
}

/// A stable, opaque task id: the same task gets the same id on every try.
pub fn task_id(job_id: &str, row: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{job_id}:{row}"))
}

/// The invocation document for one task.
pub fn invocation(p: &LambdaInvokeParams, job_id: &str, invocation_id: &str, task: &Task) -> Value {
    let key = crate::manifest::csv::encode_key(&task.key);
    let id = task_id(job_id, task.row);
    if p.schema() == "2.0" {
        let mut job = json!({ "id": job_id });
        if let Some(args) = &p.user_arguments {
            job["userArguments"] = json!(args);
        }
        json!({
            "invocationSchemaVersion": "2.0",
            "invocationId": invocation_id,
            "job": job,
            "tasks": [{
                "taskId": id,
                "s3Key": key,
                "s3VersionId": task.version_id,
                "s3Bucket": task.bucket,
            }],
        })
    } else {
        json!({
            "invocationSchemaVersion": "1.0",
            "invocationId": invocation_id,
            "job": { "id": job_id },
            "tasks": [{
                "taskId": id,
                "s3Key": key,
                "s3VersionId": task.version_id,
                "s3BucketArn": format!("arn:aws:s3:::{}", task.bucket),
            }],
        })
    }
}

/// A task failure as AWS reports a Lambda's answer: HTTP 200 (the invocation itself worked),
/// the result code as the error code.
fn failure(code: &str, message: impl Into<String>, retryable: bool) -> OpError {
    OpError {
        http_status: 200,
        code: code.into(),
        message: message.into(),
        retryable,
    }
}

/// The outcome of one task from the function's response payload.
pub fn interpret(payload: &[u8], task_id: &str) -> Result<String, OpError> {
    let bad = |why: String| {
        failure(
            "PermanentFailure",
            format!("Invalid JSON returned in Lambda payload: {why}"),
            false,
        )
    };
    let doc: Value = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    let results = doc
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("no results array in {}", excerpt(&doc.to_string()))))?;
    let Some(result) = results
        .iter()
        .find(|r| r.get("taskId").and_then(Value::as_str) == Some(task_id))
    else {
        let code = doc
            .get("treatMissingKeysAs")
            .and_then(Value::as_str)
            .unwrap_or("PermanentFailure");
        let message = format!("the function's response has no result for task {task_id}");
        return settle(code, message, "treatMissingKeysAs");
    };
    let message = match result.get("resultString") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let code = result
        .get("resultCode")
        .and_then(Value::as_str)
        .unwrap_or_default();
    settle(code, message, "resultCode")
}

fn settle(code: &str, message: String, field: &str) -> Result<String, OpError> {
    match code {
        "Succeeded" => Ok(message),
        "TemporaryFailure" => Err(failure(code, message, true)),
        "PermanentFailure" => Err(failure(code, message, false)),
        other => Err(failure(
            "PermanentFailure",
            format!(
                "Invalid JSON returned in Lambda payload: {field} {other:?} is none of Succeeded, TemporaryFailure, PermanentFailure"
            ),
            false,
        )),
    }
}

/// The first 512 characters of a payload, for messages.
fn excerpt(s: &str) -> String {
    if s.chars().count() <= 512 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(512).collect::<String>())
    }
}

fn function_error(payload: &[u8]) -> OpError {
    failure(
        "PermanentFailure",
        format!(
            "Lambda returned function error: {}",
            excerpt(&String::from_utf8_lossy(payload))
        ),
        false,
    )
}

/// Lambda answers a function error with HTTP 200 and `X-Amz-Function-Error`; the local
/// emulator (`cargo lambda watch`) answers it with HTTP 500 and the runtime's
/// `{"errorType", "errorMessage"}` body instead. Both are the function's error, not Lambda's.
fn invoke_error(
    e: SdkError<aws_sdk_lambda::operation::invoke::InvokeError, crate::error::HttpResponse>,
) -> OpError {
    if let SdkError::ServiceError(se) = &e
        && se.raw().status().as_u16() >= 500
        && let Some(body) = se.raw().body().bytes()
        && serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.get("errorMessage").is_some() && v.get("errorType").is_some())
    {
        return function_error(body);
    }
    OpError::from_sdk(e)
}

impl Operation for LambdaInvokeParams {
    fn validate(&self) -> Result<(), Invalid> {
        if !valid_function(&self.function_arn) {
            return Err(invalid(
                "FunctionArn",
                "must be a Lambda function ARN like arn:aws:lambda:us-east-1:123456789012:function:name \
                 (optionally with :version or :alias) or a function name",
            ));
        }
        super::one_of(
            "InvocationSchemaVersion",
            self.invocation_schema_version.as_deref(),
            &["1.0", "2.0"],
        )?;
        if let Some(args) = &self.user_arguments {
            if self.schema() != "2.0" {
                return Err(invalid(
                    "UserArguments",
                    "needs InvocationSchemaVersion 2.0",
                ));
            }
            if args.len() > 10 {
                return Err(invalid("UserArguments", "at most 10 entries"));
            }
            for (k, v) in args {
                if k.is_empty() || k.chars().count() > 64 {
                    return Err(invalid(
                        "UserArguments",
                        format!("key {k:?} must be 1 to 64 characters"),
                    ));
                }
                if v.chars().count() > 1024 {
                    return Err(invalid(
                        "UserArguments",
                        format!("the value of {k:?} must be at most 1024 characters"),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn run(&self, ctx: &OpContext<'_>, task: &Task) -> Result<String, OpError> {
        let invocation_id =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.ids.uuid_bytes());
        let request = invocation(self, ctx.job_id, &invocation_id, task);
        let out = ctx
            .lambda
            .invoke()
            .function_name(&self.function_arn)
            .payload(Blob::new(request.to_string()))
            .send()
            .await
            .map_err(invoke_error)?;
        let payload = out.payload.map(Blob::into_inner).unwrap_or_default();
        if out.function_error.is_some() {
            return Err(function_error(&payload));
        }
        interpret(&payload, &task_id(ctx.job_id, task.row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(version: Option<&str>) -> Task {
        Task {
            row: 7,
            bucket: "photos".into(),
            key: "2024/a b+c.jpg".into(),
            version_id: version.map(String::from),
            invalid: None,
        }
    }

    #[test]
    fn schema_1_0_request_is_awss() {
        let p = LambdaInvokeParams {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            ..Default::default()
        };
        let doc = invocation(&p, "job-1", "inv-1", &task(Some("v9")));
        assert_eq!(
            doc,
            json!({
                "invocationSchemaVersion": "1.0",
                "invocationId": "inv-1",
                "job": {"id": "job-1"},
                "tasks": [{"taskId": task_id("job-1", 7), "s3Key": "2024/a%20b%2Bc.jpg",
                           "s3VersionId": "v9", "s3BucketArn": "arn:aws:s3:::photos"}]
            })
        );
    }

    #[test]
    fn schema_2_0_request_carries_user_arguments_and_the_bucket_name() {
        let p = LambdaInvokeParams {
            function_arn: "f".into(),
            invocation_schema_version: Some("2.0".into()),
            user_arguments: Some(BTreeMap::from([("dest".to_string(), "b2".to_string())])),
        };
        let doc = invocation(&p, "job-1", "inv-1", &task(None));
        assert_eq!(
            doc["job"],
            json!({"id": "job-1", "userArguments": {"dest": "b2"}})
        );
        assert_eq!(doc["tasks"][0]["s3Bucket"], "photos");
        assert_eq!(doc["tasks"][0]["s3VersionId"], Value::Null);
        assert!(doc["tasks"][0].get("s3BucketArn").is_none());
    }

    #[test]
    fn task_ids_are_stable_and_distinct() {
        assert_eq!(task_id("j", 1), task_id("j", 1));
        assert_ne!(task_id("j", 1), task_id("j", 2));
    }

    fn response(code: &str, text: Value) -> Vec<u8> {
        json!({"invocationSchemaVersion": "1.0", "treatMissingKeysAs": "PermanentFailure",
               "invocationId": "i", "results": [{"taskId": "t", "resultCode": code, "resultString": text}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn result_codes_decide_the_outcome() {
        assert_eq!(
            interpret(&response("Succeeded", "done".into()), "t"),
            Ok("done".into())
        );
        let temp = interpret(&response("TemporaryFailure", "busy".into()), "t").unwrap_err();
        assert_eq!(
            (temp.code.as_str(), temp.retryable, temp.http_status),
            ("TemporaryFailure", true, 200)
        );
        assert_eq!(temp.message, "busy");
        let perm = interpret(&response("PermanentFailure", "no".into()), "t").unwrap_err();
        assert_eq!(
            (perm.code.as_str(), perm.retryable),
            ("PermanentFailure", false)
        );
        let odd = interpret(&response("Maybe", "x".into()), "t").unwrap_err();
        assert!(odd.message.contains("\"Maybe\""), "{}", odd.message);
        assert_eq!(
            interpret(&response("Succeeded", json!({"n": 1})), "t"),
            Ok("{\"n\":1}".into())
        );
    }

    #[test]
    fn missing_results_follow_treat_missing_keys_as() {
        let other_task = response("Succeeded", "x".into());
        let e = interpret(&other_task, "mine").unwrap_err();
        assert_eq!(e.code, "PermanentFailure");
        assert!(
            e.message.contains("no result for task mine"),
            "{}",
            e.message
        );
        let lenient = json!({"treatMissingKeysAs": "TemporaryFailure", "results": []}).to_string();
        assert!(interpret(lenient.as_bytes(), "t").unwrap_err().retryable);
    }

    #[test]
    fn malformed_responses_fail_with_the_reason() {
        let e = interpret(b"not json", "t").unwrap_err();
        assert!(
            e.message
                .starts_with("Invalid JSON returned in Lambda payload"),
            "{}",
            e.message
        );
        let e = interpret(br#"{"note": "no results"}"#, "t").unwrap_err();
        assert!(e.message.contains("no results array"), "{}", e.message);
        assert!(!e.retryable);
    }

    #[test]
    fn function_names_and_arns_are_accepted_as_lambda_does() {
        for ok in [
            "my-function",
            "my-function:prod",
            "arn:aws:lambda:us-west-2:123456789012:function:my-function",
            "arn:aws:lambda:us-west-2:123456789012:function:my-function:$LATEST",
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:7",
            "123456789012:function:my-function",
        ] {
            assert!(valid_function(ok), "{ok}");
        }
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "my function",
            "f:",
            &"x".repeat(65),
        ] {
            assert!(!valid_function(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let p = |v: Value| serde_json::from_value::<LambdaInvokeParams>(v).unwrap();
        let cases = [
            (json!({"FunctionArn": "arn:aws:s3:::b"}), "FunctionArn"),
            (
                json!({"FunctionArn": "f", "InvocationSchemaVersion": "3.0"}),
                "InvocationSchemaVersion",
            ),
            (
                json!({"FunctionArn": "f", "UserArguments": {"a": "b"}}),
                "UserArguments",
            ),
            (
                json!({"FunctionArn": "f", "InvocationSchemaVersion": "2.0", "UserArguments": {"": "b"}}),
                "UserArguments",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                p(body.clone()).validate().unwrap_err().field,
                field,
                "{body}"
            );
        }
        p(json!({"FunctionArn": "f", "InvocationSchemaVersion": "2.0", "UserArguments": {"a": "b"}}))
            .validate()
            .unwrap();
    }

    /// Serves one HTTP exchange on a loopback port: reads a request, answers `response`.
    async fn one_answer(response: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            sock.write_all(response.as_bytes()).await.unwrap();
        });
        url
    }

    #[tokio::test]
    async fn lambdas_function_error_header_fails_the_task_with_the_error() {
        let body = r#"{"errorMessage":"boom","errorType":"Error"}"#;
        let url = one_answer(format!(
            "HTTP/1.1 200 OK\r\nX-Amz-Function-Error: Unhandled\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::Config::builder()
                .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
                .region(aws_sdk_lambda::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                    "k", "s", None, None, "test",
                ))
                .endpoint_url(url)
                .build(),
        );
        let s3 = super::super::test_support::s3();
        let ctx = OpContext {
            s3: &s3,
            lambda: &lambda,
            job_id: "j",
            multipart: super::super::MultipartSettings {
                threshold: u64::MAX,
                part_size: 5 << 20,
            },
            cleanup: &Default::default(),
            ids: &Default::default(),
        };
        let p = LambdaInvokeParams {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            ..Default::default()
        };
        let e = p.run(&ctx, &task(None)).await.unwrap_err();
        assert_eq!(
            (e.http_status, e.code.as_str(), e.retryable),
            (200, "PermanentFailure", false)
        );
        assert_eq!(e.message, format!("Lambda returned function error: {body}"));
    }
}
