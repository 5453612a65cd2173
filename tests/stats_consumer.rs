//! The stats consumer as Lambda drives it: SQS batches in, partial-batch responses out, statistics
//! in the in-memory store. Every checked-in sample runs through it; the write-cost and fallback
//! tests count the store's calls.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::consumer::sqs::raw_messages;
use std::sync::Arc;

use activelog::adapters::memory::{MemoryStatsStore, StatsStoreCall};
use activelog::application::{ApplyError, StatsStore, StatsUpdater};
use activelog::consumer::StatsConsumer;
use activelog::domain::{ActivityType, DomainEvent, PeriodKey, Totals, UserId, UserStats};
use activelog_tests::consumer::{
    assert_answers_as_expected, batch_of, batch_of_bodies, created, facts, failed_ids, sample,
    sqs_samples,
};

fn consumer() -> (Arc<MemoryStatsStore>, StatsConsumer) {
    let store = Arc::new(MemoryStatsStore::new());
    let consumer = StatsConsumer::new(StatsUpdater::new(store.clone()));
    (store, consumer)
}

async fn stats(store: &MemoryStatsStore, user: &str, period: &str) -> UserStats {
    store
        .get(
            &UserId::parse(user).unwrap(),
            PeriodKey::parse(period).unwrap(),
        )
        .await
        .unwrap()
}

fn totals(activities: i64, minutes: i64, distance_m: i64, calories: i64) -> Totals {
    Totals {
        activities,
        minutes,
        distance_m,
        calories,
    }
}

/// What each sample leaves in the store: (user, period, totals), worked out by hand from the
/// sample files. A sample without an entry here fails the test.
fn expected_stats(case: &str) -> Vec<(&'static str, &'static str, Totals)> {
    match case {
        // alice: run created (v2) then updated to 45 min / 7.5 km / 420 kcal, ride created (v1);
        // bob: swim created and deleted again.
        "batch.json" => vec![
            ("alice", "all", totals(2, 105, 27_500, 420)),
            ("alice", "2026-W48", totals(2, 105, 27_500, 420)),
            ("alice", "2026-11", totals(2, 105, 27_500, 420)),
            ("bob", "all", totals(0, 0, 0, 0)),
        ],
        // The hike arrives twice and counts once.
        "duplicate.json" => vec![
            ("carol", "all", totals(2, 205, 14_100, 900)),
            ("carol", "2026-W47", totals(2, 205, 14_100, 900)),
        ],
        // Both yoga sessions count; the truncated body does not stop them.
        "poison.json" => vec![("dave", "all", totals(2, 100, 0, 360))],
        // Only the walk in a supported version counts.
        "unsupported-version.json" => vec![("erin", "all", totals(1, 25, 2_100, 0))],
        // Records no producer of ours could send: each is poison, nothing counts, no panic.
        "hostile-records.json" => vec![],
        other => panic!("no expected statistics for sample {other}: add them here"),
    }
}

#[tokio::test]
async fn every_sample_gets_its_expected_failures_and_statistics() {
    let samples = sqs_samples("update-stats");
    assert!(samples.len() >= 4, "samples: {samples:?}");
    for sample in samples {
        let case = &sample.name;
        let (store, consumer) = consumer();
        assert_answers_as_expected(&consumer, &sample).await;
        for (user, period, expected) in expected_stats(case) {
            assert_eq!(
                stats(&store, user, period).await.totals,
                expected,
                "{case}: {user} {period}"
            );
        }
    }
}

#[tokio::test]
async fn the_normal_batch_keeps_totals_per_activity_type() {
    let (store, consumer) = consumer();
    consumer.handle(sample("update-stats", "batch.json")).await;
    let alice = stats(&store, "alice", "all").await;
    assert_eq!(
        alice.by_type.get(&ActivityType::Running),
        Some(&totals(1, 45, 7_500, 420))
    );
    assert_eq!(
        alice.by_type.get(&ActivityType::Cycling),
        Some(&totals(1, 60, 20_000, 0))
    );
    assert!(
        stats(&store, "bob", "all").await.by_type.is_empty(),
        "a deleted activity leaves no type behind"
    );
}

#[tokio::test]
async fn the_same_batch_twice_changes_nothing_after_the_first() {
    for case in ["batch.json", "duplicate.json"] {
        let (store, consumer) = consumer();
        let first = consumer
            .process(&raw_messages(&sample("update-stats", case)))
            .await;
        let after_first = store.snapshot();
        let second = consumer
            .process(&raw_messages(&sample("update-stats", case)))
            .await;
        assert_eq!(store.snapshot(), after_first, "{case}");
        assert!(second.failures.is_empty(), "{case}");
        assert_eq!(second.processed, 0, "{case}");
        assert_eq!(
            second.duplicates,
            first.processed + first.duplicates,
            "{case}"
        );
    }
}

fn ten_events() -> Vec<DomainEvent> {
    (1..=10)
        .map(|n| {
            let user = if n % 2 == 0 { "alice" } else { "bob" };
            created(n, user, facts(ActivityType::Running, 30, Some(5_000)))
        })
        .collect()
}

fn writes(store: &MemoryStatsStore) -> Vec<StatsStoreCall> {
    store.calls().into_iter().filter(|c| c.is_write()).collect()
}

async fn assert_ten_events_counted(store: &MemoryStatsStore) {
    assert_eq!(
        stats(store, "alice", "all").await.totals,
        totals(5, 150, 25_000, 1_500)
    );
    assert_eq!(
        stats(store, "bob", "all").await.totals,
        totals(5, 150, 25_000, 1_500)
    );
}

#[tokio::test]
async fn ten_distinct_events_cost_one_write() {
    let (store, consumer) = consumer();
    let response = consumer.handle(batch_of(&ten_events())).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(writes(&store), [StatsStoreCall::ApplyBatch { events: 10 }]);
    assert_ten_events_counted(&store).await;
}

#[tokio::test]
async fn a_refused_batch_falls_back_to_one_write_per_event() {
    for refusal in [
        ApplyError::AlreadyApplied(Vec::new()),
        ApplyError::Unavailable("throttled".into()),
    ] {
        let (store, consumer) = consumer();
        store.fail_next_batch(refusal.clone());
        let response = consumer.handle(batch_of(&ten_events())).await;
        assert!(response.batch_item_failures.is_empty(), "{refusal:?}");
        let writes = writes(&store);
        assert_eq!(writes.len(), 11, "{refusal:?}: {writes:?}");
        assert_eq!(writes[0], StatsStoreCall::ApplyBatch { events: 10 });
        assert!(
            writes[1..]
                .iter()
                .all(|w| matches!(w, StatsStoreCall::ApplyOnce { .. }))
        );
        assert_ten_events_counted(&store).await;
    }
}

/// A batch that lost a race with another transaction (TransactionConflict) is written again
/// in-process, whole, instead of falling back or failing back to SQS.
#[tokio::test]
async fn a_conflicting_batch_is_retried_whole() {
    let (store, consumer) = consumer();
    store.fail_next_batch(ApplyError::Conflict);
    let response = consumer.handle(batch_of(&ten_events())).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        writes(&store),
        [
            StatsStoreCall::ApplyBatch { events: 10 },
            StatsStoreCall::ApplyBatch { events: 10 }
        ]
    );
    assert_ten_events_counted(&store).await;
}

#[tokio::test]
async fn events_applied_before_are_skipped_and_the_rest_applied() {
    let (store, consumer) = consumer();
    let events = ten_events();
    consumer.handle(batch_of(&events[..3])).await;
    let report = consumer.process(&raw_messages(&batch_of(&events))).await;
    assert!(report.failures.is_empty());
    assert_eq!((report.processed, report.duplicates), (7, 3));
    assert_ten_events_counted(&store).await;
}

#[tokio::test]
async fn a_transient_failure_fails_only_its_message() {
    let (store, consumer) = consumer();
    let events = ten_events();
    store.fail_next_batch(ApplyError::Unavailable("throttled".into()));
    store.fail_next_write_of(
        events[3].event_id,
        ApplyError::Unavailable("throttled".into()),
    );
    let response = consumer.handle(batch_of(&events)).await;
    assert_eq!(failed_ids(&response), ["m-3"]);
    // Event 4 (alice's) is missing until its message comes back.
    assert_eq!(stats(&store, "alice", "all").await.totals.activities, 4);
    assert_eq!(stats(&store, "bob", "all").await.totals.activities, 5);

    let retry = consumer.handle(batch_of(&events[3..4])).await;
    assert!(retry.batch_item_failures.is_empty());
    assert_ten_events_counted(&store).await;
}

#[tokio::test]
async fn when_every_message_fails_the_full_list_is_returned() {
    let (store, consumer) = consumer();
    let poison = batch_of_bodies(&["{".into(), "null".into(), String::new()]);
    let response = consumer.handle(poison).await;
    assert_eq!(failed_ids(&response), ["m-0", "m-1", "m-2"]);
    assert!(
        writes(&store).is_empty(),
        "nothing readable, nothing written"
    );

    let events = &ten_events()[..3];
    store.fail_next_batch(ApplyError::Unavailable("down".into()));
    for event in events {
        store.fail_next_write_of(event.event_id, ApplyError::Unavailable("down".into()));
    }
    let response = consumer.handle(batch_of(events)).await;
    assert_eq!(failed_ids(&response), ["m-0", "m-1", "m-2"]);
    assert!(store.snapshot().is_empty());
}

#[tokio::test]
async fn poison_and_retryable_failures_are_told_apart() {
    let (store, consumer) = consumer();
    let events = ten_events();
    store.fail_next_batch(ApplyError::Unavailable("throttled".into()));
    store.fail_next_write_of(events[0].event_id, ApplyError::Failed("denied".into()));
    let mut bodies: Vec<String> = events[..2]
        .iter()
        .map(activelog_tests::consumer::eventbridge_body)
        .collect();
    bodies.push("not an event".into());
    let report = consumer
        .process(&raw_messages(&batch_of_bodies(&bodies)))
        .await;
    let kinds: Vec<(&str, bool)> = report
        .failures
        .iter()
        .map(|f| (f.message_id.as_str(), f.failure.is_poison()))
        .collect();
    assert_eq!(kinds, [("m-2", true), ("m-0", false)]);
    assert_eq!(report.processed, 1);
}
