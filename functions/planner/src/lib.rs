//! # planner Lambda
//!
//! Triggered by two queues (SQS): the plan queue, whose messages name a job to plan
//! ([`batchops_core::planner::plan_job`]), and the intake queue, whose messages are S3 event
//! notifications for objects created under `intake/` in the stack bucket
//! ([`batchops_core::intake::start_from_object`]). This crate only translates the SQS event into
//! those calls and failures into a partial batch response.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::batch::for_each_message;
use batchops_core::chunk::PlanMessage;
use batchops_core::{Deps, Error};
use batchops_lambda::{deliveries, message, respond};
use tokio::time::Instant;

/// Handles one SQS event: plans each named job, reading manifests until `deadline` at most
/// (then planning goes on in a new invocation); failed messages are reported for redelivery.
pub async fn handle(deps: &Deps, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let sources = deliveries(&event);
    let messages = event.records.into_iter().map(message).collect();
    let failed = for_each_message(messages, 1, |m| async move {
        match parse_body(&m.body)? {
            Body::Plan(msg) => {
                let last_delivery = m.receive_count >= deps.config.max_receives;
                batchops_core::planner::plan_attempt(deps, &msg.job_id, deadline, last_delivery)
                    .await
                    .map(drop)
            }
            Body::Intake(objects) => {
                for IntakeObject {
                    bucket,
                    key,
                    uploader,
                } in objects
                {
                    let outcome = batchops_core::intake::start_from_object(
                        deps,
                        &bucket,
                        &key,
                        uploader.as_deref(),
                    )
                    .await?;
                    tracing::info!(?outcome, bucket, key, uploader, "intake object handled");
                }
                Ok(())
            }
            Body::TestEvent => {
                tracing::info!("S3 test event ignored");
                Ok(())
            }
        }
    })
    .await;
    respond(deps, &sources, failed).await
}

/// What a planner message carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// Plan (or continue planning) a job.
    Plan(PlanMessage),
    /// Objects created under the intake prefix.
    Intake(Vec<IntakeObject>),
    /// The `s3:TestEvent` S3 sends when a notification is configured.
    TestEvent,
}

/// One object an S3 event notification reports created.
#[derive(Debug, PartialEq, Eq)]
pub struct IntakeObject {
    pub bucket: String,
    /// The decoded key.
    pub key: String,
    /// Who uploaded it: the record's `userIdentity.principalId` (AWS sends it; moto does not).
    pub uploader: Option<String>,
}

/// The parts of an S3 event notification the intake reads.
#[derive(Debug, serde::Deserialize)]
struct S3Notification {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
}

#[derive(Debug, serde::Deserialize)]
struct S3Record {
    s3: S3Entity,
    #[serde(rename = "userIdentity", default)]
    user_identity: Option<UserIdentity>,
}

#[derive(Debug, serde::Deserialize)]
struct UserIdentity {
    #[serde(rename = "principalId", default)]
    principal_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct S3Entity {
    bucket: Named,
    object: Keyed,
}

#[derive(Debug, serde::Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, serde::Deserialize)]
struct Keyed {
    key: String,
}

/// Tells a plan message from an S3 event notification.
pub fn parse_body(body: &str) -> Result<Body, Error> {
    if let Ok(plan) = serde_json::from_str::<PlanMessage>(body) {
        return Ok(Body::Plan(plan));
    }
    let value: serde_json::Value = serde_json::from_str(body).map_err(Error::Message)?;
    if value["Event"] == "s3:TestEvent" {
        return Ok(Body::TestEvent);
    }
    // Only the fields batchops needs: real S3 sends more (userIdentity, requestParameters …)
    // than moto does, and both must parse.
    let event: S3Notification = serde_json::from_value(value).map_err(Error::Message)?;
    if event.records.is_empty() {
        return Err(Error::Record(format!(
            "neither a plan message nor an S3 event: {body:.200}"
        )));
    }
    let mut objects = Vec::new();
    for record in event.records {
        let raw = record.s3.object.key;
        let key = batchops_core::intake::decode_event_key(&raw)
            .ok_or_else(|| Error::Record(format!("undecodable key in S3 event: {raw:?}")))?;
        objects.push(IntakeObject {
            bucket: record.s3.bucket.name,
            key,
            uploader: record.user_identity.and_then(|u| u.principal_id),
        });
    }
    Ok(Body::Intake(objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_event_parses() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../infra/events/plan.json")).unwrap();
        let m = message(event.records[0].clone());
        assert_eq!(m.receive_count, 1);
        let plan: PlanMessage = serde_json::from_str(&m.body).unwrap();
        assert_eq!(plan.job_id, "3b5e6f1e-6b39-4c39-9d57-2f1f6d1f6a01");
    }

    #[test]
    fn intake_events_are_recognised() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../infra/events/intake.json")).unwrap();
        let body = parse_body(event.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            Body::Intake(vec![IntakeObject {
                bucket: "batchops-dev-bucket".into(),
                key: "intake/daily copy+1.csv".into(),
                uploader: Some("AWS:AIDAEXAMPLE".into()),
            }])
        );
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-27T00:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(parse_body(test).unwrap(), Body::TestEvent);
        assert!(parse_body("{not json").is_err());
        assert!(parse_body(r#"{"unexpected": 1}"#).is_err());
    }
}

#[cfg(test)]
mod moto_event {
    use super::*;

    /// The body moto 5.2.5 sends for an object created under `intake/` (no userIdentity,
    /// requestParameters or responseElements; `/` encoded as `%2F`).
    #[test]
    fn motos_notification_parses() {
        let body = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-27T00:46:29.141Z", "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "configurationId": "x", "bucket": {"name": "ntest-bkt", "arn": "arn:aws:s3:::ntest-bkt"}, "object": {"key": "intake%2Fa+b.csv", "size": 1, "eTag": "9dd4e461268c8034f5c8564e155c67a6"}}}]}"#;
        assert_eq!(
            parse_body(body).unwrap(),
            Body::Intake(vec![IntakeObject {
                bucket: "ntest-bkt".into(),
                key: "intake/a b.csv".into(),
                uploader: None,
            }])
        );
    }
}
