//! Recording twins of the ports the pipeline runs through: each wraps the real adapter, passes
//! every call through unchanged, and writes what it saw to the [`Journal`]. The local stack wires
//! them around its adapters (in memory, on a broker, with `--aws`); the Lambda binaries never
//! see them, so the journal costs the deployed functions nothing.
//!
//! - [`RecordingActivityStore`]: the outbox record written with each change;
//! - [`RecordingPublisher`]: each event the bus or broker accepted or refused;
//! - [`RecordingBatchHandler`]: each message a queue's event source hands its consumer, and the
//!   consumer's verdict (with the poison reason, read the way the consumer reads it);
//! - [`RecordingStatsStore`]: each stats write, applied or found done before.

use std::sync::Arc;

use activelog::application::{
    ActivityPage, ActivityStore, ApplyError, ApplyOutcome, EventPublisher, IdempotencyKey,
    IdempotencyRecord, ListQuery, OutboxRecord, PublishError, PublishReport, StatsStore,
    StoreError,
};
use activelog::consumer::{BatchHandler, RawMessage, Verdict, read_event};
use activelog::domain::{
    Activity, ActivityId, EventId, PeriodKey, StatsDelta, UserId, UserStats, Version,
};
use async_trait::async_trait;
use serde_json::{Value, json};

use super::journal::{Counters, EventIds, Journal, QueueCounters, Record, Step, recorded_body};

/// The ids of an outbox record (the record's detail is the event envelope).
fn ids_of_record(record: &OutboxRecord) -> EventIds {
    let envelope = serde_json::from_str(&record.detail).unwrap_or(Value::Null);
    let mut ids = EventIds::of_envelope(&envelope);
    ids.event_id = Some(record.event_id.to_string());
    ids.event_type = Some(record.event_type.as_str().to_owned());
    ids
}

/// The activity store, recording the outbox record of each change it wrote.
pub struct RecordingActivityStore {
    inner: Arc<dyn ActivityStore>,
    journal: Arc<Journal>,
}

impl RecordingActivityStore {
    pub fn new(inner: Arc<dyn ActivityStore>, journal: Arc<Journal>) -> Self {
        Self { inner, journal }
    }

    fn written(&self, outbox: &OutboxRecord, result: &Result<(), StoreError>) {
        if result.is_ok() {
            self.journal.record(
                Step::Outbox,
                Record {
                    place: "outbox".into(),
                    outcome: "written".into(),
                    ok: true,
                    ids: ids_of_record(outbox),
                    ..Record::default()
                },
                |c| c.outbox_written += 1,
            );
        }
    }
}

#[async_trait]
impl ActivityStore for RecordingActivityStore {
    async fn create(
        &self,
        activity: &Activity,
        outbox: &OutboxRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let result = self.inner.create(activity, outbox, idempotency).await;
        self.written(outbox, &result);
        result
    }

    async fn get(&self, user_id: &UserId, id: ActivityId) -> Result<Option<Activity>, StoreError> {
        self.inner.get(user_id, id).await
    }

    async fn list(&self, user_id: &UserId, query: &ListQuery) -> Result<ActivityPage, StoreError> {
        self.inner.list(user_id, query).await
    }

    async fn update(
        &self,
        activity: &Activity,
        expected: Version,
        outbox: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let result = self.inner.update(activity, expected, outbox).await;
        self.written(outbox, &result);
        result
    }

    async fn delete(&self, activity: &Activity, outbox: &OutboxRecord) -> Result<(), StoreError> {
        let result = self.inner.delete(activity, outbox).await;
        self.written(outbox, &result);
        result
    }

    async fn find_idempotency(
        &self,
        user_id: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.find_idempotency(user_id, key).await
    }
}

/// The publisher, recording each event the bus or broker accepted or refused.
pub struct RecordingPublisher {
    inner: Arc<dyn EventPublisher>,
    journal: Arc<Journal>,
    /// The transport, as the console names it (`memory bus`, `rabbitmq`, `eventbridge`).
    transport: String,
}

impl RecordingPublisher {
    pub fn new(inner: Arc<dyn EventPublisher>, journal: Arc<Journal>, transport: &str) -> Self {
        Self {
            inner,
            journal,
            transport: transport.to_owned(),
        }
    }
}

#[async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        let result = self.inner.publish(records).await;
        for record in records {
            let refusal = match &result {
                Ok(report) => report
                    .failed
                    .iter()
                    .find(|f| f.event_id == record.event_id)
                    .map(|f| format!("{}: {}", f.error_code, f.error_message)),
                Err(error) => Some(error.to_string()),
            };
            let ok = refusal.is_none();
            self.journal.record(
                Step::Publish,
                Record {
                    place: self.transport.clone(),
                    outcome: if ok { "accepted" } else { "refused" }.into(),
                    ok,
                    ids: ids_of_record(record),
                    detail: refusal.map_or(Value::Null, |reason| json!({ "reason": reason })),
                    ..Record::default()
                },
                |c| match ok {
                    true => c.published += 1,
                    false => c.publish_failed += 1,
                },
            );
        }
        result
    }
}

/// A consumer, recording each message its queue's event source hands it and its verdict.
pub struct RecordingBatchHandler {
    inner: Arc<dyn BatchHandler>,
    journal: Arc<Journal>,
    /// The queue's logical id in `template.yaml` (`StatsQueue`).
    queue: String,
}

impl RecordingBatchHandler {
    pub fn new(inner: Arc<dyn BatchHandler>, journal: Arc<Journal>, queue: &str) -> Self {
        Self {
            inner,
            journal,
            queue: queue.to_owned(),
        }
    }

    fn counted<'a>(&self, counters: &'a mut Counters) -> &'a mut QueueCounters {
        counters.queues.entry(self.queue.clone()).or_default()
    }
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Applied => "applied",
        Verdict::Duplicate => "duplicate",
        Verdict::Retry => "retry",
        Verdict::Poison => "poison",
    }
}

#[async_trait]
impl BatchHandler for RecordingBatchHandler {
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict> {
        let mut read = Vec::with_capacity(batch.len());
        for message in batch {
            let event = read_event(message.body.as_deref());
            let ids = match &event {
                Ok(event) => EventIds {
                    activity_id: event
                        .event_type()
                        .as_str()
                        .starts_with("activity.")
                        .then(|| event.aggregate_id.clone()),
                    event_id: Some(event.event_id.to_string()),
                    event_type: Some(event.event_type().as_str().to_owned()),
                    correlation_id: Some(event.correlation_id.as_str().to_owned()),
                },
                Err(_) => EventIds::default(),
            };
            self.journal.record(
                Step::Delivery,
                Record {
                    at: None,
                    place: self.queue.clone(),
                    outcome: format!("receive #{}", message.delivery_count),
                    ok: true,
                    ids: ids.clone(),
                    message_id: Some(message.message_id.clone()),
                    detail: json!({ "receive_count": message.delivery_count }),
                },
                |c| self.counted(c).delivered += 1,
            );
            read.push((ids, event.err().map(|poison| poison.to_string())));
        }
        let verdicts = self.inner.handle_batch(batch).await;
        for ((message, verdict), (ids, poison)) in batch.iter().zip(&verdicts).zip(read) {
            let reason = match verdict {
                Verdict::Poison => poison.or_else(|| Some("the consumer refused it".into())),
                Verdict::Retry => Some("a dependency failed; delivered again later".into()),
                Verdict::Applied | Verdict::Duplicate => None,
            };
            self.journal.record(
                Step::Verdict,
                Record {
                    at: None,
                    place: self.queue.clone(),
                    outcome: verdict_name(*verdict).into(),
                    ok: verdict.is_settled(),
                    ids,
                    message_id: Some(message.message_id.clone()),
                    detail: json!({
                        "receive_count": message.delivery_count,
                        "reason": reason,
                        // The body of a message the consumer could not read, so that its dead
                        // letter can be matched to this verdict on transports that re-id it.
                        // Cut to a bound: the ring counts entries, not bytes.
                        "body": (!verdict.is_settled())
                            .then_some(message.body.as_deref())
                            .flatten()
                            .map(recorded_body),
                    }),
                },
                |c| {
                    let queue = self.counted(c);
                    match verdict {
                        Verdict::Applied => queue.applied += 1,
                        Verdict::Duplicate => queue.duplicate += 1,
                        Verdict::Retry => queue.retry += 1,
                        Verdict::Poison => queue.poison += 1,
                    }
                },
            );
        }
        verdicts
    }
}

/// The totals a delta changes, as the console shows them.
fn changes_of(delta: &StatsDelta) -> Value {
    let changes: Vec<Value> = delta
        .changes()
        .map(|change| {
            json!({
                "period": change.period.to_string(),
                "type": change.activity_type.as_str(),
                "totals": change.totals,
            })
        })
        .collect();
    json!({ "user_id": delta.user_id.as_str(), "changes": changes })
}

/// The stats store, recording each write the stats consumer made.
pub struct RecordingStatsStore {
    inner: Arc<dyn StatsStore>,
    journal: Arc<Journal>,
}

impl RecordingStatsStore {
    pub fn new(inner: Arc<dyn StatsStore>, journal: Arc<Journal>) -> Self {
        Self { inner, journal }
    }

    fn written(&self, consumer: &str, event_id: EventId, outcome: ApplyOutcome, detail: Value) {
        let applied = outcome == ApplyOutcome::Applied;
        self.journal.record(
            Step::StatsChange,
            Record {
                place: consumer.to_owned(),
                outcome: if applied { "applied" } else { "applied before" }.into(),
                ok: true,
                ids: EventIds {
                    event_id: Some(event_id.to_string()),
                    ..EventIds::default()
                },
                detail,
                ..Record::default()
            },
            |c| match applied {
                true => c.stats_applied += 1,
                false => c.stats_duplicate += 1,
            },
        );
    }
}

#[async_trait]
impl StatsStore for RecordingStatsStore {
    async fn apply_batch(
        &self,
        consumer: &str,
        event_ids: &[EventId],
        deltas: &[StatsDelta],
    ) -> Result<(), ApplyError> {
        let result = self.inner.apply_batch(consumer, event_ids, deltas).await;
        if result.is_ok() {
            // The deltas of a batch arrive merged per user: each event is shown with its batch's.
            let detail = json!({
                "events_in_batch": event_ids.len(),
                "deltas": deltas.iter().map(changes_of).collect::<Vec<_>>(),
            });
            for event_id in event_ids {
                self.written(consumer, *event_id, ApplyOutcome::Applied, detail.clone());
            }
        }
        result
    }

    async fn apply_once(
        &self,
        consumer: &str,
        event_id: EventId,
        delta: &StatsDelta,
    ) -> Result<ApplyOutcome, ApplyError> {
        let result = self.inner.apply_once(consumer, event_id, delta).await;
        if let Ok(outcome) = &result {
            let detail = json!({ "events_in_batch": 1, "deltas": [changes_of(delta)] });
            self.written(consumer, event_id, *outcome, detail);
        }
        result
    }

    async fn get(&self, user_id: &UserId, period: PeriodKey) -> Result<UserStats, StoreError> {
        self.inner.get(user_id, period).await
    }
}
