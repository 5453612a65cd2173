//! The achievements consumer's edge (`record-achievements`): each message is read and recorded on
//! its own, inside its own span, because awards depend on the progress each event leaves behind.

use async_trait::async_trait;
use tracing::Instrument;

use crate::application::{AchievementRecorder, Counting};
use crate::functions::ConsumerFunction;

use super::event_source::{BatchHandler, RawMessage, Verdict};
use super::message::Received;
use super::report::{BatchReport, MessageOutcome};
use super::{SqsBatchResponse, SqsEvent, sqs};

#[derive(Clone)]
pub struct AchievementsConsumer {
    recorder: AchievementRecorder,
}

impl AchievementsConsumer {
    pub fn new(recorder: AchievementRecorder) -> Self {
        Self { recorder }
    }

    /// What Lambda's SQS trigger gets back: the messages to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.process(&sqs::raw_messages(&event)).await.response()
    }

    /// Handles a batch and says what became of each message.
    pub async fn process(&self, batch: &[RawMessage]) -> BatchReport {
        let span = super::batch_span(ConsumerFunction::RecordAchievements, batch.len());
        self.process_in(batch).instrument(span).await
    }

    async fn process_in(&self, batch: &[RawMessage]) -> BatchReport {
        let mut report = BatchReport::default();
        for (index, message) in batch.iter().enumerate() {
            let (received, read) = Received::read(index, message);
            if let Ok(event) = &read
                && let Some(writer) = event.trace_parent
            {
                crate::traces::link(&tracing::Span::current(), &writer);
            }
            let outcome = match read {
                Err(poison) => MessageOutcome::Failed(poison.into()),
                Ok(event) => match self
                    .recorder
                    .record(&event)
                    .instrument(received.span.clone())
                    .await
                {
                    Ok(recorded) if recorded.counting == Counting::Duplicate => {
                        MessageOutcome::Duplicate
                    }
                    Ok(_) => MessageOutcome::Processed,
                    Err(error) => MessageOutcome::Failed(error.into()),
                },
            };
            received
                .span
                .in_scope(|| report.record(index, &received.message_id, outcome));
        }
        report.emit_metrics(ConsumerFunction::RecordAchievements.name());
        report
    }
}

#[async_trait]
impl BatchHandler for AchievementsConsumer {
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict> {
        self.process(batch).await.verdicts(batch.len())
    }
}
