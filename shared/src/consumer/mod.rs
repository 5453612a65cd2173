//! The edge of the event consumers: a batch of delivered messages in, one verdict per message out.
//!
//! Every transport feeds the consumers through one contract (`event_source.rs`): the in-memory
//! queue's poller, the SQS poller, the broker subscribers, and the Lambda triggers (SQS with
//! partial batch responses, [`sqs`]; Amazon MQ, [`amazon_mq`]; Amazon MSK and self-managed
//! Kafka, [`msk`]) hand over [`RawMessage`]s and
//! settle each by its [`Verdict`]. The consumers do not know which transport fed them.
//!
//! Each message body is the event EventBridge delivers (`version`, `id`, `detail-type`, `source`,
//! `time`, `detail`, ...), on every transport, whose `detail` is activelog's versioned envelope. The edge
//! reads every message (`message.rs`), hands the events to a use case, and decides in one place
//! (`report.rs`) what becomes of each message:
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
//!
//! The consumers implement [`BatchHandler`], which every event source (the in-memory poller, the
//! SQS poller, the RabbitMQ subscriber, Lambda's event source mappings through the functions'
//! `main.rs` and [`trigger`]) drives; none of them is known here. The modules are private and
//! re-exported here, except the Lambda trigger shapes ([`sqs`], [`amazon_mq`], [`msk`], [`trigger`]),
//! which are used by path.

mod achievements;
pub mod amazon_mq;
mod event_source;
mod message;
pub mod msk;
mod report;
pub mod sqs;
mod stats;
pub mod trigger;

pub use achievements::AchievementsConsumer;
pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
pub use event_source::{BatchHandler, RawMessage, Verdict, aws_trace_header, traceparent_header};
pub use message::{Poison, read_event};
pub use report::{BatchReport, FailedMessage, MessageFailure, MessageOutcome};
pub use stats::StatsConsumer;

/// The span of one batch of `function`: the consumer's root in its invocation. Its messages come
/// from many requests, so it links to each one's trace (see `crate::traces`) instead of having
/// one of them as its parent.
fn batch_span(function: crate::functions::ConsumerFunction, messages: usize) -> tracing::Span {
    tracing::info_span!("consume batch", function = function.name(), messages)
}
