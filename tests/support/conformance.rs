//! The transport conformance suite: one list of behaviours every transport must show, written
//! once and run by each transport's own test file with its own constructor (the way watermill's
//! `pubsub/tests` works). A transport says what it guarantees in its [`Features`], and the suite
//! holds it to exactly that: a behaviour a transport does not declare is reported as not
//! applicable by name, never passed silently.
//!
//! Every behaviour runs the real use cases and the real consumers over in-memory stores; only
//! the transport between them changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use activelog::adapters::memory::{MemoryAchievementStore, MemoryActivityStore, MemoryStatsStore};
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementRecorder, ActivityService, EventPublisher, OutboxRecord, OutboxRelay,
    RequestContext, StatsUpdater,
};
use activelog::consumer::{AchievementsConsumer, BatchHandler, RawMessage, StatsConsumer, Verdict};
use activelog::domain::{ActivityPatch, ActivityType, CorrelationId, PeriodKey, UserId};
use async_trait::async_trait;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

use crate::activity_fixtures::draft;

/// The consumer queues of `template.yaml`, by logical id.
pub const STATS: &str = "StatsQueue";
pub const ACHIEVEMENTS: &str = "AchievementsQueue";

/// What a transport promises; the suite adapts its expectations to it.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub name: &'static str,
    /// A poison verdict dead-letters the message at once; otherwise it reaches the dead-letter
    /// queue after the delivery limit, like any message that keeps failing (SQS).
    pub poison_dead_lettered_at_once: bool,
    /// The transport has a server the suite can restart (and says how in `restart_broker`).
    pub restartable: bool,
    /// How long a held (delivered, unsettled) message takes to come back after its consumer is
    /// gone: a visibility timeout, or nothing for a broker that requeues on disconnect.
    pub redelivery_after: Duration,
    /// The broker drops a second publish of the same event (a message id = `event_id` within a
    /// de-duplication window): the consumers never see a republished event, and the suite sends
    /// the duplicates straight to the queue to prove the consumers' own guard.
    pub publisher_deduplicates: bool,
}

/// A dead letter as the transport's operator tool lists it: the id its redrive of one takes,
/// and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDeadLetter {
    pub message_id: String,
    pub body: String,
}

/// A running event source; stopping it lets a batch in progress finish.
pub struct Subscription {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Subscription {
    pub fn spawn<F>(run: impl FnOnce(watch::Receiver<bool>) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(run(stopped)),
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }

    /// Kills the event source where it stands, holding whatever it received, and waits until it
    /// is gone. The wait matters: `abort` takes effect at the task's next yield, so a task caught
    /// running (a consumer just past notifying that it holds its batch, not yet parked) could
    /// otherwise still see a release sent after this returns, settle its batch and leave
    /// nothing to redeliver.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// One transport under test: a publisher and an event source per consumer queue, plus the
/// operator's tools and the failures the suite provokes.
#[async_trait]
pub trait Transport: Send + Sync {
    fn features(&self) -> Features;
    fn publisher(&self) -> Arc<dyn EventPublisher>;
    /// Starts feeding `handler` from the consumer queue `queue` (a logical id).
    async fn subscribe(&self, queue: &str, handler: Arc<dyn BatchHandler>) -> Subscription;
    /// The dead-lettered messages of `queue`, left in place.
    async fn dead_letters(&self, queue: &str) -> Vec<ListedDeadLetter>;
    /// Moves `queue`'s dead letters back to it; returns how many.
    async fn redrive(&self, queue: &str) -> usize;
    /// Moves the one dead letter of `queue` listed with `message_id` back to it; `false` if
    /// there is none.
    async fn redrive_one(&self, queue: &str, message_id: &str) -> bool;
    /// Sends a raw body straight to `queue`.
    async fn send_raw(&self, queue: &str, body: &str);
    /// The consumer of `subscription` dies while it holds delivered, unsettled messages: its
    /// connection drops (a broker) or its process is gone (a poller). Returns the subscription
    /// that carries on (the same one when the event source reconnects by itself). By default the
    /// poller's task is killed and a new poller starts, as after a crashed process.
    async fn kill_consumer(
        &self,
        subscription: Subscription,
        queue: &str,
        handler: Arc<dyn BatchHandler>,
    ) -> Subscription {
        subscription.abort().await;
        self.subscribe(queue, handler).await
    }
    /// Stops the broker, waits `down_for`, starts it again. Only called when `restartable`, so
    /// a transport without a server to restart keeps this default.
    async fn restart_broker(&self, _down_for: Duration) {
        unreachable!("{} declares no server to restart", self.features().name)
    }
}

/// The application over in-memory stores, publishing through the transport under test.
pub struct App {
    pub activity_store: Arc<MemoryActivityStore>,
    pub stats_store: Arc<MemoryStatsStore>,
    pub activities: ActivityService,
    pub relay: OutboxRelay,
    pub stats: Arc<Recording>,
    pub achievements: Arc<Recording>,
}

impl App {
    pub fn new(publisher: Arc<dyn EventPublisher>) -> Self {
        let activity_store = Arc::new(MemoryActivityStore::new());
        let stats_store = Arc::new(MemoryStatsStore::new());
        let achievement_store = Arc::new(MemoryAchievementStore::new(activity_store.clone()));
        let activities = ActivityService::new(
            activity_store.clone(),
            activity_store.clone(),
            publisher.clone(),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        let relay = OutboxRelay::new(
            activity_store.clone(),
            publisher.clone(),
            Arc::new(SystemClock),
            time::Duration::ZERO,
        );
        let recorder = AchievementRecorder::new(
            achievement_store,
            activity_store.clone(),
            publisher,
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        Self {
            stats: Recording::new(Arc::new(StatsConsumer::new(StatsUpdater::new(
                stats_store.clone(),
            )))),
            achievements: Recording::new(Arc::new(AchievementsConsumer::new(recorder))),
            activity_store,
            stats_store,
            activities,
            relay,
        }
    }

    /// The all-time activity count the stats consumer has applied for `user`.
    pub fn counted(&self, user: &UserId) -> i64 {
        self.stats_store
            .snapshot()
            .get(&(user.clone(), PeriodKey::AllTime))
            .map_or(0, |stats| stats.totals.activities)
    }

    pub async fn create(&self, user: &UserId) -> activelog::domain::ActivityId {
        let outcome = self
            .activities
            .create(
                &ctx(user),
                draft(ActivityType::Running, yesterday(), 30),
                None,
            )
            .await
            .expect("create");
        match outcome {
            activelog::application::CreateOutcome::Created(activity)
            | activelog::application::CreateOutcome::Replayed(activity) => activity.id,
        }
    }
}

fn yesterday() -> time::Date {
    time::OffsetDateTime::now_utc().date() - time::Duration::days(1)
}

pub fn ctx(user: &UserId) -> RequestContext {
    RequestContext {
        user_id: user.clone(),
        correlation_id: CorrelationId::generate(),
        request_id: None,
        trace_header: None,
    }
}

pub fn new_user() -> UserId {
    let name = format!("u{}", ulid::Ulid::new().to_string().to_lowercase());
    UserId::parse(&name).expect("user id")
}

/// A consumer as the transport sees it, recording every delivery and verdict, and able to be
/// made to fail (every message retryable, as when its store is down) or to hold its first batch
/// (a consumer that dies after applying, before settling).
pub struct Recording {
    inner: Arc<dyn BatchHandler>,
    pub seen: std::sync::Mutex<Vec<(RawMessage, Verdict)>>,
    failing: AtomicBool,
    hold_next: AtomicBool,
    pub held: Notify,
    release: Notify,
    batches: AtomicUsize,
}

impl Recording {
    pub fn new(inner: Arc<dyn BatchHandler>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: std::sync::Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
            hold_next: AtomicBool::new(false),
            held: Notify::new(),
            release: Notify::new(),
            batches: AtomicUsize::new(0),
        })
    }

    /// While set, every message is retryable and nothing is applied.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The next batch is applied, then held until [`Recording::release`].
    pub fn hold_next_batch(&self) {
        self.hold_next.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.release.notify_one();
    }

    pub fn verdicts_for(&self, body_contains: &str) -> Vec<Verdict> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.body.as_deref().unwrap_or("").contains(body_contains))
            .map(|(_, v)| *v)
            .collect()
    }

    pub fn event_types(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(m, _)| {
                let body: serde_json::Value = serde_json::from_str(m.body.as_deref()?).ok()?;
                Some(body["detail-type"].as_str()?.to_owned())
            })
            .collect()
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, v)| *v == verdict)
            .count()
    }
}

#[async_trait]
impl BatchHandler for Recording {
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let verdicts = if self.failing.load(Ordering::SeqCst) {
            vec![Verdict::Retry; batch.len()]
        } else {
            self.inner.handle_batch(batch).await
        };
        {
            let mut seen = self.seen.lock().unwrap();
            for (message, verdict) in batch.iter().zip(&verdicts) {
                seen.push((message.clone(), *verdict));
            }
        }
        if self.hold_next.swap(false, Ordering::SeqCst) {
            self.held.notify_one();
            self.release.notified().await;
        }
        verdicts
    }
}

/// Waits until `done` holds, failing the test with `what` after `within`.
pub async fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`eventually`], for a condition that needs the transport.
pub async fn eventually_async<F, Fut>(what: &str, within: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long the suite waits for a transport to converge.
const CONVERGE: Duration = Duration::from_secs(30);

async fn subscribe_both(transport: &dyn Transport, app: &App) -> (Subscription, Subscription) {
    (
        transport.subscribe(STATS, app.stats.clone()).await,
        transport
            .subscribe(ACHIEVEMENTS, app.achievements.clone())
            .await,
    )
}

// ---------------------------------------------------------------------------------------------
// The behaviours
// ---------------------------------------------------------------------------------------------

/// An event reaches exactly the consumers its rules name: created → stats and achievements;
/// updated and deleted → stats only.
pub async fn routes_each_event_to_exactly_the_consumers_its_rules_name(transport: &dyn Transport) {
    let app = App::new(transport.publisher());
    let (stats, achievements) = subscribe_both(transport, &app).await;
    let user = new_user();
    let id = app.create(&user).await;
    let patch = ActivityPatch {
        duration: Some(activelog::domain::DurationMinutes::parse(45).unwrap()),
        ..ActivityPatch::default()
    };
    app.activities
        .update(&ctx(&user), id, &patch, None)
        .await
        .expect("update");
    app.activities
        .delete(&ctx(&user), id, None)
        .await
        .expect("delete");
    eventually("stats saw three events", CONVERGE, || {
        app.stats.event_types().len() >= 3
    })
    .await;
    eventually("achievements saw the create", CONVERGE, || {
        !app.achievements.event_types().is_empty()
    })
    .await;
    // Anything misrouted would have arrived by the time the routed ones did; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut stats_types = app.stats.event_types();
    stats_types.sort();
    assert_eq!(
        stats_types,
        ["activity.created", "activity.deleted", "activity.updated"],
        "{}: the stats consumer gets every activity event once",
        transport.features().name
    );
    assert_eq!(
        app.achievements.event_types(),
        ["activity.created"],
        "{}: the achievements consumer gets creates only",
        transport.features().name
    );
    assert_eq!(app.counted(&user), 0, "created then deleted");
    stats.stop().await;
    achievements.stop().await;
}

/// The same events published twice (a relay that publishes what the request path already
/// published, or a publisher retry) are delivered twice and applied once.
pub async fn duplicates_and_redeliveries_leave_stats_exact(transport: &dyn Transport) {
    let app = App::new(transport.publisher());
    let (stats, achievements) = subscribe_both(transport, &app).await;
    let user = new_user();
    let mut records: Vec<OutboxRecord> = Vec::new();
    for _ in 0..3 {
        app.create(&user).await;
    }
    eventually("three creates applied", CONVERGE, || {
        app.counted(&user) == 3
    })
    .await;
    // Publish the same three events again, as the relay would after a lost acknowledgement.
    for message in app.stats.seen.lock().unwrap().iter() {
        let body: serde_json::Value =
            serde_json::from_str(message.0.body.as_deref().unwrap()).unwrap();
        let event = activelog::domain::DomainEvent::from_value(body["detail"].clone()).unwrap();
        records.push(OutboxRecord::for_event(&event, None));
    }
    let report = transport
        .publisher()
        .publish(&records)
        .await
        .expect("publish again");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    if transport.features().publisher_deduplicates {
        // First deliveries only: a redelivery (an ack that came late) is no republish.
        let first_deliveries = || {
            app.stats
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(message, _)| message.delivery_count == 1)
                .count()
        };
        let delivered = first_deliveries();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            first_deliveries(),
            delivered,
            "{}: the broker drops a republished event",
            transport.features().name
        );
        let bodies: Vec<String> = app
            .stats
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(message, _)| message.body.clone())
            .collect();
        for body in bodies {
            transport.send_raw(STATS, &body).await;
        }
    }
    eventually("the duplicates were delivered", CONVERGE, || {
        app.stats.count(Verdict::Duplicate) >= 3
    })
    .await;
    assert_eq!(app.counted(&user), 3, "duplicates change nothing");
    stats.stop().await;
    achievements.stop().await;
}

/// A poison message goes to the dead-letter queue (at once, or after the delivery limit as the
/// transport declares) while the good messages of its batch are applied; the rest of the queue
/// is not held up behind it.
pub async fn poison_reaches_the_dead_letter_queue_while_the_rest_is_applied(
    transport: &dyn Transport,
) {
    let features = transport.features();
    let app = App::new(transport.publisher());
    let user = new_user();
    let marker = format!("poison-{}", ulid::Ulid::new());
    transport
        .send_raw(STATS, &format!("{{\"not an event\": \"{marker}\"}}"))
        .await;
    for _ in 0..3 {
        app.create(&user).await;
    }
    let (stats, achievements) = subscribe_both(transport, &app).await;
    eventually("the good events applied", CONVERGE, || {
        app.counted(&user) == 3
    })
    .await;
    eventually_async("the poison message is dead-lettered", CONVERGE, || async {
        transport
            .dead_letters(STATS)
            .await
            .iter()
            .any(|letter| letter.body.contains(&marker))
    })
    .await;
    let deliveries = app.stats.verdicts_for(&marker);
    assert!(deliveries.iter().all(|v| *v == Verdict::Poison));
    if features.poison_dead_lettered_at_once {
        assert_eq!(
            deliveries.len(),
            1,
            "{}: poison is dead-lettered on its first verdict",
            features.name
        );
    } else {
        assert!(
            deliveries.len() > 1,
            "{}: retried up to the limit",
            features.name
        );
    }
    assert_eq!(app.counted(&user), 3);
    stats.stop().await;
    achievements.stop().await;
}

/// A message that keeps failing (its consumer's store is down) reaches the dead-letter queue
/// after the delivery limit; once the store is back, a redrive applies it, once.
pub async fn a_message_that_keeps_failing_is_dead_lettered_and_redriven(transport: &dyn Transport) {
    let app = App::new(transport.publisher());
    let user = new_user();
    app.stats.fail(true);
    let (stats, achievements) = subscribe_both(transport, &app).await;
    app.create(&user).await;
    eventually_async(
        "the failing event is dead-lettered",
        CONVERGE * 2,
        || async { transport.dead_letters(STATS).await.len() == 1 },
    )
    .await;
    let attempts = app.stats.count(Verdict::Retry);
    assert!(
        attempts >= 2,
        "retried before dead-lettering, got {attempts}"
    );
    assert_eq!(app.counted(&user), 0);

    app.stats.fail(false);
    assert_eq!(transport.redrive(STATS).await, 1);
    eventually("the redriven event applied", CONVERGE, || {
        app.counted(&user) == 1
    })
    .await;
    eventually_async("the dead-letter queue is empty", CONVERGE, || async {
        transport.dead_letters(STATS).await.is_empty()
    })
    .await;
    stats.stop().await;
    achievements.stop().await;
}

/// Two messages that keep failing are dead-lettered; once the store is back, redriving one of
/// them by the id the listing shows applies it, once, and leaves the other dead-lettered as it
/// was. Two redrives of it at once (a double click, two operators) move it once: one answers
/// that it moved it, the other that there was no such dead letter. An id the dead letters do
/// not hold (the one just redriven, one never seen) moves nothing; a redrive of all that follows
/// moves only the other.
pub async fn one_dead_letter_is_redriven_by_its_id_and_the_other_stays(transport: &dyn Transport) {
    let app = App::new(transport.publisher());
    let (redriven, left) = (new_user(), new_user());
    app.stats.fail(true);
    let (stats, achievements) = subscribe_both(transport, &app).await;
    app.create(&redriven).await;
    app.create(&left).await;
    eventually_async(
        "both failing events are dead-lettered",
        CONVERGE * 2,
        || async { transport.dead_letters(STATS).await.len() == 2 },
    )
    .await;
    let listed = transport.dead_letters(STATS).await;
    let of = |user: &UserId| {
        listed
            .iter()
            .find(|letter| letter.body.contains(user.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("no dead letter of {user:?} in {listed:?}"))
    };
    let (named, other) = (of(&redriven), of(&left));

    app.stats.fail(false);
    let (first, second) = tokio::join!(
        transport.redrive_one(STATS, &named.message_id),
        transport.redrive_one(STATS, &named.message_id)
    );
    assert!(
        first ^ second,
        "exactly one of two redrives at once moves it: {first}, {second}"
    );
    eventually("the redriven event applied", CONVERGE, || {
        app.counted(&redriven) == 1
    })
    .await;
    assert!(
        !transport.redrive_one(STATS, &named.message_id).await,
        "redriven already"
    );
    assert!(!transport.redrive_one(STATS, "no-such-dead-letter").await);
    assert_eq!(
        transport.dead_letters(STATS).await,
        vec![other],
        "the other stays, as it was"
    );
    assert_eq!(app.counted(&left), 0);
    // Redriving all of them now moves only the other: the one redriven is not a dead letter
    // any more, even where the dead letters are a log (Kafka) rather than a queue.
    assert_eq!(transport.redrive(STATS).await, 1, "only the other is left");
    eventually("the other applied", CONVERGE, || app.counted(&left) == 1).await;
    stats.stop().await;
    achievements.stop().await;
}

/// A consumer that dies after applying a batch and before settling it (connection dropped
/// before the acks) gets those messages again, and applies them once.
pub async fn a_consumer_that_dies_mid_batch_gets_its_messages_again_and_applies_them_once(
    transport: &dyn Transport,
) {
    let app = App::new(transport.publisher());
    let user = new_user();
    for _ in 0..5 {
        app.create(&user).await;
    }
    app.stats.hold_next_batch();
    let held = app.stats.held.notified();
    let stats = transport.subscribe(STATS, app.stats.clone()).await;
    let achievements = transport
        .subscribe(ACHIEVEMENTS, app.achievements.clone())
        .await;
    tokio::time::timeout(CONVERGE, held)
        .await
        .expect("the consumer received a batch");
    let applied_before = app.counted(&user);
    assert!(applied_before > 0, "the held batch was applied");
    let stats = transport
        .kill_consumer(stats, STATS, app.stats.clone())
        .await;
    app.stats.release();
    eventually(
        "every event applied",
        CONVERGE + transport.features().redelivery_after,
        || app.counted(&user) == 5,
    )
    .await;
    eventually(
        "the held messages came back as duplicates",
        CONVERGE + transport.features().redelivery_after,
        || app.stats.count(Verdict::Duplicate) >= 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.counted(&user), 5, "nothing applied twice");
    stats.stop().await;
    achievements.stop().await;
}

/// The broker restarts in the middle of a stream of creates: what it could not confirm stays in
/// the outbox, the relay publishes it once the broker is back, the consumers reconnect, and the
/// stats end exact.
pub async fn a_broker_restart_during_a_stream_of_creates_loses_nothing(transport: &dyn Transport) {
    assert!(
        transport.features().restartable,
        "{}: a transport without a server to restart runs the suite with `without_restart:`",
        transport.features().name
    );
    let app = Arc::new(App::new(transport.publisher()));
    let (stats, achievements) = subscribe_both(transport, &app).await;
    let user = new_user();
    const CREATES: i64 = 40;
    let writer = {
        let app = app.clone();
        let user = user.clone();
        tokio::spawn(async move {
            for _ in 0..CREATES {
                app.create(&user).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let relaying = Arc::new(Mutex::new(true));
    let relayed = Arc::new(AtomicUsize::new(0));
    let relay = {
        let app = app.clone();
        let relaying = relaying.clone();
        let relayed = relayed.clone();
        tokio::spawn(async move {
            while *relaying.lock().await {
                if let Ok(report) = app.relay.relay_pending().await {
                    relayed.fetch_add(report.published, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    transport.restart_broker(Duration::from_secs(2)).await;
    writer.await.expect("writer");
    eventually(
        "every create applied after the restart",
        CONVERGE * 2,
        || app.counted(&user) == CREATES,
    )
    .await;
    eventually("the outbox drained", CONVERGE, || {
        app.activity_store.outbox_records().is_empty()
    })
    .await;
    *relaying.lock().await = false;
    let _ = relay.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.counted(&user), CREATES, "nothing lost, nothing twice");
    assert!(
        relayed.load(Ordering::SeqCst) > 0,
        "creates made while the broker was down reached it through the outbox relay"
    );
    stats.stop().await;
    achievements.stop().await;
}

/// Events published while no consumer runs are still there after the broker restarts: what the
/// broker acknowledged is on its disk, not only in its memory. (The restart test above cannot
/// tell: its consumers keep up, so little is waiting when the broker stops.) Called by the
/// transports whose test server keeps data on disk.
pub async fn a_backlog_survives_a_broker_restart(transport: &dyn Transport) {
    assert!(transport.features().restartable);
    let app = App::new(transport.publisher());
    let user = new_user();
    for _ in 0..5 {
        app.create(&user).await;
    }
    assert!(
        app.activity_store.outbox_records().is_empty(),
        "the broker acknowledged every event before the restart"
    );
    transport.restart_broker(Duration::from_millis(500)).await;
    let (stats, achievements) = subscribe_both(transport, &app).await;
    eventually("the backlog applied after the restart", CONVERGE, || {
        app.counted(&user) == 5
    })
    .await;
    stats.stop().await;
    achievements.stop().await;
}

/// One `#[tokio::test]` per behaviour, for a transport built by `$make` (an async expression
/// giving something that implements [`Transport`]).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(shared: $make, restartable: $make);
    };
    // A transport with no server the suite can restart (memory lives and dies with the process;
    // moto keeps nothing across a restart): the restart test is not generated at all, rather than
    // generated as a test that passes without checking anything.
    (without_restart: $make:expr) => {
        $crate::conformance_suite!(@behaviours $make);
    };
    // A transport whose restart test needs a server of its own (`restartable`), while the rest
    // runs on the shared one (`shared`).
    (shared: $make:expr, restartable: $restartable:expr) => {
        $crate::conformance_suite!(@tests $restartable;
            a_broker_restart_during_a_stream_of_creates_loses_nothing
        );
        $crate::conformance_suite!(@behaviours $make);
    };
    (@behaviours $make:expr) => {
        $crate::conformance_suite!(@tests $make;
            routes_each_event_to_exactly_the_consumers_its_rules_name,
            duplicates_and_redeliveries_leave_stats_exact,
            poison_reaches_the_dead_letter_queue_while_the_rest_is_applied,
            a_message_that_keeps_failing_is_dead_lettered_and_redriven,
            one_dead_letter_is_redriven_by_its_id_and_the_other_stays,
            a_consumer_that_dies_mid_batch_gets_its_messages_again_and_applies_them_once
        );
    };
    (@tests $make:expr; $($behaviour:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let transport = $make.await;
                $crate::conformance::$behaviour(&transport).await;
            }
        )+
    };
}
