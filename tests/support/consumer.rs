//! Helpers for the consumer tests: the consumers over in-memory stores, the checked-in samples
//! (SQS, Amazon MQ, Kafka), and SQS batches built from domain events the way EventBridge and SQS
//! would deliver them.

use std::path::PathBuf;
use std::sync::Arc;

use activelog::adapters::memory::{MemoryStatsStore, Poller, ReceivedMessage, SequentialIds};
use activelog::application::StatsUpdater;
use activelog::consumer::trigger::{self, Trigger};
use activelog::consumer::{
    AchievementsConsumer, BatchHandler, SqsBatchResponse, SqsEvent, StatsConsumer,
};
use activelog::domain::{
    ActivityDate, ActivityFacts, ActivityType, CorrelationId, DomainEvent, EventId, EventPayload,
    UserId,
};
use activelog::startup::{InMemoryStack, QueueOptions};
use time::macros::datetime;

use crate::samples::{Answer, Expectation, Sample, samples_of};

/// `events/<function>/`.
pub fn samples_dir(function: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(function)
}

/// The stats consumer over a fresh in-memory store, and the store.
pub fn stats_consumer() -> (Arc<MemoryStatsStore>, StatsConsumer) {
    let store = Arc::new(MemoryStatsStore::new());
    (store.clone(), StatsConsumer::new(StatsUpdater::new(store)))
}

/// The achievements consumer over a fresh in-memory stack.
pub fn achievements_consumer() -> AchievementsConsumer {
    let stack = InMemoryStack::new(
        &[],
        &QueueOptions::default(),
        Arc::new(activelog::adapters::system::SystemClock),
        Arc::new(SequentialIds::default()),
    )
    .unwrap();
    AchievementsConsumer::new(stack.achievement_recorder.clone())
}

/// The samples of `function` whose file name starts with `prefix` (`amazon-mq-`, `msk-`).
pub fn samples_named(function: &str, prefix: &str) -> Vec<Sample> {
    samples_of(function)
        .into_iter()
        .filter(|sample| sample.name.starts_with(prefix))
        .collect()
}

/// The samples of an SQS consumer's partial batch responses (`batch_item_failures`); the
/// Amazon MQ samples (`amazon-mq-*.json`) and the Kafka samples (`msk-*.json`) expect other
/// answers.
pub fn sqs_samples(function: &str) -> Vec<Sample> {
    samples_of(function)
        .into_iter()
        .filter(|sample| matches!(sample.expected, Expectation::BatchItemFailures(_)))
        .collect()
}

/// What a consumer's function answers a sample event: the trigger's answer (SQS's and Kafka's
/// partial batch responses, Amazon MQ's `{}`), or the error that hands the batch back.
pub async fn answer(consumer: &dyn BatchHandler, sample: &Sample) -> Answer {
    let trigger: Trigger = serde_json::from_value(sample.event.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", sample.label()));
    match trigger::answer(consumer, trigger).await {
        Ok(answer) => Answer::Response(serde_json::to_value(answer).unwrap()),
        Err(error) => Answer::InvocationError(error.to_string()),
    }
}

/// Asserts that `consumer` answers `sample` as `expected.json` says.
pub async fn assert_answers_as_expected(consumer: &dyn BatchHandler, sample: &Sample) {
    let answer = answer(consumer, sample).await;
    let problems = sample.expected.problems(&sample.event, &answer);
    assert!(
        problems.is_empty(),
        "{}: {}",
        sample.label(),
        problems.join("; ")
    );
}

/// A sample Amazon MQ or Kafka event, read as the consumer functions read their invocations.
pub fn trigger_sample(function: &str, case: &str) -> Trigger {
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
        trace_parent: None,
        payload: EventPayload::ActivityCreated {
            title: format!("Activity {n}"),
            facts,
            tags: Vec::new(),
        },
    }
}
