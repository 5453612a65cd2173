//! The edge of the event consumers: a batch of delivered messages in, one verdict per message out.
//!
//! Every transport feeds the consumers through one contract ([`event_source`]): the in-memory
//! queue's poller, the SQS poller, the RabbitMQ subscriber, and the Lambda triggers (SQS with
//! partial batch responses, [`sqs`]; Amazon MQ, [`amazon_mq`]) hand over [`RawMessage`]s and
//! settle each by its [`Verdict`]. The consumers do not know which transport fed them.
//!
//! Each message body is the event EventBridge delivers (on every transport: brokers carry the
//! same shape) (`version`, `id`, `detail-type`,
//! `source`, `time`, `detail`, ...) whose `detail` is activelog's versioned envelope. The edge
//! reads every message ([`message`]), hands the events to a use case, and decides in one place
//! ([`report`]) what becomes of each message:
//!
//! - **poison** — a body that will never be processed whatever the retries (not JSON, not an
//!   EventBridge event, unknown event type, unsupported version, invalid data): logged at error
//!   level with its message id and reason, and given the verdict [`Verdict::Poison`]: SQS moves it
//!   to the dead-letter queue after `maxReceiveCount` receives, a broker dead-letters it at once,
//!   and an alarm and a redrive wait for it there;
//! - **retryable** — a failure that is not the message's fault (the store was unavailable): only
//!   that message is [`Verdict::Retry`], and comes back later;
//! - everything else succeeded (or was a duplicate) and is deleted or acknowledged.
//!
//! One bad message never fails its batch, and a batch in which every message fails still answers
//! with the full list instead of crashing the invocation (which would retry all of them alike).

pub mod achievements;
pub mod amazon_mq;
pub mod event_source;
pub mod message;
pub mod report;
pub mod sqs;
pub mod stats;
pub mod trigger;

pub use achievements::AchievementsConsumer;
pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
pub use event_source::{BatchHandler, RawMessage, Verdict};
pub use message::{DeliveredEvent, Poison};
pub use report::{BatchReport, FailedMessage, MessageFailure, MessageOutcome};
pub use stats::StatsConsumer;

/// Which consumer function reads which queue: (queue logical id in `template.yaml`, function).
/// The local stack wires its pollers from this table; the template consistency test checks that
/// the template's SQS event sources say the same.
pub const QUEUE_CONSUMERS: &[(&str, &str)] = &[
    ("StatsQueue", "update-stats"),
    ("AchievementsQueue", "record-achievements"),
];
