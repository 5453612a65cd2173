//! The integration tests of `tests/`, one module per concern, linked into one test binary (the
//! AWS SDK is linked once, not once per file). `aws_startup.rs` and `template_consistency.rs` are
//! binaries of their own because they set the process environment.

mod achievements;
mod amazon_mq;
mod architecture;
mod aws_adapters;
mod aws_pipeline;
mod conformance_kafka;
mod conformance_memory;
mod conformance_nats;
mod conformance_rabbitmq;
mod conformance_redis;
mod conformance_sqs;
mod function_dependencies;
mod get_achievements;
mod http_api;
mod http_samples;
mod msk;
mod openapi;
mod pipeline;
mod rebuild;
mod reliability;
mod sample_binaries;
mod stats_consumer;
mod stats_convergence;
mod traces;
