//! The whole event pipeline in one process, routed by the rules of the real `template.yaml`:
//! the activity use cases write and publish, the in-memory bus delivers EventBridge events to the
//! queues the rules target (fan-out: `activity.created` reaches both consumers), and pollers drive
//! the consumers the way Lambda's SQS event source mappings do. A manual clock passes visibility
//! timeouts, so redelivery and dead-lettering happen as they would in AWS, without waiting.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use activelog::adapters::memory::{ManualClock, MemoryQueue, Poller, rules_from_template};
use activelog::application::{ApplyError, RequestContext, StatsStore};
use activelog::consumer::{AchievementsConsumer, StatsConsumer};
use activelog::domain::{
    Activity, ActivityDate, ActivityDraft, ActivityTitle, ActivityType, CorrelationId, Distance,
    DomainEvent, DurationMinutes, Milestone, PeriodKey, Tags, Totals, UserId,
};
use activelog::startup::{InMemoryStack, QueueOptions};
use time::Duration;
use time::macros::{date, datetime};

const VISIBILITY: Duration = Duration::seconds(180);
const MAX_RECEIVES: u32 = 5;

struct Pipeline {
    stack: InMemoryStack,
    clock: Arc<ManualClock>,
    stats_queue: Arc<MemoryQueue>,
    stats_poller: Poller,
    achievements_poller: Poller,
}

fn pipeline() -> Pipeline {
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
    let stack = activelog_tests::stack::in_memory_with(
        &rules,
        &QueueOptions {
            visibility_timeout: VISIBILITY,
            max_receive_count: MAX_RECEIVES,
        },
        clock.clone(),
    );
    let stats_queue = stack.queue("StatsQueue").unwrap().clone();
    let stats_poller = Poller::new(
        stats_queue.clone(),
        Arc::new(StatsConsumer::new(stack.stats_updater.clone())),
        10,
    );
    let achievements_poller = Poller::new(
        stack.queue("AchievementsQueue").unwrap().clone(),
        Arc::new(AchievementsConsumer::new(
            stack.achievement_recorder.clone(),
        )),
        10,
    );
    Pipeline {
        stack,
        clock,
        stats_queue,
        stats_poller,
        achievements_poller,
    }
}

fn ctx(request: &str) -> RequestContext {
    RequestContext {
        user_id: UserId::parse("alice").unwrap(),
        correlation_id: CorrelationId::parse(request).unwrap(),
        request_id: None,
        trace_header: None,
    }
}

async fn record(
    p: &Pipeline,
    request: &str,
    activity_type: ActivityType,
    minutes: u32,
    metres: u32,
) -> Activity {
    let draft = ActivityDraft {
        activity_type,
        title: ActivityTitle::parse("Out and about").unwrap(),
        description: None,
        notes: None,
        duration: DurationMinutes::parse(minutes).unwrap(),
        distance: Some(Distance::from_metres(metres).unwrap()),
        calories: None,
        tags: Tags::default(),
        activity_date: ActivityDate::from_date(date!(2026 - 11 - 25)),
    };
    match p
        .stack
        .activities
        .create(&ctx(request), draft, None)
        .await
        .unwrap()
    {
        activelog::application::CreateOutcome::Created(activity) => activity,
        other => panic!("unexpected {other:?}"),
    }
}

async fn all_time(p: &Pipeline) -> Totals {
    p.stack
        .stats_store
        .get(&UserId::parse("alice").unwrap(), PeriodKey::AllTime)
        .await
        .unwrap()
        .totals
}

fn totals(activities: i64, minutes: i64, distance_m: i64) -> Totals {
    Totals {
        activities,
        minutes,
        distance_m,
        calories: 0,
    }
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letter_queue_without_blocking_its_batch() {
    let p = pipeline();
    record(&p, "req-run", ActivityType::Running, 30, 5_000).await;
    let ride = record(&p, "req-ride", ActivityType::Cycling, 60, 20_000).await;
    p.stack
        .activities
        .delete(&ctx("req-delete"), ride.id, None)
        .await
        .unwrap();
    let poison = p
        .stats_queue
        .send(r#"{"version":"0","detail-type":"activity.created","detail":{"event_id":"#);
    assert_eq!(
        p.stats_queue.len(),
        4,
        "three events routed by StatsRule, one poison"
    );

    assert_eq!(p.stats_poller.poll_once().await, 4);
    assert_eq!(
        all_time(&p).await,
        totals(1, 30, 5_000),
        "the rest of the batch was applied on the first receive"
    );
    assert_eq!(
        p.stats_queue.len(),
        1,
        "only the poison message is left, in flight"
    );

    for receive in 2..=MAX_RECEIVES {
        assert_eq!(
            p.stats_poller.poll_once().await,
            0,
            "hidden until its visibility timeout"
        );
        p.clock.advance(VISIBILITY + Duration::seconds(1));
        assert_eq!(p.stats_poller.poll_once().await, 1, "receive {receive}");
    }
    p.clock.advance(VISIBILITY + Duration::seconds(1));
    assert_eq!(
        p.stats_poller.poll_once().await,
        0,
        "receives used up: dead-lettered"
    );

    let dead: Vec<String> = p
        .stats_queue
        .dead_letter_queue()
        .unwrap()
        .peek_all()
        .into_iter()
        .map(|(id, _, receives)| {
            assert_eq!(receives, MAX_RECEIVES);
            id
        })
        .collect();
    assert_eq!(dead, [poison]);
    assert!(p.stats_queue.is_empty());
    assert_eq!(
        all_time(&p).await,
        totals(1, 30, 5_000),
        "nothing applied twice"
    );
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_the_visibility_timeout() {
    let p = pipeline();
    record(&p, "req-1", ActivityType::Walking, 20, 1_000).await;
    record(&p, "req-2", ActivityType::Walking, 40, 3_000).await;
    let second: DomainEvent = p
        .stats_queue
        .peek_all()
        .iter()
        .map(|(_, body, _)| {
            let event: serde_json::Value = serde_json::from_str(body).unwrap();
            DomainEvent::from_value(event["detail"].clone()).unwrap()
        })
        .find(|e| e.correlation_id.as_str() == "req-2")
        .unwrap();
    p.stack
        .stats_store
        .fail_next_batch(ApplyError::Unavailable("throttled".into()));
    p.stack
        .stats_store
        .fail_next_write_of(second.event_id, ApplyError::Unavailable("throttled".into()));

    assert_eq!(p.stats_poller.poll_once().await, 2);
    assert_eq!(all_time(&p).await, totals(1, 20, 1_000));
    p.clock.advance(VISIBILITY + Duration::seconds(1));
    assert_eq!(
        p.stats_poller.poll_once().await,
        1,
        "only the failed message comes back"
    );
    assert_eq!(all_time(&p).await, totals(2, 60, 4_000));
    assert!(p.stats_queue.is_empty());
    assert!(p.stats_queue.dead_letter_queue().unwrap().is_empty());
}

#[tokio::test]
async fn activity_created_fans_out_to_both_consumers() {
    let p = pipeline();
    for n in 0..10 {
        record(&p, &format!("req-{n}"), ActivityType::Cycling, 60, 15_000).await;
    }
    assert_eq!(p.stats_poller.poll_once().await, 10);
    assert_eq!(p.achievements_poller.poll_once().await, 10);
    assert_eq!(all_time(&p).await, totals(10, 600, 150_000));

    let standing = p.stack.achievements.get(&ctx("req-read")).await.unwrap();
    let mut awarded: Vec<Milestone> = standing.awards.iter().map(|a| a.milestone).collect();
    awarded.sort();
    assert_eq!(
        awarded,
        [
            Milestone::FirstActivity,
            Milestone::TenActivities,
            Milestone::HundredKilometres
        ]
    );
    // The award events are on the bus; no rule routes them back into a consumer queue.
    let unlocked = p
        .stack
        .bus
        .accepted_events()
        .into_iter()
        .filter(|e| e["detail-type"] == "achievement.unlocked")
        .count();
    assert_eq!(unlocked, 3);
    assert!(p.stack.queues.values().all(|q| q.is_empty()));
    assert!(p.stack.activity_store.outbox_records().is_empty());
}
