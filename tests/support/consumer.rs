//! Helpers for the consumer tests: the checked-in SQS samples, and SQS batches built from domain
//! events the way EventBridge and SQS would deliver them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use activelog::adapters::memory::{Poller, ReceivedMessage};
use activelog::consumer::{SqsBatchResponse, SqsEvent};
use activelog::domain::{
    ActivityDate, ActivityFacts, ActivityType, CorrelationId, DomainEvent, EventId, EventPayload,
    UserId,
};
use time::macros::datetime;

/// `events/<function>/`.
pub fn samples_dir(function: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(function)
}

fn expectations(function: &str) -> BTreeMap<String, serde_json::Value> {
    let path = samples_dir(function).join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Every SQS case of `events/<function>/expected.json` with the message ids it expects to fail
/// (the Amazon MQ cases, `amazon-mq-*.json`, are in [`expected_amazon_mq`]; the Kafka cases,
/// `msk-*.json`, in [`expected_msk`]).
pub fn expected_failures(function: &str) -> BTreeMap<String, Vec<String>> {
    expectations(function)
        .into_iter()
        .filter(|(case, _)| !case.starts_with("amazon-mq-") && !case.starts_with("msk-"))
        .map(|(case, value)| {
            let ids = value["batch_item_failures"]
                .as_array()
                .unwrap_or_else(|| panic!("{case}: batch_item_failures missing"))
                .iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect();
            (case, ids)
        })
        .collect()
}

/// Every Amazon MQ case of `events/<function>/expected.json`: `None` when the invocation
/// succeeds, or the text its error must contain.
pub fn expected_amazon_mq(function: &str) -> BTreeMap<String, Option<String>> {
    expectations(function)
        .into_iter()
        .filter(|(case, _)| case.starts_with("amazon-mq-"))
        .map(|(case, value)| {
            let error = value["invocation_error"].as_str().map(str::to_owned);
            (case, error)
        })
        .collect()
}

/// Every Kafka case of `events/<function>/expected.json` with the partial batch response it
/// expects (`batchItemFailures` by topic-partition and offset).
pub fn expected_msk(function: &str) -> BTreeMap<String, serde_json::Value> {
    expectations(function)
        .into_iter()
        .filter(|(case, _)| case.starts_with("msk-"))
        .collect()
}

/// The stats consumer over a fresh in-memory store, and the store.
pub fn stats_consumer() -> (
    std::sync::Arc<activelog::adapters::memory::MemoryStatsStore>,
    activelog::consumer::StatsConsumer,
) {
    let store = std::sync::Arc::new(activelog::adapters::memory::MemoryStatsStore::new());
    (
        store.clone(),
        activelog::consumer::StatsConsumer::new(activelog::application::StatsUpdater::new(store)),
    )
}

/// The achievements consumer over a fresh in-memory stack.
pub fn achievements_consumer() -> activelog::consumer::AchievementsConsumer {
    let stack = activelog::startup::InMemoryStack::new(
        &[],
        &activelog::startup::QueueOptions::default(),
        std::sync::Arc::new(activelog::adapters::system::SystemClock),
        std::sync::Arc::new(activelog::adapters::memory::SequentialIds::default()),
    )
    .unwrap();
    activelog::consumer::AchievementsConsumer::new(stack.achievement_recorder.clone())
}

/// A sample Amazon MQ or Kafka event, read as the consumer functions read their invocations.
pub fn trigger_sample(function: &str, case: &str) -> activelog::consumer::trigger::Trigger {
    let path = samples_dir(function).join(case);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A sample SQS event, as `cargo lambda invoke --data-file` would send it.
pub fn sample(function: &str, case: &str) -> SqsEvent {
    let path = samples_dir(function).join(case);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

pub fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// The body EventBridge delivers to a queue for this event.
pub fn eventbridge_body(event: &DomainEvent) -> String {
    let detail: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
    serde_json::json!({
        "version": "0",
        "id": ulid::Ulid::new().to_string(),
        "detail-type": event.event_type().as_str(),
        "source": event.event_type().source(),
        "account": "123456789012",
        "time": "2026-11-26T12:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    })
    .to_string()
}

/// An SQS batch of these bodies; message `i` has id `m-<i>`.
pub fn batch_of_bodies(bodies: &[String]) -> SqsEvent {
    let at = datetime!(2026-11-26 12:00 UTC);
    let messages: Vec<ReceivedMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| ReceivedMessage {
            message_id: format!("m-{i}"),
            receipt_handle: format!("handle-{i}"),
            body: body.clone(),
            receive_count: 1,
            sent_at: at,
            first_received_at: at,
        })
        .collect();
    Poller::sqs_event("StatsQueue", &messages)
}

pub fn batch_of(events: &[DomainEvent]) -> SqsEvent {
    let bodies: Vec<String> = events.iter().map(eventbridge_body).collect();
    batch_of_bodies(&bodies)
}

pub fn facts(activity_type: ActivityType, minutes: u32, distance_m: Option<u32>) -> ActivityFacts {
    ActivityFacts {
        activity_type,
        duration_minutes: minutes,
        distance_m,
        calories_burned: Some(10 * minutes),
        activity_date: ActivityDate::from_date(time::macros::date!(2026 - 11 - 24)),
    }
}

/// An `activity.created` event number `n` of `user`.
pub fn created(n: u64, user: &str, facts: ActivityFacts) -> DomainEvent {
    DomainEvent {
        event_id: EventId::from_ulid(ulid::Ulid::from_parts(1_795_000_000_000, u128::from(n))),
        occurred_at: datetime!(2026-11-24 18:00 UTC),
        aggregate_id: ulid::Ulid::from_parts(1_795_000_000_000, 1000 + u128::from(n)).to_string(),
        user_id: UserId::parse(user).unwrap(),
        correlation_id: CorrelationId::parse(&format!("req-{n}")).unwrap(),
        payload: EventPayload::ActivityCreated {
            title: format!("Activity {n}"),
            facts,
            tags: Vec::new(),
        },
    }
}
