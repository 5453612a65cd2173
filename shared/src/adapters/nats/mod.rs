//! The NATS JetStream adapters (with `async-nats`): [`NatsPublisher`] implements
//! `EventPublisher` with publish acknowledgements and server-side de-duplication by
//! `Nats-Msg-Id` = `event_id`, and [`NatsSubscriber`] is an event source for the consumers,
//! beside the in-memory poller, the SQS poller and the other brokers' subscribers.
//!
//! The layout comes from `template.yaml`'s EventBridge rules ([`NatsTopology`]): one stream with
//! a subject per event type, durable pull consumers filtered by the rules' event types, explicit
//! acknowledgements with ack wait = the visibility timeout, and a dead-letter stream that
//! [`NatsDeadLetters`] lists and redrives for the `/_local/` endpoints.
//!
//! Message bodies are the same EventBridge-shaped events the SQS consumers read, so the
//! consumers cannot tell which transport fed them.

mod connection;
mod dead_letters;
mod publisher;
mod subscriber;
mod topology;

pub use connection::{NatsError, NatsUrl};
pub use dead_letters::{ConsumerDepth, DeadLetter, NatsDeadLetters};
pub use publisher::NatsPublisher;
pub use subscriber::{NatsSubscriber, NatsSubscriberSettings};
pub use topology::{ConsumerSubjects, DUPLICATE_WINDOW, MAX_BYTES, NatsTopology, PullConsumer};
