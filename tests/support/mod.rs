//! Helpers shared by the integration tests.

pub mod activity_fixtures;
pub mod conformance;
pub mod consumer;
pub mod http;
pub mod moto;
pub mod rabbitmq;
