//! The AWS adapters against moto server: every method of the DynamoDB store, the EventBridge
//! publisher and the SQS poller and dead-letter tooling, including the refusals (duplicate
//! create, stale version, duplicate stats batch, refused PutEvents entries) and what each
//! operation costs in AWS calls.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use activelog::adapters::dynamodb::{DynamoDbStore, MARKER_RETENTION};
use activelog::adapters::eventbridge::{EventBridgePublisher, RetryPolicy};
use activelog::adapters::memory::{ManualClock, MemoryActivityStore, MemoryStatsStore};
use activelog::adapters::sqs::{DeadLetterQueue, RedriveOutcome, SqsPoller};
use activelog::application::{
    ActivityStore, ApplyError, ApplyOutcome, EventOutcome, EventPublisher, IdempotencyKey,
    IdempotencyRecord, LIST_READ_BUDGET, ListQuery, Outbox, OutboxRecord, PagePosition, StatsStore,
    StatsUpdater, StoreError,
};
use activelog::consumer::{BatchHandler, RawMessage, Verdict};
use activelog::domain::{ActivityDate, ActivityType, EventId, PeriodKey, StatsDelta, Version};
use activelog_tests::activity_fixtures::{activity, created_event, created_record, user};
use activelog_tests::moto::{Clients, unique};
use activelog_tests::traces::{Collector, named};
use async_trait::async_trait;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use time::macros::date;
use time::{Duration as TimeDuration, OffsetDateTime};

async fn store(clients: &Clients) -> DynamoDbStore {
    let table = unique("activelog");
    clients.create_table(&table).await;
    DynamoDbStore::new(clients.dynamodb.clone(), table)
}

// ---------------------------------------------------------------------------------------------
// DynamoDB: activities
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_change_is_one_transaction_and_its_conditions_become_domain_errors() {
    let clients = Clients::new();
    let store = store(&clients).await;
    let alice = user("alice");
    let mut run = activity(&alice, ActivityType::Running, date!(2026 - 11 - 20), 30);
    let created = created_record(&run);

    store.create(&run, &created, None).await.unwrap();
    assert_eq!(clients.calls.calls(), ["DynamoDB.TransactWriteItems"]);
    assert_eq!(
        ActivityStore::get(&store, &alice, run.id).await.unwrap(),
        Some(run.clone())
    );
    assert_eq!(
        ActivityStore::get(&store, &user("bob"), run.id)
            .await
            .unwrap(),
        None,
        "another user's activity is not found"
    );

    // Duplicate create: refused, and its outbox record is not written either.
    let duplicate = created_record(&run);
    assert_eq!(
        store.create(&run, &duplicate, None).await,
        Err(StoreError::AlreadyExists)
    );
    let pending = store
        .pending(OffsetDateTime::now_utc() + TimeDuration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        [created.event_id]
    );

    // Update with the expected version, then a stale one.
    let mut changed = run.clone();
    changed.title = activelog::domain::ActivityTitle::parse("Evening run").unwrap();
    changed.version = run.version.next();
    clients.calls.clear();
    store
        .update(&changed, run.version, &created_record(&changed))
        .await
        .unwrap();
    assert_eq!(clients.calls.calls(), ["DynamoDB.TransactWriteItems"]);
    assert_eq!(
        ActivityStore::get(&store, &alice, run.id).await.unwrap(),
        Some(changed.clone())
    );
    let stale = store
        .update(&changed, Version::FIRST, &created_record(&changed))
        .await;
    assert_eq!(stale, Err(StoreError::VersionConflict));

    let ghost = activity(&alice, ActivityType::Yoga, date!(2026 - 11 - 20), 10);
    assert_eq!(
        store
            .update(&ghost, Version::FIRST, &created_record(&ghost))
            .await,
        Err(StoreError::NotFound)
    );

    // Delete: stale version refused, current version deletes, a second delete finds nothing.
    assert_eq!(
        store.delete(&run, &created_record(&run)).await,
        Err(StoreError::VersionConflict)
    );
    run = changed;
    store.delete(&run, &created_record(&run)).await.unwrap();
    assert_eq!(
        ActivityStore::get(&store, &alice, run.id).await.unwrap(),
        None
    );
    assert_eq!(
        store.delete(&run, &created_record(&run)).await,
        Err(StoreError::NotFound)
    );

    // Refused changes wrote no outbox record: create, update and delete left one each.
    let pending = store
        .pending(OffsetDateTime::now_utc() + TimeDuration::hours(1), 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
}

/// One yoga session under more running than one request may read: the filtered listing stops
/// at the read budget with an empty page and a cursor, and the cursor leads to the session. The
/// same on DynamoDB and in memory, so the local stack pages as AWS does.
async fn a_filtered_listing_reads_at_most_the_budget(store: &dyn ActivityStore) {
    let alice = user("alice");
    let yoga = activity(&alice, ActivityType::Yoga, date!(2025 - 12 - 01), 60);
    store
        .create(&yoga, &created_record(&yoga), None)
        .await
        .unwrap();
    for day in 0..=LIST_READ_BUDGET as i64 {
        let run = activity(
            &alice,
            ActivityType::Running,
            date!(2026 - 01 - 01) + TimeDuration::days(day),
            30,
        );
        store
            .create(&run, &created_record(&run), None)
            .await
            .unwrap();
    }
    let query = ListQuery {
        from: None,
        to: None,
        activity_type: Some(ActivityType::Yoga),
        limit: 20,
        after: None,
    };
    let first = store.list(&alice, &query).await.unwrap();
    assert!(first.items.is_empty(), "the budget ran out on running");
    let next = first.next.expect("a short page still continues");
    let second = store
        .list(
            &alice,
            &ListQuery {
                after: Some(next),
                ..query.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items, vec![Arc::new(yoga)]);
    assert_eq!(second.next, None);
    // An unfiltered page is never cut short by the budget.
    let full = store
        .list(
            &alice,
            &ListQuery {
                activity_type: None,
                limit: 100,
                ..query
            },
        )
        .await
        .unwrap();
    assert_eq!(full.items.len(), 100);
    assert!(full.next.is_some());
}

#[tokio::test]
async fn a_filtered_listing_reads_at_most_the_budget_on_dynamodb() {
    let clients = Clients::new();
    let store = store(&clients).await;
    a_filtered_listing_reads_at_most_the_budget(&store).await;
    let queries = clients.calls.count("DynamoDB.Query");
    // Budget 200 in pages of at least 50: at most 4 Query calls for the first page, 1 for the
    // rest of the partition, 1 for the unfiltered page.
    assert!(queries <= 6, "{queries} Query calls");
}

#[tokio::test]
async fn a_filtered_listing_reads_at_most_the_budget_in_memory() {
    a_filtered_listing_reads_at_most_the_budget(&MemoryActivityStore::new()).await;
}

#[tokio::test]
async fn listing_pages_newest_first_keeps_filters_full_and_refuses_foreign_positions() {
    let clients = Clients::new();
    let store = store(&clients).await;
    let alice = user("alice");
    let bob = user("bob");
    let mut all = Vec::new();
    let days = [
        date!(2026 - 11 - 01),
        date!(2026 - 11 - 05),
        date!(2026 - 11 - 05),
        date!(2026 - 11 - 10),
        date!(2026 - 11 - 12),
        date!(2026 - 11 - 15),
        date!(2026 - 11 - 20),
    ];
    for (i, day) in days.into_iter().enumerate() {
        let kind = if i % 3 == 0 {
            ActivityType::Swimming
        } else {
            ActivityType::Running
        };
        let a = activity(&alice, kind, day, 20 + i as u32);
        store.create(&a, &created_record(&a), None).await.unwrap();
        all.push(a);
    }
    for day in [date!(2026 - 11 - 29), date!(2026 - 11 - 30)] {
        let other = activity(&bob, ActivityType::Swimming, day, 60);
        store
            .create(&other, &created_record(&other), None)
            .await
            .unwrap();
    }
    let mut expected = all.clone();
    expected.sort_by_key(|a| std::cmp::Reverse((a.activity_date, a.id)));

    let query = |after: Option<PagePosition>| ListQuery {
        from: None,
        to: None,
        activity_type: None,
        limit: 3,
        after,
    };
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list(&alice, &query(after)).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|a| (**a).clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen, expected,
        "every activity once, newest first, bob's never"
    );
    assert_eq!(pages, 3, "7 items in pages of 3, and no empty last page");

    // A rare type still fills the page: the adapter reads on past filtered-out items.
    let swims = ListQuery {
        activity_type: Some(ActivityType::Swimming),
        limit: 2,
        ..query(None)
    };
    let page = store.list(&alice, &swims).await.unwrap();
    let expected_swims: Vec<_> = expected
        .iter()
        .filter(|a| a.activity_type == ActivityType::Swimming)
        .cloned()
        .map(Arc::new)
        .collect();
    assert_eq!(page.items, expected_swims[..2]);
    let rest = store
        .list(
            &alice,
            &ListQuery {
                after: page.next,
                ..swims.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items, expected_swims[2..]);
    assert_eq!(rest.next, None);

    // Date range, inclusive on both ends.
    let range = ListQuery {
        from: Some(ActivityDate::from_date(date!(2026 - 11 - 05))),
        to: Some(ActivityDate::from_date(date!(2026 - 11 - 12))),
        limit: 10,
        ..query(None)
    };
    let page = store.list(&alice, &range).await.unwrap();
    let in_range: Vec<_> = expected
        .iter()
        .filter(|a| {
            (date!(2026 - 11 - 05)..=date!(2026 - 11 - 12)).contains(&a.activity_date.date())
        })
        .cloned()
        .map(Arc::new)
        .collect();
    assert_eq!(page.items, in_range);
    assert_eq!(in_range.len(), 4);

    // Bob's position does not open alice's listing, nor does garbage.
    let bobs = store
        .list(
            &bob,
            &ListQuery {
                limit: 1,
                ..query(None)
            },
        )
        .await
        .unwrap();
    let bobs_position = bobs.next.expect("bob has two activities");
    assert_eq!(
        store.list(&alice, &query(Some(bobs_position))).await,
        Err(StoreError::InvalidPosition)
    );
    let garbage = PagePosition(serde_json::json!({"PK": "USER#alice"}));
    assert_eq!(
        store.list(&alice, &query(Some(garbage))).await,
        Err(StoreError::InvalidPosition)
    );
}

#[tokio::test]
async fn an_idempotency_key_is_taken_until_it_expires() {
    let clients = Clients::new();
    let store = store(&clients).await;
    let alice = user("alice");
    let key = IdempotencyKey::parse("key-1").unwrap();
    let first = activity(&alice, ActivityType::Walking, date!(2026 - 11 - 20), 40);
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let record = |a: &activelog::domain::Activity, created_at: OffsetDateTime| IdempotencyRecord {
        user_id: alice.clone(),
        key: key.clone(),
        request_fingerprint: "fingerprint".into(),
        activity: a.clone(),
        created_at,
        expires_at: created_at + TimeDuration::hours(24),
    };

    clients.calls.clear();
    store
        .create(&first, &created_record(&first), Some(&record(&first, now)))
        .await
        .unwrap();
    assert_eq!(
        clients.calls.calls(),
        ["DynamoDB.TransactWriteItems"],
        "activity, outbox and key in one write"
    );
    assert_eq!(
        store.find_idempotency(&alice, &key).await.unwrap(),
        Some(record(&first, now))
    );
    assert_eq!(
        store.find_idempotency(&user("bob"), &key).await.unwrap(),
        None
    );

    let second = activity(&alice, ActivityType::Walking, date!(2026 - 11 - 20), 40);
    assert_eq!(
        store
            .create(
                &second,
                &created_record(&second),
                Some(&record(&second, now))
            )
            .await,
        Err(StoreError::IdempotencyKeyTaken)
    );
    assert_eq!(
        ActivityStore::get(&store, &alice, second.id).await.unwrap(),
        None,
        "nothing of the refused create was written"
    );

    // A day and a bit later the record has expired: the key is free, whether or not TTL ran.
    let later = now + TimeDuration::hours(25);
    store
        .create(
            &second,
            &created_record(&second),
            Some(&record(&second, later)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .find_idempotency(&alice, &key)
            .await
            .unwrap()
            .unwrap()
            .activity,
        second
    );
}

#[tokio::test]
async fn the_outbox_hands_out_old_records_oldest_first_and_forgets_acknowledged_ones() {
    let clients = Clients::new();
    let store = store(&clients).await;
    let alice = user("alice");
    let base = OffsetDateTime::now_utc();
    let mut records = Vec::new();
    // Fraction digits vary (…:00Z, …:00.5Z): the index must still sort by time.
    for offset in [
        TimeDuration::seconds(-30),
        TimeDuration::milliseconds(-29_500),
        TimeDuration::seconds(-10),
        TimeDuration::seconds(5),
    ] {
        let a = activity(&alice, ActivityType::Running, date!(2026 - 11 - 20), 30);
        let mut record = created_record(&a);
        record.occurred_at = (base + offset)
            .replace_nanosecond(if offset.whole_seconds() == -30 {
                0
            } else {
                500_000_000
            })
            .unwrap();
        record.trace_header = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
        store.create(&a, &record, None).await.unwrap();
        records.push(record);
    }
    let mut expected: Vec<OutboxRecord> = records[..3].to_vec();
    expected.sort_by_key(|r| r.occurred_at);

    clients.calls.clear();
    let pending = store.pending(base, 100).await.unwrap();
    assert_eq!(
        pending, expected,
        "only records older than the cut-off, oldest first, all fields kept"
    );
    assert_eq!(
        clients.calls.calls(),
        vec!["DynamoDB.Query"; activelog::adapters::dynamodb::OUTBOX_SHARDS as usize],
        "one Query per outbox shard"
    );
    assert_eq!(store.pending(base, 2).await.unwrap(), expected[..2]);
    assert_eq!(
        store.pending_after(base, &expected[0], 100).await.unwrap(),
        expected[1..],
        "the next page starts after the record given"
    );
    assert_eq!(
        store.pending_after(base, &expected[1], 1).await.unwrap(),
        expected[2..]
    );

    clients.calls.clear();
    let unknown = EventId::from_ulid(ulid::Ulid::new());
    store
        .acknowledge(&[expected[0].event_id, unknown])
        .await
        .unwrap();
    assert_eq!(
        clients.calls.count("DynamoDB.DeleteItem"),
        2,
        "one DeleteItem per record"
    );
    assert_eq!(store.pending(base, 100).await.unwrap(), expected[1..]);
}

/// Loses the answer of the first `times` TransactWriteItems *after* moto committed them: the
/// service answers 500, as a response lost to a stalled connection or an attempt timeout looks.
#[derive(Clone, Debug)]
struct LoseCommittedAnswers {
    remaining: Arc<Mutex<usize>>,
    /// The operation of the request in flight (`x-amz-target`).
    target: Arc<Mutex<String>>,
}

impl Intercept for LoseCommittedAnswers {
    fn name(&self) -> &'static str {
        "LoseCommittedAnswers"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self.target.lock().unwrap() = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = self.target.lock().unwrap().clone();
        let mut remaining = self.remaining.lock().unwrap();
        if !target.ends_with("TransactWriteItems") || *remaining == 0 {
            return Ok(());
        }
        *remaining -= 1;
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected: the answer was lost after the commit"}"#;
        let response = context.response_mut();
        *response.status_mut() =
            aws_smithy_runtime_api::http::StatusCode::try_from(500_u16).unwrap();
        response
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}

/// A change whose transaction committed but whose answer was lost is retried by the SDK; the
/// retry then finds its own outbox record (its event id exists for this call only) and the store
/// answers the committed write — not `AlreadyExists` (a 409 for a create that worked),
/// `VersionConflict` (an update applied twice) or `NotFound` (a 404 for a delete that worked).
#[tokio::test]
async fn a_committed_change_whose_answer_was_lost_is_answered_as_done() {
    let clients = Clients::new();
    let table = unique("activelog");
    clients.create_table(&table).await;
    let lose = LoseCommittedAnswers {
        remaining: Arc::new(Mutex::new(0)),
        target: Arc::default(),
    };
    let config = clients
        .dynamodb
        .config()
        .to_builder()
        .interceptor(lose.clone())
        .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), &table);
    let alice = user("alice");
    let mut run = activity(&alice, ActivityType::Running, date!(2026 - 11 - 20), 30);

    *lose.remaining.lock().unwrap() = 1;
    clients.calls.clear();
    assert_eq!(
        store.create(&run, &created_record(&run), None).await,
        Ok(())
    );
    assert_eq!(
        clients.calls.count("DynamoDB.TransactWriteItems"),
        2,
        "committed, answer lost, retried"
    );
    assert_eq!(
        ActivityStore::get(&store, &alice, run.id).await.unwrap(),
        Some(run.clone())
    );

    let before = run.version;
    run.version = Version::new(before.get() + 1);
    run.duration = activelog::domain::DurationMinutes::parse(45).unwrap();
    *lose.remaining.lock().unwrap() = 1;
    assert_eq!(
        store.update(&run, before, &created_record(&run)).await,
        Ok(())
    );
    assert_eq!(
        ActivityStore::get(&store, &alice, run.id).await.unwrap(),
        Some(run.clone())
    );

    *lose.remaining.lock().unwrap() = 1;
    assert_eq!(store.delete(&run, &created_record(&run)).await, Ok(()));
    assert_eq!(
        ActivityStore::get(&store, &alice, run.id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .pending(OffsetDateTime::now_utc() + TimeDuration::hours(1), 10)
            .await
            .unwrap()
            .len(),
        3,
        "each change wrote its one outbox record once"
    );
}

/// A TCP endpoint that accepts connections and never answers: a stalled service.
async fn stalled_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    format!("http://{address}")
}

/// A stalled DynamoDB no longer holds a call until the Lambda timeout: each attempt times out,
/// and the whole call gives up within the operation timeout as `Unavailable` (retryable).
#[tokio::test]
async fn a_stalled_service_fails_within_the_operation_timeout() {
    use activelog::startup::aws::{OPERATION_TIMEOUT, timeout_config};
    let stalled = Clients::at(&stalled_endpoint().await);
    let config = stalled
        .dynamodb
        .config()
        .to_builder()
        .timeout_config(timeout_config())
        .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), "activelog");
    let alice = user("alice");
    let id = activity(&alice, ActivityType::Yoga, date!(2026 - 11 - 20), 5).id;
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        OPERATION_TIMEOUT + Duration::from_secs(5),
        ActivityStore::get(&store, &alice, id),
    )
    .await
    .expect("the call gave up by itself");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < OPERATION_TIMEOUT + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn store_errors_separate_retryable_from_permanent() {
    let clients = Clients::new();
    let missing = DynamoDbStore::new(clients.dynamodb.clone(), unique("no-such-table"));
    let error = ActivityStore::get(
        &missing,
        &user("alice"),
        activity(&user("alice"), ActivityType::Yoga, date!(2026 - 11 - 20), 5).id,
    )
    .await;
    assert!(
        matches!(error, Err(StoreError::Failed(ref m)) if m.contains("ResourceNotFound")),
        "{error:?}"
    );

    // Nothing listens on this port: a connection failure is worth retrying later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = Clients::at(&format!("http://127.0.0.1:{closed}"));
    let store = DynamoDbStore::new(unreachable.dynamodb.clone(), "activelog");
    let error = ActivityStore::get(
        &store,
        &user("alice"),
        activity(&user("alice"), ActivityType::Yoga, date!(2026 - 11 - 20), 5).id,
    )
    .await;
    assert!(
        matches!(error, Err(StoreError::Unavailable(_))),
        "{error:?}"
    );
    assert_eq!(
        unreachable.calls.count("DynamoDB.GetItem"),
        3,
        "the SDK retried before giving up"
    );
}

// ---------------------------------------------------------------------------------------------
// DynamoDB: statistics
// ---------------------------------------------------------------------------------------------

fn stats_events(n: usize) -> Vec<activelog::domain::DomainEvent> {
    let (alice, bob) = (user("alice"), user("bob"));
    let kinds = [
        ActivityType::Running,
        ActivityType::Cycling,
        ActivityType::Swimming,
    ];
    (0..n)
        .map(|i| {
            let owner = if i % 2 == 0 { &alice } else { &bob };
            let day = if i % 4 < 2 {
                date!(2026 - 11 - 20)
            } else {
                date!(2026 - 10 - 30)
            };
            created_event(&activity(owner, kinds[i % 3], day, 10 + i as u32))
        })
        .collect()
}

async fn assert_same_stats(
    dynamodb: &DynamoDbStore,
    memory: &MemoryStatsStore,
    events: &[activelog::domain::DomainEvent],
) {
    for event in events {
        let delta = StatsDelta::from_event(event).unwrap();
        for period in delta.periods() {
            assert_eq!(
                StatsStore::get(dynamodb, &event.user_id, period)
                    .await
                    .unwrap(),
                memory.get(&event.user_id, period).await.unwrap(),
                "{} {period}",
                event.user_id
            );
        }
    }
}

#[tokio::test]
async fn a_batch_of_ten_events_is_one_write_and_a_duplicate_batch_is_refused_whole() {
    let clients = Clients::new();
    let store = store(&clients).await;
    let memory = MemoryStatsStore::new();
    let events = stats_events(10);
    let updater = StatsUpdater::new(Arc::new(store.clone()));

    clients.calls.clear();
    let outcomes = updater.apply(&events).await;
    assert!(
        outcomes.iter().all(|o| *o == EventOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(
        clients.calls.calls(),
        ["DynamoDB.TransactWriteItems"],
        "10 events, 1 write"
    );
    for event in &events {
        memory
            .apply_once(
                "update-stats",
                event.event_id,
                &StatsDelta::from_event(event).unwrap(),
            )
            .await
            .unwrap();
    }
    assert_same_stats(&store, &memory, &events).await;
    let all = StatsStore::get(&store, &user("alice"), PeriodKey::AllTime)
        .await
        .unwrap();
    assert_eq!(all.totals.activities, 5);
    assert_eq!(all.by_type.len(), 3);

    // The same batch again: the transaction is cancelled by the markers, and the cancellation
    // says which events were applied before.
    let ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
    let deltas: Vec<StatsDelta> = events
        .iter()
        .map(|e| StatsDelta::from_event(e).unwrap())
        .collect();
    assert_eq!(
        store.apply_batch("update-stats", &ids, &deltas).await,
        Err(ApplyError::AlreadyApplied(ids.clone()))
    );
    assert_same_stats(&store, &memory, &events).await;

    // apply_once on a seen event is a duplicate and changes nothing.
    assert_eq!(
        store.apply_once("update-stats", ids[0], &deltas[0]).await,
        Ok(ApplyOutcome::Duplicate)
    );
    assert_same_stats(&store, &memory, &events).await;
    // Markers are per consumer: another consumer has not seen the event.
    assert_eq!(
        store.apply_once("other-consumer", ids[0], &deltas[0]).await,
        Ok(ApplyOutcome::Applied)
    );
}

#[tokio::test]
async fn a_batch_cancelled_by_one_seen_event_falls_back_to_one_write_per_event() {
    let clients = Clients::new();
    let store = store(&clients).await;
    let events = stats_events(4);
    let updater = StatsUpdater::new(Arc::new(store.clone()));
    assert_eq!(updater.apply(&events[..1]).await, [EventOutcome::Applied]);

    // The batch redelivers event 0 with three new ones: the batch transaction is cancelled
    // (AlreadyApplied names event 0 only), then each event is written on its own.
    let ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
    let deltas: Vec<StatsDelta> = events
        .iter()
        .map(|e| StatsDelta::from_event(e).unwrap())
        .collect();
    assert_eq!(
        store.apply_batch("update-stats", &ids, &deltas).await,
        Err(ApplyError::AlreadyApplied(vec![ids[0]]))
    );

    clients.calls.clear();
    let outcomes = updater.apply(&events).await;
    assert_eq!(
        outcomes,
        [
            EventOutcome::Duplicate,
            EventOutcome::Applied,
            EventOutcome::Applied,
            EventOutcome::Applied
        ]
    );
    assert_eq!(
        clients.calls.count("DynamoDB.TransactWriteItems"),
        1 + 4,
        "the refused batch, then one write per event"
    );

    let memory = MemoryStatsStore::new();
    for (event, delta) in events.iter().zip(&deltas) {
        memory
            .apply_once("update-stats", event.event_id, delta)
            .await
            .unwrap();
    }
    assert_same_stats(&store, &memory, &events).await;
}

#[tokio::test]
async fn markers_expire_after_the_deduplication_window() {
    let clients = Clients::new();
    let table = unique("activelog");
    clients.create_table(&table).await;
    let now = OffsetDateTime::now_utc();
    let store = DynamoDbStore::new(clients.dynamodb.clone(), &table)
        .with_clock(Arc::new(ManualClock::new(now)));
    let event = &stats_events(1)[0];
    store
        .apply_once(
            "update-stats",
            event.event_id,
            &StatsDelta::from_event(event).unwrap(),
        )
        .await
        .unwrap();
    let marker = clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "PROCESSED#update-stats#{}",
                event.event_id
            )),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("PROCESSED".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("marker written");
    let expires_at: i64 = marker["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires_at, (now + MARKER_RETENTION).unix_timestamp());
    assert_eq!(MARKER_RETENTION, TimeDuration::days(45));
}

// ---------------------------------------------------------------------------------------------
// EventBridge
// ---------------------------------------------------------------------------------------------

/// A bus whose one rule sends every activelog event to a fresh queue.
async fn bus_to_queue(clients: &Clients) -> (String, String) {
    let bus = unique("bus");
    let queue = clients.create_queue(&unique("events"), 30).await;
    let arn = clients.queue_arn(&queue).await;
    clients
        .create_bus(
            &bus,
            &[(
                unique("all"),
                serde_json::json!({"source": ["activelog.activities"]}),
                arn,
            )],
        )
        .await;
    (bus, queue)
}

async fn drain(clients: &Clients, queue: &str) -> Vec<serde_json::Value> {
    let mut bodies = Vec::new();
    loop {
        let output = clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
            clients
                .sqs
                .delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn records(n: usize) -> Vec<OutboxRecord> {
    (0..n)
        .map(|_| {
            created_record(&activity(
                &user("alice"),
                ActivityType::Running,
                date!(2026 - 11 - 20),
                30,
            ))
        })
        .collect()
}

#[tokio::test]
async fn put_events_goes_in_chunks_of_ten_with_source_detail_type_and_detail() {
    let clients = Clients::new();
    let (bus, queue) = bus_to_queue(&clients).await;
    let capture = Capture::default();
    let publisher = EventBridgePublisher::new(clients.eventbridge_with(capture.clone()), &bus);
    let mut records = records(23);
    records[0].trace_header = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());

    let report = publisher.publish(&records).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        clients.calls.count("EventBridge.PutEvents"),
        3,
        "23 entries = 10 + 10 + 3"
    );

    let requests = capture.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| r["Entries"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        [10, 10, 3]
    );
    let first = &requests[0]["Entries"][0];
    assert_eq!(first["Source"], "activelog.activities");
    assert_eq!(first["DetailType"], "activity.created");
    assert_eq!(first["Detail"], records[0].detail.as_str());
    assert_eq!(first["EventBusName"], bus.as_str());
    assert_eq!(
        first["TraceHeader"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    );
    assert!(
        first["Time"].is_number(),
        "the event's own time travels with it"
    );
    assert!(requests[0]["Entries"][1].get("TraceHeader").is_none());

    let delivered = drain(&clients, &queue).await;
    assert_eq!(delivered.len(), 23);
    let event = delivered
        .iter()
        .find(|e| e["detail"]["event_id"] == records[5].event_id.to_string())
        .unwrap();
    assert_eq!(event["detail-type"], "activity.created");
    assert_eq!(event["source"], "activelog.activities");
    assert_eq!(
        event["detail"],
        serde_json::from_str::<serde_json::Value>(&records[5].detail).unwrap()
    );
}

#[tokio::test]
async fn an_entry_the_bus_refuses_is_reported_and_the_others_are_accepted() {
    let clients = Clients::new();
    let (bus, queue) = bus_to_queue(&clients).await;
    let publisher = EventBridgePublisher::new(clients.eventbridge.clone(), &bus);
    let mut records = records(3);
    // moto, like EventBridge, refuses an entry whose Detail is not JSON (MalformedDetail).
    records[1].detail = "not json".into();

    let report = publisher.publish(&records).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].event_id, records[1].event_id);
    assert_eq!(report.failed[0].error_code, "MalformedDetail");
    assert_eq!(
        report.accepted(&records),
        [records[0].event_id, records[2].event_id]
    );
    assert_eq!(
        clients.calls.count("EventBridge.PutEvents"),
        1,
        "a malformed entry is not worth a retry"
    );
    assert_eq!(drain(&clients, &queue).await.len(), 2);
}

#[tokio::test]
async fn a_throttled_entry_is_sent_again_alone_and_reported_when_it_keeps_failing() {
    let clients = Clients::new();
    let (bus, queue) = bus_to_queue(&clients).await;
    let retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
    };
    let records = records(4);

    // Once: the first response claims entry 0 was throttled; the retry sends it alone.
    let throttle_once = ThrottleFirstEntry::times(1);
    let publisher =
        EventBridgePublisher::new(clients.eventbridge_with(throttle_once.clone()), &bus)
            .with_retry(retry);
    let report = publisher.publish(&records).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(throttle_once.entry_counts(), [4, 1]);
    // moto accepted entry 0 on the first call too (only the response was rewritten), so it
    // arrives twice: the duplicate a real partial failure can also cause, harmless downstream.
    assert_eq!(drain(&clients, &queue).await.len(), 5);

    // Always: three attempts, then reported with the bus's code.
    let throttle_always = ThrottleFirstEntry::times(usize::MAX);
    let publisher =
        EventBridgePublisher::new(clients.eventbridge_with(throttle_always.clone()), &bus)
            .with_retry(retry);
    let report = publisher.publish(&records).await.unwrap();
    assert_eq!(throttle_always.entry_counts(), [4, 1, 1]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].event_id, records[0].event_id);
    assert_eq!(report.failed[0].error_code, "ThrottlingException");
}

#[tokio::test]
async fn an_unreachable_bus_is_an_error_not_a_silent_loss() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clients = Clients::at(&format!("http://127.0.0.1:{closed}"));
    let publisher = EventBridgePublisher::new(clients.eventbridge.clone(), "bus");
    let result = publisher.publish(&records(2)).await;
    assert!(
        matches!(
            result,
            Err(activelog::application::PublishError::Unavailable(_))
        ),
        "{result:?}"
    );

    let moto = Clients::new();
    let publisher = EventBridgePublisher::new(moto.eventbridge.clone(), unique("no-such-bus"));
    let result = publisher.publish(&records(2)).await;
    assert!(
        matches!(result, Err(activelog::application::PublishError::Failed(ref m)) if m.contains("ResourceNotFound")),
        "{result:?}"
    );
}

/// Records every PutEvents request body.
#[derive(Clone, Default, Debug)]
struct Capture(Arc<Mutex<Vec<serde_json::Value>>>);

impl Capture {
    fn requests(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().clone()
    }
}

fn request_json(context: &BeforeTransmitInterceptorContextRef<'_>) -> serde_json::Value {
    let body = context.request().body().bytes().unwrap_or_default();
    serde_json::from_slice(body).unwrap_or_default()
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "Capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(request_json(context));
        Ok(())
    }
}

/// Rewrites PutEvents responses so that the first entry reads as throttled, the first `times`
/// times: the per-entry failure EventBridge reports under load, which moto never produces.
#[derive(Clone, Debug)]
struct ThrottleFirstEntry {
    remaining: Arc<Mutex<usize>>,
    /// Entries per request, in order.
    entries: Arc<Mutex<Vec<usize>>>,
}

impl ThrottleFirstEntry {
    fn times(times: usize) -> Self {
        Self {
            remaining: Arc::new(Mutex::new(times)),
            entries: Arc::default(),
        }
    }

    fn entry_counts(&self) -> Vec<usize> {
        self.entries.lock().unwrap().clone()
    }
}

impl Intercept for ThrottleFirstEntry {
    fn name(&self) -> &'static str {
        "ThrottleFirstEntry"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let entries = request_json(context)["Entries"]
            .as_array()
            .map_or(0, Vec::len);
        self.entries.lock().unwrap().push(entries);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut remaining = self.remaining.lock().unwrap();
        if *remaining == 0 {
            return Ok(());
        }
        *remaining -= 1;
        let entries = *self.entries.lock().unwrap().last().unwrap();
        let mut results = vec![
            serde_json::json!({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded (injected)"}),
        ];
        results
            .extend((1..entries).map(|i| serde_json::json!({"EventId": format!("injected-{i}")})));
        let body = serde_json::json!({"FailedEntryCount": 1, "Entries": results}).to_string();
        let response = context.response_mut();
        response
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// SQS
// ---------------------------------------------------------------------------------------------

/// Fails every message whose body is `poison`, and remembers what it saw.
#[derive(Default)]
struct PoisonAware {
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl BatchHandler for PoisonAware {
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for message in batch {
            let body = message.body.clone().unwrap_or_default();
            assert!(!message.message_id.is_empty());
            assert!(
                message.delivery_count >= 1,
                "the receive count is passed on"
            );
            verdicts.push(if body == "poison" {
                Verdict::Poison
            } else {
                Verdict::Applied
            });
            self.seen.lock().unwrap().push(body);
        }
        verdicts
    }
}

#[tokio::test]
async fn the_poller_deletes_successes_leaves_failures_and_a_poison_message_reaches_the_dlq_and_is_redriven()
 {
    let clients = Clients::new();
    let (queue, dlq) = clients.create_queue_with_dlq(&unique("stats"), 1, 2).await;
    for body in ["one", "poison", "two"] {
        clients
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let handler = Arc::new(PoisonAware::default());
    let poller = SqsPoller::connect(clients.sqs.clone(), &queue, handler.clone())
        .await
        .unwrap()
        .with_wait_time(Duration::from_secs(1));

    clients.calls.clear();
    assert_eq!(poller.poll_once().await.unwrap(), 3);
    assert_eq!(
        clients.calls.calls(),
        ["SQS.ReceiveMessage", "SQS.DeleteMessageBatch"],
        "one receive, one batch delete"
    );
    assert_eq!(
        clients.queue_depth(&queue).await,
        (0, 1),
        "only the poison message is left, invisible"
    );

    // It comes back after its visibility timeout, fails again, and after maxReceiveCount = 2
    // receives SQS moves it to the DLQ instead of delivering it a third time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(poller.poll_once().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(poller.poll_once().await.unwrap(), 0);
    assert_eq!(
        handler
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|b| *b == "poison")
            .count(),
        2
    );

    let dead_letters = DeadLetterQueue::new(clients.sqs.clone(), &dlq);
    let listed = dead_letters.peek(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].body, "poison");
    assert!(listed[0].receive_count.is_some());
    // Listing does not consume: the message is still there, visible.
    assert_eq!(dead_letters.peek(10).await.unwrap().len(), 1);
    assert_eq!(clients.queue_depth(&dlq).await, (1, 0));

    // moto has no StartMessageMoveTask: the redrive falls back to receive/send/delete.
    let outcome = dead_letters.redrive(&queue).await.unwrap();
    assert_eq!(outcome, RedriveOutcome::Moved { count: 1 });
    assert_eq!(clients.queue_depth(&dlq).await, (0, 0));
    assert_eq!(clients.queue_depth(&queue).await, (1, 0));
    let redriven = clients
        .sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(redriven[0].body(), Some("poison"));
}

#[tokio::test]
async fn the_poller_runs_until_told_to_stop() {
    let clients = Clients::new();
    let queue = clients.create_queue(&unique("run"), 30).await;
    let handler = Arc::new(PoisonAware::default());
    let poller = SqsPoller::connect(clients.sqs.clone(), &queue, handler.clone())
        .await
        .unwrap()
        .with_wait_time(Duration::from_secs(1));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(poller.run(stopped));
    clients
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body("hello")
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while handler.seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "message not handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("poller stops promptly")
        .unwrap();
    assert_eq!(
        clients.queue_depth(&queue).await,
        (0, 0),
        "the handled message was deleted"
    );
}

/// EventBridge's target dead-letter queue has no SQS source, so SQS cannot redrive it; the
/// adapter sends each event to the queue its `TARGET_ARN` names, settles undelivered relay
/// ticks, and leaves what it cannot place.
#[tokio::test]
async fn the_eventbridge_dead_letter_queue_is_redriven_to_each_events_target() {
    use activelog::adapters::sqs::{TARGET_ARN_ATTRIBUTE, TargetRedrive};
    use aws_sdk_sqs::types::MessageAttributeValue;
    let clients = Clients::new();
    let stats = clients.create_queue(&unique("stats"), 30).await;
    let achievements = clients.create_queue(&unique("achievements"), 30).await;
    let dlq = clients.create_queue(&unique("eventbridge-dlq"), 30).await;
    let relay = "arn:aws:lambda:us-east-1:123456789012:function:activelog-relay-outbox";
    let attribute = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    let stats_arn = clients.queue_arn(&stats).await;
    let achievements_arn = clients.queue_arn(&achievements).await;
    for (body, target) in [
        ("event-for-stats", Some(stats_arn.as_str())),
        ("event-for-achievements", Some(achievements_arn.as_str())),
        ("another-event-for-stats", Some(stats_arn.as_str())),
        ("relay-tick", Some(relay)),
        ("unplaceable", None),
    ] {
        let mut send = clients
            .sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(body)
            .message_attributes("ERROR_CODE", attribute("SDK_CLIENT_ERROR"));
        if let Some(target) = target {
            send = send.message_attributes(TARGET_ARN_ATTRIBUTE, attribute(target));
        }
        send.send().await.unwrap();
    }

    let outcome = DeadLetterQueue::new(clients.sqs.clone(), &dlq)
        .redrive_to_targets()
        .await
        .unwrap();

    assert_eq!(
        outcome,
        TargetRedrive {
            redriven: 3,
            settled: 1,
            left: 1
        }
    );
    let bodies = |letters: Vec<activelog::adapters::sqs::DeadLetter>| {
        let mut bodies: Vec<String> = letters.into_iter().map(|l| l.body).collect();
        bodies.sort();
        bodies
    };
    assert_eq!(
        bodies(
            DeadLetterQueue::new(clients.sqs.clone(), &stats)
                .peek(10)
                .await
                .unwrap()
        ),
        ["another-event-for-stats", "event-for-stats"]
    );
    assert_eq!(
        bodies(
            DeadLetterQueue::new(clients.sqs.clone(), &achievements)
                .peek(10)
                .await
                .unwrap()
        ),
        ["event-for-achievements"]
    );
    assert_eq!(
        clients.queue_depth(&dlq).await,
        (0, 1),
        "only the unplaceable one, hidden for a minute"
    );
}

// ---------------------------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------------------------

/// Every AWS call an adapter makes is one client span named for its service and operation, with
/// OpenTelemetry's AWS attributes: the operation, and the table, bus or queue it touched (read
/// from an in-process collector, on moto).
#[tokio::test]
async fn each_aws_call_is_a_span_naming_its_operation_and_its_table_bus_or_queue() {
    let clients = Clients::new();
    let table = unique("activelog");
    clients.create_table(&table).await;
    let store = DynamoDbStore::new(clients.dynamodb.clone(), table.clone());
    let (bus, queue) = bus_to_queue(&clients).await;
    let publisher = EventBridgePublisher::new(clients.eventbridge.clone(), &bus);
    let poller = SqsPoller::connect(
        clients.sqs.clone(),
        &queue,
        Arc::new(PoisonAware::default()),
    )
    .await
    .unwrap()
    .with_wait_time(Duration::from_secs(1));
    let alice = user("alice");
    let one_of_each = |day: time::Date| {
        let (store, publisher, poller, alice) = (&store, &publisher, &poller, &alice);
        async move {
            let run = activity(alice, ActivityType::Running, day, 30);
            let record = created_record(&run);
            store.create(&run, &record, None).await.unwrap();
            let report = publisher.publish(&[record]).await.unwrap();
            assert!(report.failed.is_empty(), "{report:?}");
            assert_eq!(poller.poll_once().await.unwrap(), 1);
        }
    };
    let collector = Collector::install();
    one_of_each(date!(2026 - 11 - 20)).await;

    let spans = collector.spans();
    // `otel.name` names the exported span for its operation; the SDK's own span of the same
    // name (its target is the SDK's) is not the adapter's.
    let call = |name: &str| {
        let ours: Vec<_> = named(&spans, name)
            .into_iter()
            .filter(|s| {
                s.attribute("target")
                    .is_some_and(|t| t.starts_with("activelog::adapters"))
            })
            .collect();
        assert_eq!(ours.len(), 1, "one adapter span {name}: {ours:#?}");
        ours[0].clone()
    };
    let write = call("DynamoDB.TransactWriteItems");
    assert_eq!(write.attribute("rpc.system"), Some("aws-api"));
    assert_eq!(write.attribute("rpc.service"), Some("DynamoDB"));
    assert_eq!(
        write.attribute("aws.dynamodb.table_names"),
        Some(table.as_str())
    );
    let put = call("EventBridge.PutEvents");
    assert_eq!(put.attribute("rpc.service"), Some("EventBridge"));
    assert_eq!(
        put.attribute("messaging.destination.name"),
        Some(bus.as_str())
    );
    let receive = call("SQS.ReceiveMessage");
    assert_eq!(receive.attribute("rpc.service"), Some("SQS"));
    assert_eq!(receive.attribute("aws.sqs.queue.url"), Some(queue.as_str()));
    assert_eq!(
        receive.attribute("messaging.system"),
        Some("aws_sqs"),
        "{receive:#?}"
    );
}

/// The operator's tools call AWS too, and an operator who traces a redrive, a rebuild or a replay
/// needs those calls in the trace as much as a request's: the dead-letter tooling (peek, redrive
/// by move task and by receive/send/delete, redrive to EventBridge targets), the poller's start-up
/// check, the rebuild's scan, reads and corrections, and the archive's replay. Every call the SDK
/// sends (the clients' call log, which sees each attempt whoever makes it) has an adapter span of
/// the same name, with the table, queue or archive it touched; a `send()` left unwrapped fails
/// this.
#[tokio::test]
async fn every_aws_call_of_the_operator_tools_is_a_span_too() {
    use activelog::adapters::eventbridge::EventBridgeArchive;
    use activelog::adapters::sqs::TARGET_ARN_ATTRIBUTE;
    use activelog::application::{
        AchievementProjectionStore, ActivitySource, EventArchive, ReplayRequest,
        StatsProjectionStore,
    };
    use activelog::domain::Progress;
    use activelog::functions::ConsumerFunction;
    use activelog_tests::moto::{ACCOUNT, REGION};
    use aws_sdk_sqs::types::MessageAttributeValue;

    let clients = Clients::new();
    let table = unique("activelog");
    clients.create_table(&table).await;
    let store = DynamoDbStore::new(clients.dynamodb.clone(), table.clone());
    let (queue, dlq) = clients.create_queue_with_dlq(&unique("stats"), 30, 1).await;
    let queue_arn = clients.queue_arn(&queue).await;
    let queue_name = queue_arn.rsplit(':').next().unwrap().to_owned();
    let targets_dlq = clients.create_queue(&unique("eventbridge-dlq"), 30).await;
    let bus = unique("bus");
    let rule = unique("stats-rule");
    clients
        .create_bus(
            &bus,
            &[(
                rule.clone(),
                serde_json::json!({"source": ["activelog.nothing"]}),
                queue_arn.clone(),
            )],
        )
        .await;
    let bus_arn = format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}");
    let archive_arn = clients
        .eventbridge
        .create_archive()
        .archive_name(unique("archive"))
        .event_source_arn(&bus_arn)
        .send()
        .await
        .unwrap()
        .archive_arn
        .unwrap();
    let archive = EventBridgeArchive::new(
        clients.eventbridge.clone(),
        &archive_arn,
        &bus_arn,
        [(
            ConsumerFunction::UpdateStats,
            format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{rule}"),
        )],
    );
    let alice = user("alice");
    let replay = ReplayRequest {
        name: format!("{rule}-1"),
        consumer: ConsumerFunction::UpdateStats,
        from: OffsetDateTime::now_utc() - TimeDuration::hours(1),
        to: OffsetDateTime::now_utc(),
    };

    let (alice, queue, dlq, targets_dlq, queue_arn) =
        (&alice, &queue, &dlq, &targets_dlq, &queue_arn);
    // What the tools will find: dead letters in each queue, an activity to rebuild from.
    for body in ["dead letter", "another dead letter"] {
        clients
            .sqs
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let target = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(queue_arn)
        .build()
        .unwrap();
    clients
        .sqs
        .send_message()
        .queue_url(targets_dlq)
        .message_body("undelivered event")
        .message_attributes(TARGET_ARN_ATTRIBUTE, target)
        .send()
        .await
        .unwrap();
    let day = date!(2026 - 11 - 20) + TimeDuration::days(1);
    let run = activity(alice, ActivityType::Running, day, 30);
    store
        .create(&run, &created_record(&run), None)
        .await
        .unwrap();
    // From here on, only the tools: every call they make, and the spans of nothing else.
    let collector = Collector::install();
    clients.calls.clear();

    SqsPoller::connect(clients.sqs.clone(), queue, Arc::new(PoisonAware::default()))
        .await
        .unwrap();
    let dead_letters = DeadLetterQueue::new(clients.sqs.clone(), dlq);
    let listed = dead_letters.peek(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        dead_letters
            .redrive_one(queue, &listed[0].message_id)
            .await
            .unwrap()
    );
    // moto has no move tasks: the StartMessageMoveTask attempt, then the fallback.
    assert_eq!(
        dead_letters.redrive(queue).await.unwrap(),
        RedriveOutcome::Moved { count: 1 }
    );
    let targets = DeadLetterQueue::new(clients.sqs.clone(), targets_dlq)
        .redrive_to_targets()
        .await
        .unwrap();
    assert_eq!(targets.redriven, 1, "{targets:?}");

    let page = store.scan_users(0, 1, None, 100).await.unwrap();
    assert!(page.users.contains(alice), "{page:?}");
    assert!(!store.user_activities(alice).await.unwrap().is_empty());
    let projection = store.projection(alice).await.unwrap();
    store
        .correct(alice, projection.revision, OffsetDateTime::now_utc(), &[])
        .await
        .unwrap();
    let progress = store.progress_projection(alice).await.unwrap();
    store
        .set_progress(alice, progress.revision, &Progress::default())
        .await
        .unwrap();

    archive.start_replay(&replay).await.unwrap();
    archive.replay_progress(&replay.name).await.unwrap();

    let spans = collector.spans();
    let ours: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.attribute("target")
                .is_some_and(|t| t.starts_with("activelog::adapters"))
                && s.attribute("rpc.system").is_some()
        })
        .collect();
    // Counted, not only named: a tool that sends an operation twice, once unwrapped (the redrive
    // of one message and the redrive to targets both send SendMessage), still fails here. moto
    // answers every call at the first attempt, so attempts and calls are the same count.
    let mut sent = clients.calls.calls();
    sent.sort();
    let mut spanned: Vec<String> = ours.iter().map(|s| s.name.clone()).collect();
    spanned.sort();
    assert_eq!(spanned, sent, "one adapter span per call sent");
    for operation in [
        "DynamoDB.Scan",
        "DynamoDB.UpdateItem",
        "SQS.StartMessageMoveTask",
        "SQS.GetQueueUrl",
        "EventBridge.StartReplay",
        "EventBridge.DescribeReplay",
    ] {
        assert!(sent.iter().any(|s| s == operation), "{operation}: {sent:?}");
    }

    for span in &ours {
        let (service, method) = span.name.split_once('.').unwrap();
        assert_eq!(span.attribute("rpc.system"), Some("aws-api"), "{span:#?}");
        assert_eq!(span.attribute("rpc.service"), Some(service), "{span:#?}");
        assert_eq!(span.attribute("rpc.method"), Some(method), "{span:#?}");
        match (service, method) {
            ("DynamoDB", _) => assert_eq!(
                span.attribute("aws.dynamodb.table_names"),
                Some(table.as_str()),
                "{span:#?}"
            ),
            ("SQS", "GetQueueUrl") => assert_eq!(
                span.attribute("messaging.destination.name"),
                Some(queue_name.as_str()),
                "{span:#?}"
            ),
            // A move task's source and the fallback's deletes are the dead-letter queue.
            (
                "SQS",
                "StartMessageMoveTask" | "DeleteMessageBatch" | "ChangeMessageVisibilityBatch",
            ) => {
                assert_eq!(
                    span.attribute("aws.sqs.queue.url"),
                    Some(dlq.as_str()),
                    "{span:#?}"
                )
            }
            ("SQS", "SendMessageBatch" | "SendMessage") => assert_eq!(
                span.attribute("aws.sqs.queue.url"),
                Some(queue.as_str()),
                "{span:#?}"
            ),
            ("SQS", _) => assert!(
                [&queue, &dlq, &targets_dlq]
                    .iter()
                    .any(|url| span.attribute("aws.sqs.queue.url") == Some(url.as_str())),
                "{span:#?}"
            ),
            ("EventBridge", _) => {
                assert_eq!(
                    span.attribute("aws.eventbridge.archive_arn"),
                    Some(archive_arn.as_str()),
                    "{span:#?}"
                );
                assert_eq!(
                    span.attribute("aws.eventbridge.replay_name"),
                    Some(replay.name.as_str()),
                    "{span:#?}"
                );
            }
            _ => panic!("an AWS call of an unexpected service: {span:#?}"),
        }
    }
}
