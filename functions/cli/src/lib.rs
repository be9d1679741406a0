//! # batchops-cli
//!
//! The `batchops` command: the local dev runner ([`dev`]) and a small client of the API
//! ([`client`]) used by `batchops create/describe/watch/report` and by `batchops demo`.
//!
//! ## Layout
//! - [`dev`]: creates the stack on the emulator, serves the API and runs planner, worker and
//!   finalizer in-process behind pollers that behave like Lambda's SQS event source mapping.
//! - [`client`]: HTTP calls to the API and the report download.
//! - [`proxy`]: `batchops proxy`, which re-signs stock AWS clients' requests for a deployed API.
//! - [`demo`]: seeds sample objects and a manifest, runs a copy job, prints the report.

pub mod client;
pub mod demo;
pub mod dev;
pub mod proxy;
pub mod request;
