//! activelog's library: everything the Lambda functions and the local stack share.
//!
//! - [`domain`]: activities, events and statistics; pure, synchronous, no I/O.
//! - [`application`]: the use cases and the ports (traits) they need from the outside world.
//! - [`adapters`]: implementations of the ports: in memory, and for AWS (feature `aws`).
//! - [`http`]: the HTTP edge of the API functions (API Gateway HTTP API requests → use cases).
//! - [`consumer`]: the SQS edge of the event consumers (SQS batches → use cases).
//! - [`relay`]: the scheduled edge of the outbox relay (a run within the deadline, its metrics).
//! - [`configuration`], [`telemetry`], [`startup`]: how a process reads its settings, logs, and
//!   builds its adapters once.
//! - [`functions`]: the Lambda functions' names, spelled once.
//! - [`traces`]: spans across the asynchronous hops, and their export (feature `otel`).

pub mod adapters;
pub mod application;
pub mod configuration;
pub mod consumer;
pub mod domain;
pub mod functions;
pub mod http;
pub mod relay;
pub mod startup;
pub mod telemetry;
pub mod traces;
