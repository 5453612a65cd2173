//! Adapters: the ports implemented for the world outside. `memory` runs everything in one process
//! (local stack and tests); `system` holds the real clock and id generator; the AWS adapters sit
//! behind one feature per service (`aws-dynamodb`, `aws-eventbridge`, `aws-sqs`; `aws` for all)
//! so that crates which do not need an SDK do not compile one and a function links only the clients
//! it calls, and the
//! broker adapters behind `rabbitmq`, `redis`, `nats` and `kafka`.

#[cfg(any(feature = "rabbitmq", feature = "redis", feature = "nats"))]
mod broker_session;
pub mod broker_url;
#[cfg(any(feature = "rabbitmq", feature = "aws-sqs"))]
mod dead_letter_search;
pub mod memory;
pub mod system;

#[cfg(feature = "aws-sdk")]
pub mod aws_call;
#[cfg(feature = "aws-sdk")]
pub(crate) mod aws_error;
#[cfg(feature = "aws-sdk")]
pub mod aws_https;
#[cfg(feature = "aws-dynamodb")]
pub mod dynamodb;
#[cfg(feature = "aws-eventbridge")]
pub mod eventbridge;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis_streams;
#[cfg(feature = "aws-sqs")]
pub mod sqs;
