//! The promise that makes the consumers simple: statistics are sums of deltas, so applying every
//! event once, in any order, whatever the duplicates, gives the statistics of the final set of
//! activities. Proven here through the real path: the activity use cases write and publish, the
//! in-memory bus delivers EventBridge-shaped events, and the stats updater applies them in
//! shuffled, duplicated batches.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use activelog::adapters::memory::ManualClock;
use activelog::application::RequestContext;
use activelog::domain::{
    ActivityDate, ActivityDraft, ActivityPatch, ActivityTitle, ActivityType, Calories, Change,
    CorrelationId, Distance, DomainEvent, DurationMinutes, PeriodKey, Tags, UserId, UserStats,
};
use activelog::startup::InMemoryStack;
use proptest::prelude::*;
use time::Duration;
use time::macros::datetime;

const USERS: [&str; 3] = ["alice", "bob", "carol"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        user: usize,
        activity_type: usize,
        minutes: u32,
        metres: Option<u32>,
        calories: Option<u32>,
        days_ago: i64,
    },
    Update {
        user: usize,
        pick: usize,
        activity_type: Option<usize>,
        minutes: Option<u32>,
        clear_distance: bool,
        days_ago: Option<i64>,
    },
    Delete {
        user: usize,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS.len(), 0..8usize, 1..=1440u32, proptest::option::of(0..=1_000_000u32), proptest::option::of(0..=20_000u32), 0..70i64)
            .prop_map(|(user, activity_type, minutes, metres, calories, days_ago)| Op::Create { user, activity_type, minutes, metres, calories, days_ago }),
        2 => (0..USERS.len(), any::<usize>(), proptest::option::of(0..8usize), proptest::option::of(1..=1440u32), any::<bool>(), proptest::option::of(0..70i64))
            .prop_map(|(user, pick, activity_type, minutes, clear_distance, days_ago)| Op::Update { user, pick, activity_type, minutes, clear_distance, days_ago }),
        1 => (0..USERS.len(), any::<usize>()).prop_map(|(user, pick)| Op::Delete { user, pick }),
    ]
}

/// How the bus's events reach the consumer: an order, duplicates, and batch boundaries.
#[derive(Debug, Clone)]
struct Delivery {
    shuffle_seed: Vec<usize>,
    duplicates: Vec<usize>,
    batch_sizes: Vec<usize>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        proptest::collection::vec(any::<usize>(), 0..80),
        proptest::collection::vec(any::<usize>(), 0..20),
        proptest::collection::vec(1..=10usize, 1..20),
    )
        .prop_map(|(shuffle_seed, duplicates, batch_sizes)| Delivery {
            shuffle_seed,
            duplicates,
            batch_sizes,
        })
}

fn ctx(user: usize) -> RequestContext {
    RequestContext {
        user_id: UserId::parse(USERS[user]).unwrap(),
        correlation_id: CorrelationId::parse("prop").unwrap(),
        request_id: None,
        trace_header: None,
    }
}

async fn run(ops: Vec<Op>, delivery: Delivery) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
    let stack = activelog_tests::stack::in_memory(&[], clock.clone());
    let today = clock_today(&clock);
    let date = |days_ago: i64| ActivityDate::from_date(today - Duration::days(days_ago));

    for op in ops {
        clock.advance(Duration::seconds(1));
        match op {
            Op::Create {
                user,
                activity_type,
                minutes,
                metres,
                calories,
                days_ago,
            } => {
                let draft = ActivityDraft {
                    activity_type: ActivityType::ALL[activity_type],
                    title: ActivityTitle::parse("generated").unwrap(),
                    description: None,
                    notes: None,
                    duration: DurationMinutes::parse(minutes).unwrap(),
                    distance: metres.map(|m| Distance::from_metres(m).unwrap()),
                    calories: calories.map(|c| Calories::parse(c).unwrap()),
                    tags: Tags::default(),
                    activity_date: date(days_ago),
                };
                stack
                    .activities
                    .create(&ctx(user), draft, None)
                    .await
                    .unwrap();
            }
            Op::Update {
                user,
                pick,
                activity_type,
                minutes,
                clear_distance,
                days_ago,
            } => {
                let Some(target) = pick_activity(&stack, user, pick) else {
                    continue;
                };
                let patch = ActivityPatch {
                    activity_type: activity_type.map(|t| ActivityType::ALL[t]),
                    duration: minutes.map(|m| DurationMinutes::parse(m).unwrap()),
                    distance: if clear_distance {
                        Change::Clear
                    } else {
                        Change::Keep
                    },
                    activity_date: days_ago.map(date),
                    ..Default::default()
                };
                stack
                    .activities
                    .update(&ctx(user), target, &patch, None)
                    .await
                    .unwrap();
            }
            Op::Delete { user, pick } => {
                let Some(target) = pick_activity(&stack, user, pick) else {
                    continue;
                };
                stack
                    .activities
                    .delete(&ctx(user), target, None)
                    .await
                    .unwrap();
            }
        }
    }

    // Everything the bus accepted, decoded as a consumer would from the EventBridge `detail`.
    let published: Vec<DomainEvent> = stack
        .bus
        .accepted_events()
        .into_iter()
        .map(|e| DomainEvent::from_value(e["detail"].clone()).unwrap())
        .collect();
    let mut delivered = published.clone();
    for &d in &delivery.duplicates {
        if !published.is_empty() {
            delivered.push(published[d % published.len()].clone());
        }
    }
    // A deterministic shuffle driven by the generated seed.
    for (i, &s) in delivery.shuffle_seed.iter().enumerate() {
        if delivered.len() > 1 {
            let a = i % delivered.len();
            let b = s % delivered.len();
            delivered.swap(a, b);
        }
    }
    let mut rest = delivered.as_slice();
    let mut sizes = delivery.batch_sizes.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap()).min(rest.len());
        let (batch, tail) = rest.split_at(size);
        let outcomes = stack.stats_updater.apply(batch).await;
        prop_assert!(outcomes.iter().all(|o| !o.is_failure()), "{outcomes:?}");
        rest = tail;
    }

    // Every period any event touched, for every user, equals a recomputation from scratch.
    let final_activities = stack.activity_store.all_activities();
    let mut periods: BTreeSet<(String, PeriodKey)> = BTreeSet::new();
    for event in &published {
        if let Some(delta) = activelog::domain::StatsDelta::from_event(event) {
            for period in delta.periods() {
                periods.insert((event.user_id.to_string(), period));
            }
        }
        periods.insert((event.user_id.to_string(), PeriodKey::AllTime));
    }
    for (user, period) in periods {
        let user_id = UserId::parse(user.clone()).unwrap();
        let facts: Vec<_> = final_activities
            .iter()
            .filter(|a| a.user_id == user_id)
            .map(|a| a.facts())
            .collect();
        let expected = UserStats::recompute(period, facts.iter());
        let actual = stack
            .stats
            .get(&ctx(USERS.iter().position(|u| *u == user).unwrap()), period)
            .await
            .unwrap();
        prop_assert_eq!(actual, expected, "user {} period {}", user, period);
    }
    Ok(())
}

fn clock_today(clock: &ManualClock) -> time::Date {
    use activelog::application::Clock;
    clock.now().date()
}

fn pick_activity(
    stack: &InMemoryStack,
    user: usize,
    pick: usize,
) -> Option<activelog::domain::ActivityId> {
    let mine: Vec<_> = stack
        .activity_store
        .all_activities()
        .into_iter()
        .filter(|a| a.user_id.as_str() == USERS[user])
        .collect();
    (!mine.is_empty()).then(|| mine[pick % mine.len()].id)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn stats_equal_a_recomputation_whatever_the_order_and_duplicates(
        ops in proptest::collection::vec(op(), 1..40),
        delivery in delivery(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops, delivery))?;
    }
}
