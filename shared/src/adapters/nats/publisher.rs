//! `EventPublisher` over NATS JetStream. Each record is published to the subject of its event
//! type with `Nats-Msg-Id` = `event_id` (and a `traceparent` header: the W3C position of the span
//! that wrote the event), and counts only once the server acknowledged storing it
//! (the publish acknowledgement). Within the stream's duplicate window the server drops a second
//! publish of the same event (a relay republishing what the request path already published) and
//! still acknowledges it, so the relay sees success and nothing reaches the consumers twice.
//! What is not acknowledged is reported failed and stays in the outbox; the client reconnects by
//! itself, and the topology is declared again after any failure (a server that lost its store).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;

use crate::adapters::memory::eventbridge_event_text;
use crate::application::{EventPublisher, FailedEntry, OutboxRecord, PublishError, PublishReport};
use crate::domain::TraceParent;

use super::connection::{NatsError, NatsUrl};
use super::topology::NatsTopology;

/// How long a publish acknowledgement may take; past it the event counts as not published.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct NatsPublisher {
    url: NatsUrl,
    topology: NatsTopology,
    context: Context,
    /// Cleared by a failure: the next publish declares the streams and consumers first.
    declared: AtomicBool,
}

impl NatsPublisher {
    /// Connects and declares the topology (the consumers must exist before the first event).
    /// An unreachable server is an error here, so that a process fails at start-up.
    pub async fn connect(url: NatsUrl, topology: NatsTopology) -> Result<Self, NatsError> {
        let (_client, context) = url.connect().await?;
        topology.declare(&url, &context).await?;
        Ok(Self {
            url,
            topology,
            context,
            declared: AtomicBool::new(true),
        })
    }

    pub fn topology(&self) -> &NatsTopology {
        &self.topology
    }

    fn failure(record: &OutboxRecord, code: &str, message: String) -> FailedEntry {
        FailedEntry {
            event_id: record.event_id,
            error_code: code.to_owned(),
            error_message: message,
        }
    }
}

#[async_trait]
impl EventPublisher for NatsPublisher {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        if !self.declared.load(Ordering::SeqCst) {
            self.topology
                .declare(&self.url, &self.context)
                .await
                .map_err(|e| PublishError::Unavailable(e.to_string()))?;
            self.declared.store(true, Ordering::SeqCst);
        }
        let mut report = PublishReport::default();
        let mut pending = Vec::new();
        for record in records {
            let event_id = record.event_id.to_string();
            let body = eventbridge_event_text(record, &event_id);
            let mut message = PublishMessage::build()
                .payload(body.into())
                .message_id(&event_id)
                .header("Activelog-Event-Type", record.event_type.as_str());
            if let Some(trace) = record.trace_parent() {
                message = message.header(TraceParent::HEADER, trace.to_string().as_str());
            }
            match self
                .context
                .send_publish(self.topology.subject(record.event_type.as_str()), message)
                .await
            {
                Ok(ack) => pending.push((record, ack)),
                Err(error) => {
                    report
                        .failed
                        .push(Self::failure(record, "Unavailable", error.to_string()))
                }
            }
        }
        for (record, ack) in pending {
            match tokio::time::timeout(ACK_TIMEOUT, ack.into_future()).await {
                Ok(Ok(_stored)) => {}
                Ok(Err(error)) => {
                    report
                        .failed
                        .push(Self::failure(record, "NotStored", error.to_string()))
                }
                Err(_) => report.failed.push(Self::failure(
                    record,
                    "Timeout",
                    format!("no publish acknowledgement within {ACK_TIMEOUT:?}"),
                )),
            }
        }
        if !report.failed.is_empty() {
            tracing::warn!(server = %self.url, failed = report.failed.len(), "JetStream did not acknowledge every event; they stay in the outbox");
            self.declared.store(false, Ordering::SeqCst);
        }
        Ok(report)
    }
}
