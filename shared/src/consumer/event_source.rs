//! The one contract between the consumers and whatever feeds them. An event source (the in-memory
//! queue's poller, the SQS poller, a broker's subscriber, a Lambda trigger) hands a consumer a
//! batch of [`RawMessage`]s and gets back one [`Verdict`] per message, in batch order; it then
//! settles each message the way its transport does (delete, ack, requeue, dead-letter). The
//! consumers never learn which transport fed them, so a new broker is a new event source and
//! nothing else.

use async_trait::async_trait;

use crate::domain::TraceParent;

/// One message as a transport delivered it: the body is what the publisher wrote (an
/// EventBridge-shaped event around activelog's envelope, on every transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The transport's id for this delivery (SQS message id, AMQP message id...). Empty when the
    /// transport gave none.
    pub message_id: String,
    pub body: Option<String>,
    /// How many times this message has been delivered, this delivery included (1 = first), as
    /// far as the transport can tell.
    pub delivery_count: u32,
    /// The trace position the transport's own header gave (SQS's `AWSTraceHeader`, a broker's
    /// `traceparent` header), read strictly: a header that is absent or unreadable is `None`.
    /// The consumer's span links to it when it is not the envelope's own position.
    pub transport_trace: Option<TraceParent>,
}

/// Reads a broker's `traceparent` header value. An unreadable value is no position, logged at
/// debug: a trace hint must never fail a message.
pub fn traceparent_header(raw: Option<&str>) -> Option<TraceParent> {
    let raw = raw?;
    TraceParent::parse(raw)
        .inspect_err(|_| tracing::debug!(header = raw, "unreadable traceparent header ignored"))
        .ok()
}

/// Reads SQS's `AWSTraceHeader` system attribute (X-Ray's `Root=1-…;Parent=…;Sampled=…`) as the
/// W3C position it spells. A header without a parent span, or unreadable, is no position, logged
/// at debug.
pub fn aws_trace_header(raw: Option<&str>) -> Option<TraceParent> {
    let raw = raw?;
    let position = TraceParent::from_xray_header(raw);
    if position.is_none() {
        tracing::debug!(
            header = raw,
            "AWSTraceHeader without a readable parent ignored"
        );
    }
    position
}

/// What the consumer edge decided for one message. The event source turns it into its
/// transport's settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Applied now (or nothing to do for this event): settle it as done.
    Applied,
    /// Applied before (a redelivery or a duplicate publish): settle it as done too.
    Duplicate,
    /// A dependency failed; the message is fine and should come back later.
    Retry,
    /// The message can never be processed; it belongs in the dead-letter queue.
    Poison,
}

impl Verdict {
    /// Whether the transport may forget the message (delete or ack it).
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Applied | Self::Duplicate)
    }
}

/// A consumer as an event source sees it: a batch in, one verdict per message out.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Returns exactly one verdict per message of `batch`, in the same order.
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict>;
}
