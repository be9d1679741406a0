//! In-memory counterparts of the services the pipeline calls, for the model's schedules:
//! [`dynamo`] (DynamoDB's JSON API: tables, conditional writes, transactions, indexes) and
//! [`sqs`] (at-least-once queues with visibility timeouts, receive counts, redrive) and [`s3`]
//! (objects, conditional puts and gets, listings, multipart uploads). Each
//! answers on the service's own wire form, so the SDK clients — and with them the job store's
//! real expressions and error handling — run against it unchanged; a conformance test holds
//! each to the emulator's answers.

pub mod dynamo;
pub mod http;
pub mod s3;
pub mod sqs;

pub use http::Fakes;
