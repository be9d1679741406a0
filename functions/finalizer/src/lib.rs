//! # finalizer Lambda
//!
//! Two triggers: the finalize queue (SQS; one message per job whose chunks are all counted)
//! and a schedule (`{"sweep": true}`), which finishes jobs whose finalize message was lost.
//! The domain work is [`batchops_core::finalizer::finalize_job`], which is idempotent.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use batchops_core::batch::for_each_message;
use batchops_core::chunk::FinalizeMessage;
use batchops_core::{Deps, Error};
use batchops_lambda::{deliveries, message, respond};
use serde::Deserialize;

/// What the finalizer is invoked with.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FinalizerEvent {
    Sqs(SqsEvent),
    Sweep { sweep: bool },
}

/// The finalizer's answer: a partial batch response for SQS, a count for a sweep.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum FinalizerResponse {
    Sqs(SqsBatchResponse),
    Sweep(batchops_core::finalizer::SweepSummary),
}

pub async fn handle(deps: &Deps, event: FinalizerEvent) -> Result<FinalizerResponse, Error> {
    match event {
        FinalizerEvent::Sqs(event) => Ok(FinalizerResponse::Sqs(handle_sqs(deps, event).await)),
        FinalizerEvent::Sweep { .. } => Ok(FinalizerResponse::Sweep(
            batchops_core::finalizer::sweep(deps).await?,
        )),
    }
}

pub async fn handle_sqs(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let sources = deliveries(&event);
    let messages = event.records.into_iter().map(message).collect();
    let failed = for_each_message(messages, 4, |m| async move {
        let msg: FinalizeMessage = serde_json::from_str(&m.body).map_err(Error::Message)?;
        batchops_core::finalizer::finalize_job(deps, &msg.job_id)
            .await
            .map(drop)
    })
    .await;
    respond(deps, &sources, failed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_triggers_parse() {
        let sqs: FinalizerEvent =
            serde_json::from_str(include_str!("../../../infra/events/finalize.json")).unwrap();
        assert!(matches!(sqs, FinalizerEvent::Sqs(e) if e.records.len() == 1));
        let sweep: FinalizerEvent =
            serde_json::from_str(include_str!("../../../infra/events/sweep.json")).unwrap();
        assert!(matches!(sweep, FinalizerEvent::Sweep { sweep: true }));
    }
}
