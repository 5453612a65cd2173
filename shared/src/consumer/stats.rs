//! The stats consumer's edge (`update-stats`): reads a batch, hands every readable event to
//! [`StatsUpdater`] at once (one store write for the common case), and reports per message.

use async_trait::async_trait;
use tracing::Instrument;

use crate::adapters::memory::BatchHandler;
use crate::application::{EventOutcome, StatsUpdater};
use crate::domain::DomainEvent;

use super::message::Received;
use super::report::{BatchReport, MessageOutcome};
use super::{SqsBatchResponse, SqsEvent};

/// The function name metrics are reported under.
const FUNCTION: &str = "update-stats";

#[derive(Clone)]
pub struct StatsConsumer {
    updater: StatsUpdater,
}

impl StatsConsumer {
    pub fn new(updater: StatsUpdater) -> Self {
        Self { updater }
    }

    /// What Lambda gets back: the messages to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.process(event).await.response()
    }

    /// Handles a batch and says what became of each message.
    pub async fn process(&self, event: SqsEvent) -> BatchReport {
        let mut report = BatchReport::default();
        let mut readable: Vec<Received> = Vec::new();
        let mut events: Vec<DomainEvent> = Vec::new();
        for (index, message) in event.records.iter().enumerate() {
            let received = Received::new(index, message);
            match received.span.in_scope(|| received.read(message)) {
                Ok(event) => {
                    events.push(event);
                    readable.push(received);
                }
                Err(poison) => received.span.in_scope(|| {
                    report.record(
                        index,
                        &received.message_id,
                        MessageOutcome::Failed(poison.into()),
                    )
                }),
            }
        }
        let outcomes = self
            .updater
            .apply(&events)
            .instrument(tracing::info_span!("apply_stats", events = events.len()))
            .await;
        for (received, outcome) in readable.iter().zip(outcomes) {
            let outcome = match outcome {
                EventOutcome::Applied | EventOutcome::NoEffect => MessageOutcome::Processed,
                EventOutcome::Duplicate => MessageOutcome::Duplicate,
                EventOutcome::Failed(error) => MessageOutcome::Failed(error.into()),
            };
            received
                .span
                .in_scope(|| report.record(received.index, &received.message_id, outcome));
        }
        report.emit_metrics(FUNCTION);
        report
    }
}

#[async_trait]
impl BatchHandler for StatsConsumer {
    async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle(event).await
    }
}
