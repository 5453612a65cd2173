//! The SQS edge of the event consumers: an SQS batch in, a partial-batch response out.
//!
//! Each SQS message body is the event EventBridge delivered (`version`, `id`, `detail-type`,
//! `source`, `time`, `detail`, ...) whose `detail` is activelog's versioned envelope. The edge
//! reads every message (`message.rs`), hands the events to a use case, and decides in one place
//! (`report.rs`) what becomes of each message:
//!
//! - **poison** — a body that will never be processed whatever the retries (not JSON, not an
//!   EventBridge event, unknown event type, unsupported version, invalid data): logged at error
//!   level with its message id and reason, and reported as failed so that SQS moves it to the
//!   dead-letter queue after `maxReceiveCount` receives, where an alarm and a redrive wait for it;
//! - **retryable** — a failure that is not the message's fault (the store was unavailable): only
//!   that message is reported as failed, and comes back after its visibility timeout;
//! - everything else succeeded (or was a duplicate) and is deleted by the event source mapping.
//!
//! One bad message never fails its batch, and a batch in which every message fails still answers
//! with the full list instead of crashing the invocation (which would retry all of them alike).
//!
//! The consumers implement [`BatchHandler`], which every event source (the in-memory poller, the
//! SQS poller, Lambda's event source mapping through the functions' `main.rs`) drives; none of
//! them is known here. The modules are private; everything is re-exported here.

mod achievements;
mod batch_handler;
mod message;
mod report;
mod stats;

pub use achievements::AchievementsConsumer;
pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
pub use batch_handler::{BatchHandler, deletable_messages};
pub use message::Poison;
pub use report::{BatchReport, FailedMessage, MessageFailure, MessageOutcome};
pub use stats::StatsConsumer;
