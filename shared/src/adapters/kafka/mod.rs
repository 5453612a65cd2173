//! The Kafka adapters (the Kafka protocol, with librdkafka through `rdkafka`; chosen by
//! measurement against pure-Rust clients, see docs/benchmarks.md): [`KafkaPublisher`] implements
//! `EventPublisher` with an idempotent producer and `acks=all`, and [`KafkaSubscriber`] is an event
//! source for the consumers, beside the in-memory poller, the SQS poller and the RabbitMQ
//! subscriber.
//!
//! The layout comes from `template.yaml`'s EventBridge rules ([`KafkaTopology`]): one events
//! topic keyed by user id, and per consumer a consumer group that filters by its rule's event
//! types, a dead-letter topic and a redrive topic. [`KafkaDeadLetters`] lists and redrives dead
//! letters for the operator.
//!
//! Message values are the same EventBridge-shaped events the SQS consumers read, so the consumers
//! cannot tell which transport fed them.

mod connection;
mod dead_letters;
mod publisher;
mod subscriber;
mod topology;

pub use connection::{KafkaAdapterError, KafkaUrl};
pub use dead_letters::{KafkaDeadLetter, KafkaDeadLetters};
pub use publisher::{KafkaPublisher, headers};
pub use subscriber::{KafkaSubscriber, SubscriberSettings, dead_letter_headers};
pub use topology::{ConsumerGroup, KafkaTopology, KafkaTopologyError};
