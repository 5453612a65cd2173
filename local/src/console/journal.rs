//! The journal of the pipeline: what happened to each event, step by step, with timestamps — the
//! HTTP request, the outbox record, the publish, each delivery to each consumer and its verdict,
//! the stats change — and a count per edge. The recording ports (`recording.rs`) write it; the
//! console reads it as JSON, searches it by activity, event, correlation or message id, and
//! follows it live through a broadcast channel.
//!
//! It lives in memory and is bounded: a ring of the latest entries (the oldest are dropped), so a
//! stack left running for days holds a window of its recent past, never an ever-growing log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

/// Entries kept when no other bound is given: enough for a few hundred events' journeys.
pub const DEFAULT_CAPACITY: usize = 5000;

/// Entries a search answers at most (the newest ones).
pub const MAX_ANSWERED: usize = 500;

/// The most of a message body an entry keeps. The ring bounds entries, not bytes: with whole
/// bodies (up to 256 KiB on SQS) 5000 poison verdicts could hold over a gigabyte.
pub const MAX_RECORDED_BODY: usize = 4096;

/// A body as an entry keeps it: at most [`MAX_RECORDED_BODY`] bytes, cut at a character boundary.
pub fn recorded_body(body: &str) -> &str {
    if body.len() <= MAX_RECORDED_BODY {
        return body;
    }
    let mut end = MAX_RECORDED_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

/// One step of an event's journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A request to the HTTP API that changes something (reads cause no event).
    Request,
    /// The outbox record written in the same transaction as the change.
    Outbox,
    /// The event handed to the bus or broker: accepted, or refused.
    Publish,
    /// A message handed to a consumer by its queue's event source.
    Delivery,
    /// The consumer's verdict on that message: applied, duplicate, retry or poison.
    Verdict,
    /// A write to the statistics the event made (or found made before).
    StatsChange,
}

/// One thing that happened, with the ids that tie it to the others.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// Order of recording, unique in the journal's life.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub step: Step,
    /// Where it happened: a route, the outbox, the bus, a queue, a consumer.
    pub place: String,
    /// What happened there, in a word or a few (`201`, `accepted`, `poison`).
    pub outcome: String,
    /// False for a refusal or failure.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Anything else worth showing (the user, a receive count, a reason, the totals changed).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// What a recorder knows of an entry; the journal adds its number and time.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// When it happened, if not now: a request is recorded once answered, at its arrival time.
    pub at: Option<OffsetDateTime>,
    pub place: String,
    pub outcome: String,
    pub ok: bool,
    pub ids: EventIds,
    pub message_id: Option<String>,
    pub detail: Value,
}

/// The ids that tie steps together. Each is optional: a poison message has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventIds {
    pub activity_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub correlation_id: Option<String>,
}

impl EventIds {
    /// The ids of an event envelope (an outbox record's detail, an EventBridge event's
    /// `detail`), as far as it has them: `aggregate_id` is the activity's id for activity events.
    pub fn of_envelope(envelope: &Value) -> Self {
        let text = |key: &str| envelope.get(key).and_then(Value::as_str).map(str::to_owned);
        let event_type = text("event_type");
        let is_activity_event = event_type
            .as_deref()
            .is_some_and(|t| t.starts_with("activity."));
        Self {
            activity_id: text("aggregate_id").filter(|_| is_activity_event),
            event_id: text("event_id"),
            event_type,
            correlation_id: text("correlation_id"),
        }
    }
}

/// Counts of one consumer queue's edge: what its event source handed the consumer, and the
/// verdicts. Depths (waiting, in flight, dead-lettered) come from the transport itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounters {
    pub delivered: u64,
    pub applied: u64,
    pub duplicate: u64,
    pub retry: u64,
    pub poison: u64,
}

/// Counts per edge since the stack started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Requests that change something (POST, PUT, PATCH, DELETE), by any status.
    pub requests: u64,
    /// Outbox records written with a change.
    pub outbox_written: u64,
    /// Events the bus or broker accepted (a republish by the relay counts again).
    pub published: u64,
    /// Events it refused, after the publisher's own retries.
    pub publish_failed: u64,
    /// Per consumer queue, by the logical id of `template.yaml`.
    pub queues: BTreeMap<String, QueueCounters>,
    /// Stats writes that changed totals, and those found done before.
    pub stats_applied: u64,
    pub stats_duplicate: u64,
}

struct Inner {
    entries: VecDeque<JournalEntry>,
    next_seq: u64,
    counters: Counters,
}

/// The bounded journal and its counters, shared by the recorders and the console.
pub struct Journal {
    capacity: usize,
    /// The adapters the stack runs on, as the listening line names them (`memory+rabbitmq`).
    adapters: String,
    inner: Mutex<Inner>,
    live: broadcast::Sender<JournalEntry>,
    /// Turns true when the stack stops: live followers end.
    closing: watch::Sender<bool>,
}

impl Journal {
    /// A journal keeping the latest `capacity` entries (at least one) of a stack on `adapters`.
    pub fn new(capacity: usize, adapters: &str) -> Self {
        let (live, _) = broadcast::channel(256);
        let (closing, _) = watch::channel(false);
        Self {
            capacity: capacity.max(1),
            adapters: adapters.to_owned(),
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                next_seq: 1,
                counters: Counters::default(),
            }),
            live,
            closing,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole entries behind: the data is still good.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a step and counts it with `count`; live followers get it at once.
    pub fn record(&self, step: Step, record: Record, count: impl FnOnce(&mut Counters)) {
        let entry = {
            let mut inner = self.lock();
            count(&mut inner.counters);
            let entry = JournalEntry {
                seq: inner.next_seq,
                at: record.at.unwrap_or_else(OffsetDateTime::now_utc),
                step,
                place: record.place,
                outcome: record.outcome,
                ok: record.ok,
                activity_id: record.ids.activity_id,
                event_id: record.ids.event_id,
                event_type: record.ids.event_type,
                correlation_id: record.ids.correlation_id,
                message_id: record.message_id,
                detail: record.detail,
            };
            inner.next_seq += 1;
            if inner.entries.len() == self.capacity {
                inner.entries.pop_front();
            }
            inner.entries.push_back(entry.clone());
            entry
        };
        // No follower is fine: nobody has the console open.
        let _ = self.live.send(entry);
    }

    pub fn adapters(&self) -> &str {
        &self.adapters
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// The latest `limit` entries, oldest first.
    pub fn latest(&self, limit: usize) -> Vec<JournalEntry> {
        let inner = self.lock();
        let skip = inner.entries.len().saturating_sub(limit);
        inner.entries.iter().skip(skip).cloned().collect()
    }

    /// The journey of whatever `id` names, in the order things happened: the entries carrying it as an activity,
    /// event, correlation or message id, and then every entry of the events and correlations
    /// those name — so an activity id finds its request, and through the request's correlation
    /// id the events it caused, their deliveries and the stats they changed.
    pub fn journey(&self, id: &str) -> Vec<JournalEntry> {
        let inner = self.lock();
        let named = |e: &JournalEntry| {
            [
                &e.activity_id,
                &e.event_id,
                &e.correlation_id,
                &e.message_id,
            ]
            .into_iter()
            .any(|field| field.as_deref() == Some(id))
        };
        let mut events = BTreeSet::new();
        let mut correlations = BTreeSet::new();
        for entry in inner.entries.iter().filter(|e| named(e)) {
            events.extend(entry.event_id.clone());
            correlations.extend(entry.correlation_id.clone());
        }
        let related = |e: &JournalEntry| {
            named(e)
                || e.event_id.as_ref().is_some_and(|x| events.contains(x))
                || e.correlation_id
                    .as_ref()
                    .is_some_and(|x| correlations.contains(x))
        };
        let mut found: Vec<JournalEntry> = inner
            .entries
            .iter()
            .filter(|e| related(e))
            .cloned()
            .collect();
        found.sort_by_key(|e| (e.at, e.seq));
        let skip = found.len().saturating_sub(MAX_ANSWERED);
        found.into_iter().skip(skip).collect()
    }

    /// The latest verdict on a message: by its id, else (on transports that give a dead letter a
    /// new id) the latest unsettled verdict on the same body (as far as the entry kept it).
    pub fn last_verdict(&self, message_id: &str, body: &str) -> Option<JournalEntry> {
        let body = recorded_body(body);
        let inner = self.lock();
        let verdicts = || {
            inner
                .entries
                .iter()
                .rev()
                .filter(|e| e.step == Step::Verdict)
        };
        verdicts()
            .find(|e| e.message_id.as_deref() == Some(message_id))
            .or_else(|| verdicts().find(|e| e.detail["body"].as_str() == Some(body)))
            .cloned()
    }

    /// Ends every live follower (the stack is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Turns true when the journal is closed.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// A receiver of every entry recorded from now on.
    pub fn follow(&self) -> broadcast::Receiver<JournalEntry> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(journal: &Journal, step: Step, ids: EventIds) {
        journal.record(
            step,
            Record {
                place: "here".into(),
                outcome: "done".into(),
                ok: true,
                ids,
                ..Record::default()
            },
            |c| c.requests += 1,
        );
    }

    #[test]
    fn a_long_body_is_kept_cut_at_a_character_boundary_and_still_matches_its_dead_letter() {
        // 'é' is two bytes: the cut falls inside one and must step back.
        let long = format!("x{}", "é".repeat(MAX_RECORDED_BODY));
        let kept = recorded_body(&long);
        assert!(kept.len() <= MAX_RECORDED_BODY && kept.len() > MAX_RECORDED_BODY - 4);
        assert!(long.starts_with(kept));
        assert_eq!(recorded_body("short"), "short");

        let journal = Journal::new(10, "test");
        journal.record(
            Step::Verdict,
            Record {
                place: "queue".into(),
                outcome: "poison".into(),
                message_id: Some("first-id".into()),
                detail: json!({ "body": recorded_body(&long) }),
                ..Record::default()
            },
            |_| {},
        );
        let found = journal
            .last_verdict("a-new-id", &long)
            .expect("matched by its body");
        assert_eq!(found.message_id.as_deref(), Some("first-id"));
        assert!(journal.last_verdict("a-new-id", "another body").is_none());
    }

    fn ids(activity: Option<&str>, event: Option<&str>, correlation: &str) -> EventIds {
        EventIds {
            activity_id: activity.map(str::to_owned),
            event_id: event.map(str::to_owned),
            event_type: None,
            correlation_id: Some(correlation.to_owned()),
        }
    }

    #[test]
    fn the_oldest_entries_go_when_the_ring_is_full() {
        let journal = Journal::new(3, "test");
        for n in 0..5 {
            step(
                &journal,
                Step::Request,
                ids(Some(&format!("a{n}")), None, "c"),
            );
        }
        let kept: Vec<u64> = journal.latest(10).iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(journal.counters().requests, 5, "counters count everything");
    }

    #[test]
    fn an_activity_id_finds_the_events_its_request_caused_and_nothing_else() {
        let journal = Journal::new(100, "test");
        step(&journal, Step::Request, ids(Some("act-1"), None, "corr-1"));
        step(&journal, Step::Request, ids(Some("act-2"), None, "corr-2"));
        step(
            &journal,
            Step::Outbox,
            ids(Some("act-1"), Some("ev-1"), "corr-1"),
        );
        step(&journal, Step::Delivery, ids(None, Some("ev-1"), "corr-1"));
        // An award caused by the same request: same correlation, no activity id.
        step(
            &journal,
            Step::Publish,
            ids(None, Some("ev-award"), "corr-1"),
        );
        step(
            &journal,
            Step::Outbox,
            ids(Some("act-2"), Some("ev-2"), "corr-2"),
        );
        let journey: Vec<u64> = journal.journey("act-1").iter().map(|e| e.seq).collect();
        assert_eq!(journey, vec![1, 3, 4, 5]);
        let by_event: Vec<u64> = journal.journey("ev-1").iter().map(|e| e.seq).collect();
        assert_eq!(
            by_event,
            vec![1, 3, 4, 5],
            "the event's correlation leads back"
        );
        assert!(journal.journey("nothing").is_empty());
    }

    #[test]
    fn a_journey_is_in_the_order_things_happened_not_the_order_recorded() {
        let journal = Journal::new(10, "test");
        let arrived = OffsetDateTime::now_utc();
        step(&journal, Step::Outbox, ids(Some("act"), Some("ev"), "corr"));
        journal.record(
            Step::Request,
            Record {
                at: Some(arrived),
                ids: ids(Some("act"), None, "corr"),
                ..Record::default()
            },
            |_| {},
        );
        let steps: Vec<Step> = journal.journey("act").iter().map(|e| e.step).collect();
        assert_eq!(steps, vec![Step::Request, Step::Outbox]);
    }

    #[test]
    fn envelope_ids_name_the_activity_only_for_activity_events() {
        let created = EventIds::of_envelope(&json!({
            "event_id": "e", "event_type": "activity.created", "aggregate_id": "a",
            "correlation_id": "c"
        }));
        assert_eq!(created.activity_id.as_deref(), Some("a"));
        let award = EventIds::of_envelope(&json!({
            "event_id": "e", "event_type": "achievement.unlocked", "aggregate_id": "user-1"
        }));
        assert_eq!(award.activity_id, None);
        assert_eq!(
            EventIds::of_envelope(&json!("not an object")),
            EventIds::default()
        );
    }

    #[tokio::test]
    async fn followers_get_each_entry_as_it_is_recorded() {
        let journal = Journal::new(10, "test");
        let mut live = journal.follow();
        step(&journal, Step::Verdict, ids(None, Some("ev"), "c"));
        let entry = live.recv().await.unwrap();
        assert_eq!(entry.step, Step::Verdict);
        assert_eq!(entry.event_id.as_deref(), Some("ev"));
    }
}
