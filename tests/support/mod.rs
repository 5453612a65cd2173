//! Helpers shared by the integration tests.

// Test helpers: a setup that cannot be done is the test failing, so they unwrap. (The library
// crate is compiled without cfg(test), where clippy.toml's allowance does not reach.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod activity_fixtures;
pub mod broker_process;
pub mod conformance;
pub mod consumer;
pub mod fault_proxy;
pub mod http;
pub mod kafka;
pub mod moto;
pub mod nats;
pub mod rabbitmq;
pub mod redis;
pub mod samples;
pub mod stack;
pub mod traces;
