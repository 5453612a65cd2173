//! An EventBridge bus in memory. Each published record becomes the event EventBridge would
//! deliver (`version`, `id`, `detail-type`, `source`, `time`, `detail`, ...), is matched against
//! every rule's event pattern with EventBridge's own matching semantics (the `quamina` crate), and
//! is sent to the queue of every rule that matches. The matcher is built only with the
//! `memory-routing` feature (the local stack, the tests, the benches): a Lambda function's memory
//! mode has a bus without rules, and quamina's pattern compiler, case-folding and Unicode tables
//! were linked into every function through this constructor (issue 15, size).
//!
//! Every accepted event is also kept, as EventBridge's archive keeps it, so that a time window
//! can be replayed to one rule's queue (`EventArchive`): the replayed copy carries `replay-name`,
//! as EventBridge's does, and goes to that rule's target only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::application::{
    EventArchive, EventPublisher, FailedEntry, OutboxRecord, PublishError, PublishReport,
    ReplayError, ReplayProgress, ReplayRequest, ReplayState,
};

use super::queue::MemoryQueue;

/// A rule: an EventBridge event pattern and the queue it targets.
#[derive(Clone)]
pub struct BusRule {
    pub name: String,
    /// The rule's `EventPattern`, as JSON.
    pub event_pattern: serde_json::Value,
    pub target: Arc<MemoryQueue>,
}

#[derive(Default)]
struct Faults {
    /// Entries still to refuse, one per published entry, with this error code.
    refuse_entries: usize,
    refuse_code: String,
    /// Whole calls fail while set.
    failing_calls: Option<PublishError>,
}

/// Accepted events the bus keeps for [`MemoryEventBus::accepted_events`]. The local stack runs
/// on this bus for as long as it is up; keeping every event (about 4 KB each as JSON values) was
/// the 4 KB per request the soak of `bench/load` saw memory grow by (docs/reliability.md).
pub const ACCEPTED_EVENTS_KEPT: usize = 1_000;

pub struct MemoryEventBus {
    matcher: Matcher,
    targets: Vec<(String, Arc<MemoryQueue>)>,
    /// The first [`ACCEPTED_EVENTS_KEPT`] events accepted, for tests to read back.
    /// As JSON text: parsed only when read back (tests, a replay), not on every publish.
    delivered: Mutex<Vec<String>>,
    /// Every event accepted, counted.
    accepted: Mutex<usize>,
    calls: Mutex<usize>,
    faults: Mutex<Faults>,
    /// Finished replays: name, events sent and the time of the last one.
    replays: Mutex<HashMap<String, (u64, Option<OffsetDateTime>)>>,
}

/// The rules' event patterns, matched with EventBridge's semantics.
#[cfg(feature = "memory-routing")]
struct Matcher(quamina::Quamina<String>);

#[cfg(feature = "memory-routing")]
impl Matcher {
    fn new() -> Self {
        Self(quamina::Quamina::new())
    }

    fn add(&mut self, rule: &str, pattern: &serde_json::Value) -> Result<(), String> {
        self.0
            .add_pattern(rule.to_owned(), &pattern.to_string())
            .map_err(|e| e.to_string())
    }

    /// The names of the rules `event` (JSON) matches.
    fn matches(&self, event: &str) -> Result<Vec<String>, String> {
        self.0
            .matches_for_event(event.as_bytes())
            .map_err(|e| e.to_string())
    }
}

/// Without `memory-routing` a bus has no rules: it accepts and keeps events and delivers none.
#[cfg(not(feature = "memory-routing"))]
struct Matcher;

#[cfg(not(feature = "memory-routing"))]
impl Matcher {
    fn new() -> Self {
        Self
    }

    fn add(&mut self, _rule: &str, _pattern: &serde_json::Value) -> Result<(), String> {
        Err("event patterns are matched only with activelog's `memory-routing` feature".into())
    }

    fn matches(&self, _event: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// A rule whose pattern the matcher refused.
#[derive(Debug, thiserror::Error)]
#[error("event pattern of rule `{rule}` is invalid: {reason}")]
pub struct InvalidPattern {
    pub rule: String,
    pub reason: String,
}

impl MemoryEventBus {
    pub fn new(rules: Vec<BusRule>) -> Result<Self, InvalidPattern> {
        let mut matcher = Matcher::new();
        let mut targets = Vec::new();
        for rule in rules {
            matcher
                .add(&rule.name, &rule.event_pattern)
                .map_err(|reason| InvalidPattern {
                    rule: rule.name.clone(),
                    reason,
                })?;
            targets.push((rule.name, rule.target));
        }
        Ok(Self {
            matcher,
            targets,
            delivered: Mutex::new(Vec::new()),
            accepted: Mutex::new(0),
            calls: Mutex::new(0),
            faults: Mutex::new(Faults::default()),
            replays: Mutex::new(HashMap::new()),
        })
    }

    /// The events the bus accepted, as EventBridge-shaped JSON, in order: the first
    /// [`ACCEPTED_EVENTS_KEPT`] of them (a test reads back far fewer).
    pub fn accepted_events(&self) -> Vec<serde_json::Value> {
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            // The bus wrote this JSON itself: it parses.
            .map(|text| serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    /// How many events the bus accepted, all of them.
    pub fn accepted_count(&self) -> usize {
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `count` entries are refused with `code`, as `PutEvents` reports per entry.
    pub fn refuse_next_entries(&self, count: usize, code: &str) {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.refuse_entries = count;
        faults.refuse_code = code.to_owned();
    }

    /// Every call fails with `error` until called with `None`.
    pub fn fail_calls_with(&self, error: Option<PublishError>) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing_calls = error;
    }

    /// The event EventBridge would deliver to a target for this record (a new id per publish,
    /// as EventBridge gives).
    pub fn eventbridge_event(&self, record: &OutboxRecord) -> serde_json::Value {
        eventbridge_event(record, &ulid::Ulid::new().to_string())
    }

    /// Delivers one event (its JSON text) to every matching rule's queue; returns the names of
    /// those rules.
    fn route(&self, bytes: &str) -> Vec<String> {
        let matched = match self.matcher.matches(bytes) {
            Ok(matched) => matched,
            Err(error) => {
                tracing::error!(%error, "event could not be matched against the rules");
                return Vec::new();
            }
        };
        for (rule, queue) in &self.targets {
            if matched.contains(rule) {
                queue.send(bytes.to_owned());
            }
        }
        matched
    }
}

#[async_trait]
impl EventArchive for MemoryEventBus {
    /// Sends every archived event whose `time` is in `[from, to)` and that the consumer's rule
    /// matches to that rule's queue only, marked with `replay-name`; done before it returns.
    async fn start_replay(&self, request: &ReplayRequest) -> Result<(), ReplayError> {
        if request.from >= request.to {
            return Err(ReplayError::Refused(
                "the window's start must be before its end".into(),
            ));
        }
        if self
            .replays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&request.name)
        {
            return Err(ReplayError::Refused(format!(
                "replay {} already exists",
                request.name
            )));
        }
        let queue_name = request.consumer.queue();
        let rules: Vec<&(String, Arc<MemoryQueue>)> = self
            .targets
            .iter()
            .filter(|(_, queue)| queue.name() == queue_name)
            .collect();
        if rules.is_empty() {
            return Err(ReplayError::Refused(format!(
                "no rule targets {queue_name}"
            )));
        }
        let archived = self
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut sent = 0;
        let mut last = None;
        for text in archived {
            // The bus wrote this JSON itself: it parses.
            let Ok(mut event) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let time = event
                .get("time")
                .and_then(serde_json::Value::as_str)
                .and_then(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok());
            let Some(time) = time.filter(|t| *t >= request.from && *t < request.to) else {
                continue;
            };
            let matched = self.matcher.matches(&text).unwrap_or_default();
            if let Some(object) = event.as_object_mut() {
                object.insert("replay-name".into(), request.name.clone().into());
                object.insert("id".into(), ulid::Ulid::new().to_string().into());
            }
            for (rule, queue) in &rules {
                if matched.contains(rule) {
                    queue.send(event.to_string());
                    sent += 1;
                    last = Some(last.map_or(time, |l: OffsetDateTime| l.max(time)));
                }
            }
        }
        tracing::info!(replay = %request.name, consumer = request.consumer.name(), events = sent, "archive replayed");
        self.replays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request.name.clone(), (sent, last));
        Ok(())
    }

    async fn replay_progress(&self, name: &str) -> Result<ReplayProgress, ReplayError> {
        let replays = self.replays.lock().unwrap_or_else(|e| e.into_inner());
        let (events, last) = replays
            .get(name)
            .ok_or_else(|| ReplayError::Refused(format!("no replay named {name}")))?;
        Ok(ReplayProgress {
            state: ReplayState::Completed,
            replayed_through: *last,
            events: Some(*events),
        })
    }
}

#[async_trait]
impl EventPublisher for MemoryEventBus {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let mut report = PublishReport::default();
        for record in records {
            {
                let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(error) = &faults.failing_calls {
                    return Err(error.clone());
                }
                if faults.refuse_entries > 0 {
                    faults.refuse_entries -= 1;
                    report.failed.push(FailedEntry {
                        event_id: record.event_id,
                        error_code: faults.refuse_code.clone(),
                        error_message: "refused by fault injection".into(),
                    });
                    continue;
                }
            }
            let event = eventbridge_event_text(record, &ulid::Ulid::new().to_string());
            let rules = self.route(&event);
            tracing::debug!(event_id = %record.event_id, event_type = %record.event_type, ?rules, "event routed");
            *self.accepted.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
            if delivered.len() < ACCEPTED_EVENTS_KEPT {
                delivered.push(event);
            }
        }
        Ok(report)
    }
}

/// The event EventBridge delivers to a target for this record, with event id `id`. Brokers carry
/// the same shape, so a consumer reads one format whatever the transport.
pub fn eventbridge_event(record: &OutboxRecord, id: &str) -> serde_json::Value {
    // Written as JSON just now: it parses.
    serde_json::from_str(&eventbridge_event_text(record, id)).unwrap_or(serde_json::Value::Null)
}

/// [`eventbridge_event`] as the JSON text a queue or broker carries, written directly: the
/// record's `detail` is already JSON text and goes in as it is, where building a
/// `serde_json::Value` parsed it, and writing that out escaped every string again (a third of a
/// create's instructions in memory; issue 15). Keys in the order the `Value` wrote them; `detail`
/// that is not JSON becomes `null`, as before.
pub fn eventbridge_event_text(record: &OutboxRecord, id: &str) -> String {
    let detail = match serde_json::from_str::<serde::de::IgnoredAny>(&record.detail) {
        Ok(_) => record.detail.trim(),
        Err(_) => "null",
    };
    // The event's own time, as the EventBridge adapter sends it: a late relay keeps it.
    let event_time = record
        .occurred_at
        .replace_nanosecond(0)
        .unwrap_or(record.occurred_at)
        .format(&Rfc3339)
        .unwrap_or_default();
    let mut text = Vec::with_capacity(detail.len() + 224);
    // Writing a str into a Vec cannot fail.
    let string = |text: &mut Vec<u8>, value: &str| {
        serde_json::to_writer(text, value).unwrap_or_default();
    };
    text.extend_from_slice(br#"{"account":"000000000000","detail":"#);
    text.extend_from_slice(detail.as_bytes());
    text.extend_from_slice(br#","detail-type":"#);
    string(&mut text, record.event_type.as_str());
    text.extend_from_slice(br#","id":"#);
    string(&mut text, id);
    text.extend_from_slice(br#","region":"local","resources":[],"source":"#);
    string(&mut text, record.source());
    text.extend_from_slice(br#","time":"#);
    string(&mut text, &event_time);
    text.extend_from_slice(br#","version":"0"}"#);
    // Every piece is UTF-8: JSON punctuation, the detail (a String) and serde_json's strings.
    String::from_utf8(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType};

    fn record(detail: &str) -> OutboxRecord {
        OutboxRecord {
            event_id: EventId::from_ulid(ulid::Ulid::new()),
            event_type: EventType::ActivityCreated,
            occurred_at: time::macros::datetime!(2026-12-03 09:10:11.123456 UTC),
            detail: detail.to_owned(),
            trace_header: None,
        }
    }

    /// What `serde_json::json!` built before the text was written directly: the same event.
    fn as_a_value_built_it(record: &OutboxRecord, id: &str) -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "id": id,
            "detail-type": record.event_type.as_str(),
            "source": record.source(),
            "account": "000000000000",
            "time": "2026-12-03T09:10:11Z",
            "region": "local",
            "resources": [],
            "detail": serde_json::from_str::<serde_json::Value>(&record.detail)
                .unwrap_or(serde_json::Value::Null),
        })
    }

    #[test]
    fn the_event_text_is_the_event_the_value_described_with_detail_as_it_was_written() {
        let detail = r#"{"b":"quote \" and \\ and é","a":[1,2.5,null],"nested":{"z":true}}"#;
        let record = record(detail);
        let text = eventbridge_event_text(&record, "01KBQ6S6X6ZP4Q5M7X9ZB8W3N2");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            as_a_value_built_it(&record, "01KBQ6S6X6ZP4Q5M7X9ZB8W3N2")
        );
        // The keys in the order the Value wrote them; the detail byte for byte.
        assert!(
            text.starts_with(&format!(
                r#"{{"account":"000000000000","detail":{detail},"detail-type":"#
            )),
            "{text}"
        );
        assert!(
            text.ends_with(r#""time":"2026-12-03T09:10:11Z","version":"0"}"#),
            "{text}"
        );
    }

    #[test]
    fn a_detail_that_is_not_json_is_null_as_before() {
        for detail in ["not json", "", "{\"open\": "] {
            let record = record(detail);
            let parsed: serde_json::Value =
                serde_json::from_str(&eventbridge_event_text(&record, "id")).unwrap();
            assert_eq!(parsed, as_a_value_built_it(&record, "id"), "{detail:?}");
            assert_eq!(parsed["detail"], serde_json::Value::Null);
        }
    }
}
