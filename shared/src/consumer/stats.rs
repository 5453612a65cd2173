//! The stats consumer's edge (`update-stats`): reads a batch, hands every readable event to
//! [`StatsUpdater`] at once (one store write for the common case), and reports per message.

use async_trait::async_trait;
use tracing::Instrument;

use crate::application::{EventOutcome, StatsUpdater};
use crate::domain::DomainEvent;
use crate::functions::ConsumerFunction;

use super::event_source::{BatchHandler, RawMessage, Verdict};
use super::message::Received;
use super::report::{BatchReport, MessageOutcome};
use super::{SqsBatchResponse, SqsEvent, sqs};

#[derive(Clone)]
pub struct StatsConsumer {
    updater: StatsUpdater,
}

impl StatsConsumer {
    pub fn new(updater: StatsUpdater) -> Self {
        Self { updater }
    }

    /// What Lambda's SQS trigger gets back: the messages to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.process(&sqs::raw_messages(&event)).await.response()
    }

    /// Handles a batch and says what became of each message.
    pub async fn process(&self, batch: &[RawMessage]) -> BatchReport {
        let span = super::batch_span(ConsumerFunction::UpdateStats, batch.len());
        self.process_in(batch).instrument(span).await
    }

    async fn process_in(&self, batch: &[RawMessage]) -> BatchReport {
        let mut report = BatchReport::default();
        let mut readable: Vec<Received> = Vec::new();
        let mut events: Vec<DomainEvent> = Vec::new();
        for (index, message) in batch.iter().enumerate() {
            let (received, read) = Received::read(index, message);
            match read {
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
        // The projection write serves every event of the batch at once: it links to each
        // event's trace (and the batch span to each message's), none of them its parent.
        let positions = events.iter().filter_map(|event| event.trace_parent);
        crate::traces::link_all(&tracing::Span::current(), positions.clone());
        let write = tracing::info_span!("apply_stats", events = events.len());
        crate::traces::link_all(&write, positions);
        let outcomes = self.updater.apply(&events).instrument(write).await;
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
        report.emit_metrics(ConsumerFunction::UpdateStats.name());
        report
    }
}

#[async_trait]
impl BatchHandler for StatsConsumer {
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict> {
        self.process(batch).await.verdicts(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::adapters::memory::MemoryStatsStore;
    use crate::application::ApplyError;
    use crate::consumer::SqsMessage;
    use crate::domain::{
        ActivityDate, ActivityFacts, ActivityType, CorrelationId, EventId, EventPayload, UserId,
    };

    /// Log lines as the JSON subscriber writes them, collected for inspection.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn message(id: &str, body: String) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = Some(body);
        message
    }

    #[test]
    fn failures_are_logged_with_the_message_event_and_correlation_ids() {
        let event = DomainEvent {
            event_id: EventId::from_ulid(ulid::Ulid::from_parts(1, 1)),
            occurred_at: time::macros::datetime!(2026-11-26 12:00 UTC),
            aggregate_id: "01M833X5N8Q2W7E4R6T9Y1V3J5".into(),
            user_id: UserId::parse("alice").unwrap(),
            correlation_id: CorrelationId::parse("req-from-the-post").unwrap(),
            trace_parent: None,
            payload: EventPayload::ActivityCreated {
                title: "Run".into(),
                facts: ActivityFacts {
                    activity_type: ActivityType::Running,
                    duration_minutes: 30,
                    distance_m: None,
                    calories_burned: None,
                    activity_date: ActivityDate::from_date(time::macros::date!(2026 - 11 - 25)),
                },
                tags: Vec::new(),
            },
        };
        let body = serde_json::json!({
            "version": "0", "id": "eb-1", "detail-type": "activity.created",
            "source": "activelog.activities", "time": "2026-11-26T12:00:00Z",
            "detail": serde_json::from_str::<serde_json::Value>(&event.to_json()).unwrap(),
        });
        let store = Arc::new(MemoryStatsStore::new());
        store.fail_next_batch(ApplyError::Unavailable("down".into()));
        store.fail_next_write_of(event.event_id, ApplyError::Unavailable("down".into()));
        let consumer = StatsConsumer::new(StatsUpdater::new(store));
        let mut batch = SqsEvent::default();
        batch.records = vec![
            message("m-good", body.to_string()),
            message("m-poison", "{".into()),
        ];

        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        let response = tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(consumer.handle(batch))
        });
        assert_eq!(response.batch_item_failures.len(), 2);

        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let logged: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let retryable = logged
            .iter()
            .find(|l| l["level"] == "WARN" && l["span"]["message_id"] == "m-good")
            .unwrap_or_else(|| panic!("no retry line in {text}"));
        assert_eq!(retryable["span"]["event_id"], event.event_id.to_string());
        assert_eq!(retryable["span"]["correlation_id"], "req-from-the-post");
        let poison = logged
            .iter()
            .find(|l| l["level"] == "ERROR")
            .unwrap_or_else(|| panic!("no poison line in {text}"));
        assert_eq!(poison["span"]["message_id"], "m-poison");
        assert!(
            poison["fields"]["reason"]
                .as_str()
                .unwrap()
                .contains("not JSON")
        );
    }
}
