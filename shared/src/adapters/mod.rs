//! Adapters: the ports implemented for the world outside. `memory` runs everything in one process
//! (local stack and tests); `system` holds the real clock and id generator; the AWS adapters sit
//! behind the `aws` feature so that crates which do not need an SDK do not compile one, and the
//! RabbitMQ adapters behind `rabbitmq`, the Kafka adapters behind `kafka`.

pub mod memory;
pub mod system;

#[cfg(feature = "aws")]
pub(crate) mod aws_error;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "aws")]
pub mod sqs;
