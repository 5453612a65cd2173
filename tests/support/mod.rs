//! Helpers shared by the integration tests.

pub mod consumer;
pub mod http;
