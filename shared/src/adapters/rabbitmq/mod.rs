//! The RabbitMQ adapters (AMQP 0-9-1, with the `lapin` client): [`RabbitMqPublisher`] implements
//! `EventPublisher` with publisher confirms, and [`RabbitMqSubscriber`] is an event source for the
//! consumers, beside the in-memory poller and the SQS poller.
//!
//! The routing comes from `template.yaml`'s EventBridge rules ([`Topology`]): one durable topic
//! exchange, routing key = event type; per consumer one quorum queue bound with its rule's event
//! types, a delivery limit, and a dead-letter exchange that leads to that consumer's own
//! dead-letter queue. [`DeadLetters`] lists and redrives them for the `/_local/` endpoints.
//!
//! Message bodies are the same EventBridge-shaped events the SQS consumers read, so the
//! consumers cannot tell which transport fed them.

mod connection;
mod dead_letters;
mod publisher;
mod subscriber;
mod topology;

pub use connection::{BrokerUrl, RabbitMqError};
pub use dead_letters::{DeadLetter, DeadLetters, QueueDepth};
pub use publisher::RabbitMqPublisher;
pub use subscriber::{RabbitMqSubscriber, SubscriberSettings};
pub use topology::{ConsumerQueue, Topology, TopologyError};
