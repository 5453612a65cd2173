//! The Redis Streams adapters (with the `redis` client, redis-rs): [`RedisStreamsPublisher`]
//! implements `EventPublisher`, and [`RedisStreamsSubscriber`] is an event source for the
//! consumers, beside the in-memory poller, the SQS poller and the RabbitMQ subscriber.
//!
//! The routing comes from `template.yaml`'s EventBridge rules ([`StreamTopology`]): one stream
//! per consumer queue, written at publish time, read by one consumer group; each with its own
//! dead-letter stream, which [`StreamDeadLetters`] lists and redrives for the `/_local/`
//! endpoints. Why a stream per consumer rather than one filtered stream, and why entries are
//! deleted on acknowledgement rather than capped with `MAXLEN`, is said in `topology.rs` and
//! `publisher.rs`.
//!
//! **Durability.** Redis acknowledges a write once it is in memory. The Redis of this project's
//! machines runs with `--save "" --appendonly no`: it keeps nothing on disk, so a restart loses
//! every stream, pending entry and dead letter. The outbox does not help there: an event leaves
//! the outbox once Redis acknowledged it. With `appendonly yes` (the conformance suite's restart
//! test runs such a server) a restart keeps what was written, up to the last `fsync` (one second
//! with the default `appendfsync everysec`). Run Redis with AOF, or treat it as a transport that
//! may lose what it held when it restarts.

mod connection;
mod dead_letters;
mod publisher;
mod subscriber;
mod topology;

pub use connection::{RedisStreamsError, RedisUrl};
pub use dead_letters::{DeadLetter, StreamDeadLetters, StreamDepth};
pub use publisher::RedisStreamsPublisher;
pub use subscriber::{RedisStreamsSubscriber, StreamSubscriberSettings};
pub use topology::{ConsumerStream, StreamTopology};
