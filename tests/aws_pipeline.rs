//! The whole AWS path against moto server: the use cases over the DynamoDB store and the
//! EventBridge publisher, the template's rules routing to SQS, a consumer polling the queue
//! into the stats store — and what each step costs in AWS calls. The fault test proves the
//! outbox: a publish that fails after the transaction loses nothing.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::dynamodb::{DynamoDbStore, OUTBOX_SHARDS};
use activelog::adapters::eventbridge::EventBridgePublisher;
use activelog::adapters::memory::{RoutingRule, rules_from_template};
use activelog::adapters::sqs::SqsPoller;
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementRecorder, AchievementStore, ActivityService, Outbox, OutboxRelay, PUBLISH_BUDGET,
    RelayReport, RequestContext, StatsStore, StatsUpdater, UseCaseError,
};
use activelog::consumer::{AchievementsConsumer, StatsConsumer};
use activelog::domain::{
    ActivityPatch, ActivityTitle, ActivityType, CorrelationId, Milestone, PeriodKey, Version,
};
use activelog_tests::activity_fixtures::{activity, created_record, draft, user};
use activelog_tests::moto::{Clients, unique};
use time::macros::date;

/// The template's routing rules: the moto bus routes exactly as the deployed one does.
fn routing_rules() -> Vec<RoutingRule> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let template = std::fs::read_to_string(&path).expect("template.yaml is readable");
    rules_from_template(&template).expect("template rules")
}

/// Table, bus, the template's rules and their queues (with DLQs), and the use cases over them.
struct Stack {
    clients: Clients,
    store: DynamoDbStore,
    bus: String,
    stats_queue: String,
    achievements_queue: String,
    service: ActivityService,
}

impl Stack {
    async fn new() -> Self {
        Self::with_publisher_clients(None).await
    }

    /// `publisher_clients`: where the HTTP path's publisher sends (a dead endpoint to make it fail).
    async fn with_publisher_clients(publisher_clients: Option<Clients>) -> Self {
        let clients = Clients::new();
        let table = unique("activelog");
        clients.create_table(&table).await;
        let bus = unique("bus");
        let mut rules = Vec::new();
        let mut stats_queue = None;
        let mut achievements_queue = None;
        for rule in routing_rules() {
            let (queue, _dlq) = clients
                .create_queue_with_dlq(&unique(&rule.target_queue), 30, 5)
                .await;
            let arn = clients.queue_arn(&queue).await;
            match rule.target_queue.as_str() {
                "StatsQueue" => stats_queue = Some(queue),
                "AchievementsQueue" => achievements_queue = Some(queue),
                _ => {}
            }
            rules.push((unique(&rule.name), rule.event_pattern, arn));
        }
        clients.create_bus(&bus, &rules).await;
        let store = DynamoDbStore::new(clients.dynamodb.clone(), &table);
        let publishing = publisher_clients.unwrap_or_else(|| clients.clone());
        let service = ActivityService::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(EventBridgePublisher::new(
                publishing.eventbridge.clone(),
                &bus,
            )),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        Self {
            clients,
            store,
            bus,
            stats_queue: stats_queue.expect("a rule targets StatsQueue"),
            achievements_queue: achievements_queue.expect("a rule targets AchievementsQueue"),
            service,
        }
    }

    fn relay(&self) -> OutboxRelay {
        OutboxRelay::new(
            Arc::new(self.store.clone()),
            Arc::new(EventBridgePublisher::new(
                self.clients.eventbridge.clone(),
                &self.bus,
            )),
            Arc::new(SystemClock),
            time::Duration::ZERO,
        )
    }

    async fn achievements_poller(&self) -> SqsPoller {
        let store = Arc::new(self.store.clone());
        let recorder = AchievementRecorder::new(
            store.clone(),
            store,
            Arc::new(EventBridgePublisher::new(
                self.clients.eventbridge.clone(),
                &self.bus,
            )),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        SqsPoller::connect(
            self.clients.sqs.clone(),
            &self.achievements_queue,
            Arc::new(AchievementsConsumer::new(recorder)),
        )
        .await
        .unwrap()
        .with_wait_time(Duration::from_secs(1))
    }

    async fn stats_poller(&self) -> SqsPoller {
        let handler = Arc::new(StatsConsumer::new(StatsUpdater::new(Arc::new(
            self.store.clone(),
        ))));
        SqsPoller::connect(self.clients.sqs.clone(), &self.stats_queue, handler)
            .await
            .unwrap()
            .with_wait_time(Duration::from_secs(1))
    }
}

fn ctx(name: &str) -> RequestContext {
    RequestContext {
        user_id: user(name),
        correlation_id: CorrelationId::generate(),
        request_id: None,
        trace_header: None,
    }
}

#[tokio::test]
async fn each_change_costs_one_transaction_one_put_events_and_one_outbox_delete() {
    let stack = Stack::new().await;
    let alice = ctx("alice");
    let calls = &stack.clients.calls;

    calls.clear();
    let created = match stack
        .service
        .create(
            &alice,
            draft(ActivityType::Running, date!(2026 - 11 - 20), 30),
            None,
        )
        .await
        .unwrap()
    {
        activelog::application::CreateOutcome::Created(activity) => activity,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        calls.calls(),
        [
            "DynamoDB.TransactWriteItems",
            "EventBridge.PutEvents",
            "DynamoDB.DeleteItem"
        ]
    );
    assert!(
        stack
            .store
            .pending(
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "published, so acknowledged"
    );

    let patch = ActivityPatch {
        title: Some(ActivityTitle::parse("Long run").unwrap()),
        ..Default::default()
    };
    calls.clear();
    let updated = stack
        .service
        .update(&alice, created.id, &patch, Some(Version::FIRST))
        .await
        .unwrap();
    assert_eq!(
        calls.calls(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.TransactWriteItems",
            "EventBridge.PutEvents",
            "DynamoDB.DeleteItem"
        ]
    );

    // A stale If-Match: 412 with the current version, nothing written.
    calls.clear();
    let stale = stack
        .service
        .update(&alice, created.id, &patch, Some(Version::FIRST))
        .await;
    assert!(
        matches!(stale, Err(UseCaseError::PreconditionFailed { current }) if current == updated.version),
        "{stale:?}"
    );
    assert!(
        !calls
            .calls()
            .iter()
            .any(|c| c == "DynamoDB.TransactWriteItems")
    );

    // Bob cannot see or delete alice's activity.
    assert!(matches!(
        stack.service.delete(&ctx("bob"), created.id, None).await,
        Err(UseCaseError::NotFound)
    ));

    calls.clear();
    stack
        .service
        .delete(&alice, created.id, Some(updated.version))
        .await
        .unwrap();
    assert_eq!(
        calls.calls(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.TransactWriteItems",
            "EventBridge.PutEvents",
            "DynamoDB.DeleteItem"
        ]
    );
    assert!(matches!(
        stack.service.get(&alice, created.id).await,
        Err(UseCaseError::NotFound)
    ));
}

#[tokio::test]
async fn events_travel_from_the_bus_through_the_rule_and_queue_into_the_stats_in_one_write_per_batch()
 {
    let stack = Stack::new().await;
    let alice = ctx("alice");
    for minutes in 1..=10 {
        stack
            .service
            .create(
                &alice,
                draft(ActivityType::Cycling, date!(2026 - 11 - 20), minutes * 10),
                None,
            )
            .await
            .unwrap();
    }
    let poller = stack.stats_poller().await;

    stack.clients.calls.clear();
    let mut received = 0;
    while received < 10 {
        let batch = poller.poll_once().await.unwrap();
        assert!(
            batch > 0,
            "the rule delivered all ten events to the stats queue"
        );
        received += batch;
    }
    let writes = stack.clients.calls.count("DynamoDB.TransactWriteItems");
    assert_eq!(received, 10);
    assert_eq!(writes, 1, "a 10-event batch is one stats write");
    assert_eq!(
        stack.clients.queue_depth(&stack.stats_queue).await,
        (0, 0),
        "all deleted"
    );

    let stats = StatsStore::get(&stack.store, &user("alice"), PeriodKey::AllTime)
        .await
        .unwrap();
    assert_eq!(stats.totals.activities, 10);
    assert_eq!(stats.totals.minutes, (1..=10).map(|m| m * 10).sum::<i64>());
    assert_eq!(stats.by_type[&ActivityType::Cycling].activities, 10);
}

#[tokio::test]
async fn fault_a_publish_that_fails_after_the_transaction_is_relayed_and_applied_once() {
    // The HTTP path's publisher talks to a closed port: PutEvents fails after the transaction.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broken = Clients::at(&format!("http://127.0.0.1:{closed}"));
    let stack = Stack::with_publisher_clients(Some(broken)).await;
    let alice = ctx("alice");

    let created = stack
        .service
        .create(
            &alice,
            draft(ActivityType::Swimming, date!(2026 - 11 - 20), 45),
            None,
        )
        .await;
    assert!(
        created.is_ok(),
        "the change is durable, so the request succeeds: {created:?}"
    );
    let pending = stack
        .store
        .pending(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "the event stayed in the outbox");
    assert_eq!(
        stack.clients.queue_depth(&stack.stats_queue).await,
        (0, 0),
        "and never reached the bus"
    );

    // The relay publishes and acknowledges it.
    let report = stack.relay().relay_pending().await.unwrap();
    assert_eq!(
        report,
        RelayReport {
            published: 1,
            failed: 0,
            stopped_early: false
        }
    );
    assert!(
        stack
            .store
            .pending(
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stack.relay().relay_pending().await.unwrap(),
        RelayReport::default(),
        "nothing left to relay"
    );

    // The consumer applies it; a redelivery of the same event changes nothing.
    let poller = stack.stats_poller().await;
    assert_eq!(poller.poll_once().await.unwrap(), 1);
    let message = serde_json::json!({
        "version": "0",
        "id": "redelivered",
        "detail-type": "activity.created",
        "source": "activelog.activities",
        "account": "123456789012",
        "time": "2026-11-20T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": serde_json::from_str::<serde_json::Value>(&pending[0].detail).unwrap(),
    });
    stack
        .clients
        .sqs
        .send_message()
        .queue_url(&stack.stats_queue)
        .message_body(message.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(poller.poll_once().await.unwrap(), 1);
    assert_eq!(
        stack.clients.queue_depth(&stack.stats_queue).await,
        (0, 0),
        "the duplicate was handled, not failed"
    );

    let stats = StatsStore::get(&stack.store, &user("alice"), PeriodKey::AllTime)
        .await
        .unwrap();
    assert_eq!(stats.totals.activities, 1, "applied exactly once");
    assert_eq!(stats.totals.minutes, 45);
}

/// An EventBridge that accepts connections and never answers holds the answer of a committed
/// create no longer than `PUBLISH_BUDGET`: the client gets its 201, the event waits in the
/// outbox, and the relay publishes it once the bus is back.
#[tokio::test]
async fn a_stalled_bus_never_holds_the_answer_of_a_committed_change() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    let stack = Stack::with_publisher_clients(Some(Clients::at(&stalled))).await;
    let started = std::time::Instant::now();
    let created = tokio::time::timeout(
        PUBLISH_BUDGET + Duration::from_secs(5),
        stack.service.create(
            &ctx("alice"),
            draft(ActivityType::Running, date!(2026 - 11 - 20), 30),
            None,
        ),
    )
    .await
    .expect("the answer did not wait for the stalled bus")
    .unwrap();
    assert!(matches!(
        created,
        activelog::application::CreateOutcome::Created(_)
    ));
    assert!(
        started.elapsed() < PUBLISH_BUDGET + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let pending = stack
        .store
        .pending(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "the event waits in the outbox");
    let report = stack.relay().relay_pending().await.unwrap();
    assert_eq!(report.published, 1, "and the relay publishes it");
}

/// The outbox index is sharded (`OUTBOX#0` … `OUTBOX#9`): records land in every shard, and the
/// relay reads every shard, in pages that merge the shards oldest first, until all is published.
#[tokio::test]
async fn the_relay_reads_every_outbox_shard() {
    let stack = Stack::new().await;
    let alice = user("alice");
    let base = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    // More than one relay page (RELAY_BATCH = 100), so paging continues across shards.
    let count = 130;
    for n in 0..count {
        let a = activity(&alice, ActivityType::Running, date!(2026 - 11 - 20), 30);
        let mut record = created_record(&a);
        record.occurred_at = base + time::Duration::milliseconds(n as i64);
        activelog::application::ActivityStore::create(&stack.store, &a, &record, None)
            .await
            .unwrap();
    }
    let scan = stack
        .clients
        .dynamodb
        .scan()
        .table_name(stack.store.table_name())
        .send()
        .await
        .unwrap();
    let partitions: std::collections::BTreeSet<String> = scan
        .items()
        .iter()
        .filter_map(|item| item.get("GSI2PK")?.as_s().ok().cloned())
        .collect();
    let expected: std::collections::BTreeSet<String> = (0..OUTBOX_SHARDS)
        .map(|shard| format!("OUTBOX#{shard}"))
        .collect();
    assert_eq!(partitions, expected, "records spread over every shard");

    let oldest_first = stack
        .store
        .pending(base + time::Duration::minutes(1), 1000)
        .await
        .unwrap();
    assert_eq!(oldest_first.len(), count);
    assert!(
        oldest_first
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at),
        "shards merge oldest first"
    );

    stack.clients.calls.clear();
    let report = stack.relay().relay_pending().await.unwrap();
    assert_eq!(report.published, count);
    assert_eq!(report.failed, 0);
    assert_eq!(
        stack.clients.calls.count("DynamoDB.Query"),
        2 * OUTBOX_SHARDS as usize,
        "each of the relay's two pages (100, then the last 30) queries every shard once"
    );
    assert!(
        stack
            .store
            .pending(time::OffsetDateTime::now_utc(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_scheduled_sample_event_runs_the_relay_as_expected() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/relay-outbox");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap())
            .unwrap();
    let stack = Stack::new().await;
    for (case, outcome) in expected.as_object().unwrap() {
        // The relay takes any JSON (its schedule's event carries nothing it needs).
        let _event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join(case)).unwrap()).unwrap();
        let report = activelog::relay::run(&stack.relay(), None).await.unwrap();
        assert_eq!(&serde_json::to_value(report).unwrap(), outcome, "{case}");
    }
}

#[tokio::test]
async fn a_first_activity_is_counted_and_awarded_once_through_the_achievements_queue() {
    let stack = Stack::new().await;
    let alice = ctx("alice");
    stack
        .service
        .create(
            &alice,
            draft(ActivityType::Running, date!(2026 - 11 - 20), 30),
            None,
        )
        .await
        .unwrap();
    let poller = stack.achievements_poller().await;
    assert_eq!(poller.poll_once().await.unwrap(), 1);
    assert_eq!(
        stack.clients.queue_depth(&stack.achievements_queue).await,
        (0, 0)
    );

    let standing = stack.store.standing(&user("alice")).await.unwrap();
    assert_eq!(
        (standing.progress.activities, standing.progress.minutes),
        (1, 30)
    );
    assert_eq!(
        standing
            .awards
            .iter()
            .map(|a| a.milestone)
            .collect::<Vec<_>>(),
        [Milestone::FirstActivity]
    );
    assert!(
        stack
            .store
            .pending(
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "the award's event was published and its outbox record removed"
    );

    // The same award again is refused by its condition; nothing changes.
    let award = standing.awards[0].clone();
    let record = created_record(&activity(
        &user("alice"),
        ActivityType::Running,
        date!(2026 - 11 - 20),
        30,
    ));
    assert_eq!(
        stack.store.award(&award, &record).await.unwrap(),
        activelog::application::AwardOutcome::AlreadyAwarded
    );
    assert_eq!(
        stack.store.standing(&user("alice")).await.unwrap(),
        standing
    );
    assert!(
        stack
            .store
            .pending(
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "no outbox record for a refused award"
    );

    // Progress counts an event once.
    let event = activelog::domain::EventId::from_ulid(ulid::Ulid::new());
    let added = activelog::domain::Progress {
        activities: 1,
        minutes: 10,
        distance_m: 0,
    };
    use activelog::application::ApplyOutcome;
    assert_eq!(
        stack
            .store
            .record_progress("record-achievements", event, &user("alice"), &added)
            .await
            .unwrap(),
        ApplyOutcome::Applied
    );
    assert_eq!(
        stack
            .store
            .record_progress("record-achievements", event, &user("alice"), &added)
            .await
            .unwrap(),
        ApplyOutcome::Duplicate
    );
    assert_eq!(
        stack
            .store
            .standing(&user("alice"))
            .await
            .unwrap()
            .progress
            .minutes,
        40
    );
}
