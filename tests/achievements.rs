//! The achievements consumer over the in-memory stack: samples, redelivery, awards made once and
//! published with the correlation id of the request that recorded the activity, and recovery from
//! a crash or a failed publish.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::consumer::sqs::raw_messages;
use std::sync::Arc;

use activelog::adapters::memory::{AchievementStoreCall, ManualClock};
use activelog::application::{PublishError, RequestContext, StoreError};
use activelog::consumer::AchievementsConsumer;
use activelog::domain::{ActivityType, CorrelationId, Milestone, Progress, UserId};
use activelog::startup::InMemoryStack;
use activelog_tests::consumer::{
    assert_answers_as_expected, batch_of, created, facts, failed_ids, sample, sqs_samples,
};
use time::macros::datetime;

fn stack() -> (InMemoryStack, AchievementsConsumer) {
    let (stack, consumer, _) = stack_with_clock();
    (stack, consumer)
}

fn stack_with_clock() -> (InMemoryStack, AchievementsConsumer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
    let stack = activelog_tests::stack::in_memory(&[], clock.clone());
    let consumer = AchievementsConsumer::new(stack.achievement_recorder.clone());
    (stack, consumer, clock)
}

async fn standing(stack: &InMemoryStack, user: &str) -> (Progress, Vec<Milestone>) {
    let ctx = RequestContext {
        user_id: UserId::parse(user).unwrap(),
        correlation_id: CorrelationId::parse("test").unwrap(),
        request_id: None,
        trace_header: None,
    };
    let standing = stack.achievements.get(&ctx).await.unwrap();
    let mut awarded: Vec<Milestone> = standing.awards.iter().map(|a| a.milestone).collect();
    awarded.sort();
    (standing.progress, awarded)
}

/// The `achievement.unlocked` events the bus accepted, as (user, achievement, correlation id).
fn unlocked_events(stack: &InMemoryStack) -> Vec<(String, String, String)> {
    stack
        .bus
        .accepted_events()
        .iter()
        .filter(|e| e["detail-type"] == "achievement.unlocked")
        .map(|e| {
            assert_eq!(e["source"], "activelog.achievements");
            let detail = &e["detail"];
            (
                detail["user_id"].as_str().unwrap().to_owned(),
                detail["data"]["achievement"].as_str().unwrap().to_owned(),
                detail["correlation_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn progress(activities: u64, minutes: u64, distance_m: u64) -> Progress {
    Progress {
        activities,
        minutes,
        distance_m,
    }
}

/// What each sample leaves behind per user, worked out by hand from the sample files.
fn expected_standing(case: &str) -> Vec<(&'static str, Progress, Vec<Milestone>)> {
    use Milestone::*;
    match case {
        // alice: the 120 km ride (v1) and the run (v2) count; the update and delete do not.
        "batch.json" => vec![
            (
                "alice",
                progress(2, 330, 125_000),
                vec![FirstActivity, HundredKilometres],
            ),
            ("bob", progress(1, 40, 1_500), vec![FirstActivity]),
        ],
        "duplicate.json" => vec![("carol", progress(2, 205, 14_100), vec![FirstActivity])],
        "poison.json" => vec![("dave", progress(1, 50, 0), vec![FirstActivity])],
        "unsupported-version.json" => vec![("erin", progress(1, 25, 2_100), vec![FirstActivity])],
        // Records no producer of ours could send: each is poison, nothing is awarded, no panic.
        "hostile-records.json" => vec![],
        other => panic!("no expected achievements for sample {other}: add them here"),
    }
}

#[tokio::test]
async fn every_sample_gets_its_expected_failures_and_awards() {
    let samples = sqs_samples("record-achievements");
    assert!(samples.len() >= 4, "samples: {samples:?}");
    for sample in samples {
        let case = &sample.name;
        let (stack, consumer) = stack();
        assert_answers_as_expected(&consumer, &sample).await;
        let mut announced = 0;
        for (user, expected_progress, expected_awards) in expected_standing(case) {
            let (progress, awards) = standing(&stack, user).await;
            assert_eq!(progress, expected_progress, "{case}: {user}");
            assert_eq!(awards, expected_awards, "{case}: {user}");
            announced += expected_awards.len();
        }
        assert_eq!(unlocked_events(&stack).len(), announced, "{case}");
        assert!(stack.activity_store.outbox_records().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn awards_carry_the_correlation_id_of_the_activity_that_earned_them() {
    let (stack, consumer) = stack();
    consumer
        .handle(sample("record-achievements", "batch.json"))
        .await;
    let events = unlocked_events(&stack);
    assert!(events.contains(&(
        "alice".into(),
        "hundred_kilometres".into(),
        "req-a1b2c3".into()
    )));
    assert!(events.contains(&("bob".into(), "first_activity".into(), "req-1a4f6a".into())));
}

#[tokio::test]
async fn the_same_batch_twice_awards_nothing_more() {
    let (stack, consumer) = stack();
    consumer
        .handle(sample("record-achievements", "batch.json"))
        .await;
    let before = (standing(&stack, "alice").await, unlocked_events(&stack));
    let report = consumer
        .process(&raw_messages(&sample("record-achievements", "batch.json")))
        .await;
    assert!(report.failures.is_empty());
    assert_eq!(report.duplicates, 3, "the three created events");
    assert_eq!(
        (standing(&stack, "alice").await, unlocked_events(&stack)),
        before
    );
}

#[tokio::test]
async fn milestones_are_awarded_once_as_progress_crosses_them() {
    let (stack, consumer) = stack();
    let events: Vec<_> = (1..=12)
        .map(|n| created(n, "alice", facts(ActivityType::Walking, 30, None)))
        .collect();
    for chunk in events.chunks(5) {
        let response = consumer.handle(batch_of(chunk)).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let (progress, awards) = standing(&stack, "alice").await;
    assert_eq!(progress, self::progress(12, 360, 0));
    assert_eq!(awards, [Milestone::FirstActivity, Milestone::TenActivities]);
    assert_eq!(unlocked_events(&stack).len(), 2);
}

#[tokio::test]
async fn a_crash_between_counting_and_awarding_is_repaired_by_the_redelivery() {
    let (stack, consumer) = stack();
    let event = created(1, "alice", facts(ActivityType::Running, 30, Some(5_000)));
    stack
        .achievement_store
        .fail_next_award(StoreError::Unavailable("throttled".into()));
    let first = consumer
        .handle(batch_of(std::slice::from_ref(&event)))
        .await;
    assert_eq!(
        failed_ids(&first),
        ["m-0"],
        "the award failed, so the message is retried"
    );
    let (progress, awards) = standing(&stack, "alice").await;
    assert_eq!(progress.activities, 1, "counted once already");
    assert!(awards.is_empty());

    let retry = consumer.process(&raw_messages(&batch_of(&[event]))).await;
    assert!(retry.failures.is_empty());
    assert_eq!(retry.duplicates, 1);
    let (progress, awards) = standing(&stack, "alice").await;
    assert_eq!(progress.activities, 1, "not counted twice");
    assert_eq!(awards, [Milestone::FirstActivity]);
    assert_eq!(unlocked_events(&stack).len(), 1);
}

#[tokio::test]
async fn a_failed_publish_leaves_the_award_event_to_the_outbox_relay() {
    let (stack, consumer, clock) = stack_with_clock();
    stack
        .bus
        .fail_calls_with(Some(PublishError::Unavailable("down".into())));
    let response = consumer
        .handle(batch_of(&[created(
            1,
            "alice",
            facts(ActivityType::Yoga, 60, None),
        )]))
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "the award is durable; publishing is the relay's job now"
    );
    assert_eq!(stack.activity_store.outbox_records().len(), 1);
    assert!(unlocked_events(&stack).is_empty());

    stack.bus.fail_calls_with(None);
    clock.advance(time::Duration::minutes(1));
    let relayed = stack.relay.relay_pending().await.unwrap();
    assert_eq!(relayed.published, 1);
    assert_eq!(
        unlocked_events(&stack),
        [("alice".into(), "first_activity".into(), "req-1".into())]
    );
    assert!(stack.activity_store.outbox_records().is_empty());
}

#[tokio::test]
async fn a_store_failure_while_counting_fails_only_that_message() {
    let (stack, consumer) = stack();
    let events: Vec<_> = (1..=3)
        .map(|n| created(n, "alice", facts(ActivityType::Running, 30, None)))
        .collect();
    stack.achievement_store.fail_next_progress_of(
        events[1].event_id,
        StoreError::Unavailable("throttled".into()),
    );
    let response = consumer.handle(batch_of(&events)).await;
    assert_eq!(failed_ids(&response), ["m-1"]);
    assert_eq!(standing(&stack, "alice").await.0.activities, 2);
    let counted = stack
        .achievement_store
        .calls()
        .into_iter()
        .filter(|c| matches!(c, AchievementStoreCall::RecordProgress { .. }))
        .count();
    assert_eq!(counted, 3);
}

/// A lost race on the user's progress item (DynamoDB's `TransactionConflict`) is retried in the
/// consumer, as the stats are: the message succeeds, counted once, instead of waiting out a
/// visibility timeout — and, after `maxReceiveCount` such races, sitting in the dead-letter queue.
#[tokio::test]
async fn a_conflict_while_counting_is_retried_in_process() {
    let (stack, consumer) = stack();
    let event = created(1, "alice", facts(ActivityType::Running, 30, None));
    stack
        .achievement_store
        .fail_next_progress_of(event.event_id, StoreError::TransactionConflict);
    let response = consumer.handle(batch_of(&[event])).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let (progress, awards) = standing(&stack, "alice").await;
    assert_eq!(progress.activities, 1, "counted once");
    assert_eq!(awards, [Milestone::FirstActivity]);
    let attempts = stack
        .achievement_store
        .calls()
        .into_iter()
        .filter(|c| matches!(c, AchievementStoreCall::RecordProgress { .. }))
        .count();
    assert_eq!(attempts, 2, "the conflicted write and its retry");
}

/// The award is retried the same way.
#[tokio::test]
async fn a_conflicting_award_is_retried_in_process() {
    let (stack, consumer) = stack();
    let event = created(1, "alice", facts(ActivityType::Running, 30, None));
    stack
        .achievement_store
        .fail_next_award(StoreError::TransactionConflict);
    let response = consumer.handle(batch_of(&[event])).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        standing(&stack, "alice").await.1,
        [Milestone::FirstActivity]
    );
    assert_eq!(unlocked_events(&stack).len(), 1, "awarded once");
}

/// A race that persists past the in-process retries fails only its message, which SQS brings
/// back; the redelivery awards it once.
#[tokio::test]
async fn a_conflict_that_persists_is_left_to_the_redelivery() {
    let (stack, consumer) = stack();
    let event = created(1, "alice", facts(ActivityType::Running, 30, None));
    for _ in 0..=activelog::application::CONFLICT_RETRIES {
        stack
            .achievement_store
            .fail_next_award(StoreError::TransactionConflict);
    }
    let first = consumer
        .handle(batch_of(std::slice::from_ref(&event)))
        .await;
    assert_eq!(failed_ids(&first), ["m-0"], "retries ran out: back to SQS");
    assert!(standing(&stack, "alice").await.1.is_empty());
    let retry = consumer.process(&raw_messages(&batch_of(&[event]))).await;
    assert!(retry.failures.is_empty());
    assert_eq!(
        standing(&stack, "alice").await.1,
        [Milestone::FirstActivity]
    );
    assert_eq!(unlocked_events(&stack).len(), 1, "awarded once");
}
