//! Rebuild and replay (issue 17), on memory and on moto: statistics corrupted and then rebuilt
//! to exactly the values recomputed from the activities; a rebuild while events keep arriving
//! that ends exact (and the in-flight event the cut-over exists for, counted once); an
//! interrupted rebuild resumed from its checkpoint; statistics deleted and restored by a replay
//! of the archive; a replay of events already applied that changes nothing; achievements
//! rebuilt without awarding anything twice. The same use cases run on both: only the adapters
//! differ.
//!
//! moto implements `CreateArchive` and `StartReplay`, but its replay is synchronous and sends
//! the whole archive — it ignores the time window and `Destination.FilterArns` — to every rule
//! of the bus whose pattern matches. The moto replay tests therefore check what moto can show
//! (the request EventBridge would take, the replayed events' `replay-name`, idempotent
//! consumers), and `moto_replay_ignores_the_window_and_the_rule_filter` pins that limit, so the
//! day moto implements them the test says so.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use activelog::adapters::dynamodb::DynamoDbStore;
use activelog::adapters::eventbridge::{EventBridgeArchive, EventBridgePublisher};
use activelog::adapters::memory::{MemoryQueue, Poller, RoutingRule, rules_from_template};
use activelog::adapters::sqs::SqsPoller;
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementProjectionStore, AchievementStore, AchievementsRebuild, ActivityService,
    ActivitySource, ArchiveReplay, Checkpoint, CorrectionOutcome, EventArchive, EventPublisher,
    PageReport, ProjectionRebuild, RebuildRunner, RebuildSettings, ReplayRequest, ReplayState,
    RequestContext, RunError, RunObserver, RunSettings, StatsProjectionStore, StatsQueries,
    StatsRebuild, StatsUpdater, UserRebuild,
};
use activelog::configuration::{STATS_PROJECTION_VERSION, Settings};
use activelog::consumer::{AchievementsConsumer, StatsConsumer};
use activelog::domain::{
    Activity, ActivityDate, ActivityPatch, ActivityType, CorrelationId, DurationMinutes, Milestone,
    PeriodKey, Progress, ProjectionVersion, StatsCorrection, Totals, UserId, UserStats,
    recompute_all,
};
use activelog::functions::ConsumerFunction;
use activelog::startup::{InMemoryStack, QueueOptions};
use activelog_tests::activity_fixtures::{draft, user};
use activelog_tests::moto::{ACCOUNT, Clients, MotoServer, REGION, unique};
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::macros::date;

// ---------------------------------------------------------------------------------------------
// Shared: a workload, the exactness check, and a rebuild's settings
// ---------------------------------------------------------------------------------------------

fn ctx(user: &UserId) -> RequestContext {
    RequestContext {
        user_id: user.clone(),
        correlation_id: CorrelationId::generate(),
        request_id: None,
        trace_header: None,
    }
}

const TYPES: [ActivityType; 3] = [
    ActivityType::Running,
    ActivityType::Cycling,
    ActivityType::Yoga,
];

async fn create(service: &ActivityService, owner: &UserId, n: u32) -> Activity {
    let day = date!(2026 - 09 - 01) + time::Duration::days(i64::from(n * 7 % 90));
    match service
        .create(
            &ctx(owner),
            draft(TYPES[n as usize % TYPES.len()], day, 10 + n % 50),
            None,
        )
        .await
        .unwrap()
    {
        activelog::application::CreateOutcome::Created(activity) => activity,
        other => panic!("{other:?}"),
    }
}

/// Three activities each, one of them updated (new date and duration) and one deleted, so every
/// event type is in the history.
async fn history(service: &ActivityService, users: &[UserId]) {
    for (index, owner) in users.iter().enumerate() {
        let base = u32::try_from(index).unwrap() * 3;
        let first = create(service, owner, base).await;
        let second = create(service, owner, base + 1).await;
        create(service, owner, base + 2).await;
        let patch = ActivityPatch {
            duration: Some(DurationMinutes::parse(77).unwrap()),
            activity_date: Some(ActivityDate::from_date(date!(2026 - 12 - 01))),
            ..Default::default()
        };
        service
            .update(&ctx(owner), first.id, &patch, None)
            .await
            .unwrap();
        service.delete(&ctx(owner), second.id, None).await.unwrap();
    }
}

fn without_empty(periods: BTreeMap<PeriodKey, UserStats>) -> BTreeMap<PeriodKey, UserStats> {
    periods
        .into_iter()
        .filter(|(period, stats)| *stats != UserStats::empty(*period))
        .collect()
}

/// Every user's stored statistics equal those recomputed from their stored activities.
async fn assert_exact(
    source: &dyn ActivitySource,
    store: &dyn StatsProjectionStore,
    users: &[UserId],
) {
    assert_exact_noting(source, store, users, "").await;
}

/// [`assert_exact`], with what the test knows about the run in the failure message.
async fn assert_exact_noting(
    source: &dyn ActivitySource,
    store: &dyn StatsProjectionStore,
    users: &[UserId],
    note: &str,
) {
    for owner in users {
        let facts: Vec<_> = source
            .user_activities(owner)
            .await
            .unwrap()
            .iter()
            .map(Activity::facts)
            .collect();
        let recomputed = recompute_all(&facts);
        let stored = without_empty(store.projection(owner).await.unwrap().periods);
        assert_eq!(stored, recomputed, "statistics of {owner}. {note}");
    }
}

fn settings(settle_ms: u64, attempts: u32) -> RunSettings {
    RunSettings {
        segments: 3,
        page_items: 4,
        rate: None,
        rebuild: RebuildSettings {
            settle: Duration::from_millis(settle_ms),
            attempts,
            dry_run: false,
            max_clock_skew: Duration::ZERO,
        },
    }
}

/// Keeps the checkpoints and the pages; refuses to keep a checkpoint after `fail_after` pages
/// (an interruption).
#[derive(Default)]
struct Recorder {
    checkpoints: Mutex<Vec<Checkpoint>>,
    pages: Mutex<Vec<PageReport>>,
    fail_after: Option<usize>,
}

impl RunObserver for Recorder {
    fn page_done(&self, _segment: u32, _scanned: usize, report: &PageReport) {
        self.pages.lock().unwrap().push(report.clone());
    }

    fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), String> {
        let mut kept = self.checkpoints.lock().unwrap();
        if self.fail_after.is_some_and(|n| kept.len() >= n) {
            return Err("interrupted".into());
        }
        kept.push(checkpoint.clone());
        Ok(())
    }
}

impl Recorder {
    /// The users some page corrected (a user whose activities span two scan pages is met twice).
    fn corrected(&self) -> std::collections::BTreeSet<UserId> {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .flat_map(|page| page.users.iter())
            .filter(|(_, outcome)| matches!(outcome, UserRebuild::Corrected(_)))
            .map(|(owner, _)| owner.clone())
            .collect()
    }
}

fn users(prefix: &str, n: usize) -> Vec<UserId> {
    (0..n).map(|i| user(&format!("{prefix}-{i}"))).collect()
}

fn corrupted(period: PeriodKey) -> UserStats {
    let mut stats = UserStats::empty(period);
    stats.apply(
        ActivityType::Swimming,
        &Totals {
            activities: 5,
            minutes: 500,
            distance_m: 5,
            calories: 5,
        },
    );
    stats
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

struct Memory {
    stack: Arc<InMemoryStack>,
}

impl Memory {
    fn new() -> Self {
        Self::with_rules(&rules_from_template(include_str!("../template.yaml")).unwrap())
    }

    fn with_rules(rules: &[RoutingRule]) -> Self {
        Self {
            stack: Arc::new(
                InMemoryStack::with_system_clock(rules, &QueueOptions::default()).unwrap(),
            ),
        }
    }

    fn stats_poller(&self) -> Poller {
        Poller::new(
            self.stack.queue("StatsQueue").unwrap().clone(),
            Arc::new(StatsConsumer::new(self.stack.stats_updater.clone())),
            10,
        )
    }

    fn achievements_poller(&self) -> Poller {
        Poller::new(
            self.stack.queue("AchievementsQueue").unwrap().clone(),
            Arc::new(AchievementsConsumer::new(
                self.stack.achievement_recorder.clone(),
            )),
            10,
        )
    }

    async fn drain_stats(&self) -> usize {
        let poller = self.stats_poller();
        let mut handled = 0;
        loop {
            let n = poller.poll_once().await;
            if n == 0 {
                return handled;
            }
            handled += n;
        }
    }

    fn stats_rebuild(&self) -> StatsRebuild {
        StatsRebuild::new(
            self.stack.activity_store.clone(),
            self.stack.stats_store.clone(),
            self.stack.clock.clone(),
        )
    }

    fn runner(&self) -> RebuildRunner {
        RebuildRunner::new(
            self.stack.activity_store.clone(),
            Arc::new(self.stats_rebuild()),
        )
    }

    async fn assert_exact(&self, users: &[UserId]) {
        assert_exact(
            self.stack.activity_store.as_ref(),
            self.stack.stats_store.as_ref(),
            users,
        )
        .await;
    }
}

#[tokio::test]
async fn memory_stats_corrupted_then_rebuilt_are_exactly_the_recomputed_values() {
    let m = Memory::new();
    let users = users("corrupt", 7);
    history(&m.stack.activities, &users).await;
    m.drain_stats().await;
    m.assert_exact(&users).await;

    // Corrupted three ways: a wrong all-time item, a wrong week, a period that should not exist.
    let store = &m.stack.stats_store;
    store.overwrite(&users[0], corrupted(PeriodKey::AllTime));
    let week = PeriodKey::week_of(date!(2026 - 09 - 01));
    store.overwrite(&users[1], corrupted(week));
    store.overwrite(
        &users[2],
        corrupted(PeriodKey::Month {
            year: 2020,
            month: 1,
        }),
    );
    let before = store.snapshot();

    let mut dry = settings(0, 1);
    dry.rebuild.dry_run = true;
    let dry_run = Arc::new(Recorder::default());
    m.runner()
        .run_all(&dry, Checkpoint::new("stats", 3), dry_run.clone())
        .await
        .unwrap();
    assert_eq!(dry_run.corrected().len(), 3);
    assert_eq!(store.snapshot(), before, "a dry run writes nothing");

    let recorder = Arc::new(Recorder::default());
    let summary = m
        .runner()
        .run_all(
            &settings(0, 1),
            Checkpoint::new("stats", 3),
            recorder.clone(),
        )
        .await
        .unwrap();
    assert_eq!(recorder.corrected().len(), 3, "{summary:?}");
    assert!(summary.busy.is_empty());
    assert!(
        recorder
            .checkpoints
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .is_done()
    );
    m.assert_exact(&users).await;

    let again = m
        .runner()
        .run_all(
            &settings(0, 1),
            Checkpoint::new("stats", 3),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    assert_eq!(again.corrected, 0, "{again:?}");
}

/// The case the cut-over exists for: an event committed before the rebuild's snapshot but
/// applied after its correction. Without the fence it is counted twice.
#[tokio::test]
async fn memory_an_event_in_flight_during_a_rebuild_is_counted_once() {
    let m = Memory::new();
    let alice = user("in-flight");
    create(&m.stack.activities, &alice, 1).await;
    m.drain_stats().await;
    m.stack
        .stats_store
        .overwrite(&alice, corrupted(PeriodKey::AllTime));
    // Committed and published, still in the queue: in flight.
    create(&m.stack.activities, &alice, 2).await;

    let (report, _) = m
        .runner()
        .run_users(std::slice::from_ref(&alice), &settings(0, 1))
        .await
        .unwrap();
    assert!(matches!(report.users[0].1, UserRebuild::Corrected(_)));
    m.assert_exact(std::slice::from_ref(&alice)).await;

    assert_eq!(m.drain_stats().await, 1, "the in-flight event is delivered");
    m.assert_exact(std::slice::from_ref(&alice)).await;
    // An event after the rebuild is counted as usual.
    create(&m.stack.activities, &alice, 3).await;
    m.drain_stats().await;
    m.assert_exact(std::slice::from_ref(&alice)).await;
}

/// The rebuild's clock, behind the writers' by a fixed amount (the operator's laptop).
struct Behind(Duration);

impl activelog::application::Clock for Behind {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() - self.0
    }
}

/// The rebuild runs on a clock 5 s behind the API's: an event committed before the snapshot
/// carries an `occurred_at` after the rebuild's "now". The fence, set `max_clock_skew` ahead,
/// still covers it: counted once (with the fence at the rebuild's "now" it was counted twice).
#[tokio::test]
async fn memory_an_event_in_flight_is_counted_once_when_the_rebuild_clock_is_behind() {
    let m = Memory::new();
    let alice = user("skewed");
    create(&m.stack.activities, &alice, 1).await;
    m.drain_stats().await;
    m.stack
        .stats_store
        .overwrite(&alice, corrupted(PeriodKey::AllTime));
    // Committed and published, still in the queue: in flight.
    create(&m.stack.activities, &alice, 2).await;

    let runner = RebuildRunner::new(
        m.stack.activity_store.clone(),
        Arc::new(StatsRebuild::new(
            m.stack.activity_store.clone(),
            m.stack.stats_store.clone(),
            Arc::new(Behind(Duration::from_secs(5))),
        )),
    );
    let mut skewed = settings(0, 1);
    skewed.rebuild.max_clock_skew = Duration::from_secs(10);
    let (report, _) = runner
        .run_users(std::slice::from_ref(&alice), &skewed)
        .await
        .unwrap();
    assert!(matches!(report.users[0].1, UserRebuild::Corrected(_)));
    assert_eq!(m.drain_stats().await, 1, "the in-flight event is delivered");
    m.assert_exact(std::slice::from_ref(&alice)).await;
}

/// A writer and a consumer keep running while every user is rebuilt; every user was corrupted.
///
/// One thread with paused time, on purpose. The cut-over is exact when the settle time is at
/// least the time a change takes to commit after its event is stamped (`G ≥ 2S + C`, see
/// `application::rebuild`). On worker threads that premise is about the machine: a writer thread
/// descheduled between stamp and commit for longer than the settle time (seen on a loaded CI
/// machine with a 15 ms settle) breaks it, and the test then measured the scheduler. On one
/// thread a memory write never yields between stamp and commit, so `C` is zero and every
/// interleaving the test meets is one the cut-over must handle; the settle, the writer's pace
/// and the consumer's lag are virtual time, so the run is the same on any machine.
#[tokio::test(start_paused = true)]
async fn memory_a_rebuild_while_events_keep_arriving_ends_exact() {
    let m = Memory::new();
    let users = users("busy", 6);
    history(&m.stack.activities, &users).await;
    m.drain_stats().await;
    for owner in &users {
        m.stack
            .stats_store
            .overwrite(owner, corrupted(PeriodKey::AllTime));
    }

    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let service = m.stack.activities.clone();
        let source = m.stack.activity_store.clone();
        let users = users.clone();
        let writing = writing.clone();
        tokio::spawn(async move {
            for i in 0..240u32 {
                let owner = &users[i as usize % users.len()];
                match i % 10 {
                    0..=5 => {
                        create(&service, owner, i).await;
                    }
                    6..=8 => {
                        let mine = source.user_activities(owner).await.unwrap();
                        if let Some(activity) = mine.get(i as usize % mine.len().max(1)) {
                            let patch = ActivityPatch {
                                duration: Some(DurationMinutes::parse(5 + i % 100).unwrap()),
                                ..Default::default()
                            };
                            let _ = service.update(&ctx(owner), activity.id, &patch, None).await;
                        }
                    }
                    _ => {
                        let mine = source.user_activities(owner).await.unwrap();
                        if let Some(activity) = mine.first() {
                            let _ = service.delete(&ctx(owner), activity.id, None).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            writing.store(false, Ordering::SeqCst);
        })
    };
    let consuming = Arc::new(AtomicBool::new(true));
    let consumer = {
        let poller = m.stats_poller();
        let consuming = consuming.clone();
        // A consumer that lags: events stay in flight (committed, queued) for up to 30 ms, so
        // rebuilds happen with events in flight, the case the fence is for.
        tokio::spawn(async move {
            while consuming.load(Ordering::SeqCst) {
                poller.poll_once().await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(50)).await;
    let recorder = Arc::new(Recorder::default());
    let summary = m
        .runner()
        .run_all(
            &settings(15, 30),
            Checkpoint::new("stats", 3),
            recorder.clone(),
        )
        .await
        .unwrap();
    assert!(
        writing.load(Ordering::SeqCst),
        "the rebuild finished while events were still arriving"
    );
    // A user whose activities span two scan pages is rebuilt twice: harmless.
    assert!(summary.users >= users.len(), "{summary:?}");
    assert!(summary.busy.is_empty(), "{summary:?}");
    assert_eq!(
        recorder.corrected().len(),
        users.len(),
        "every user was corrupted"
    );

    writer.await.unwrap();
    m.drain_stats().await;
    consuming.store(false, Ordering::SeqCst);
    consumer.await.unwrap();
    m.drain_stats().await;
    m.assert_exact(&users).await;
}

#[tokio::test]
async fn memory_an_interrupted_rebuild_resumes_from_its_checkpoint() {
    let m = Memory::new();
    let users = users("resume", 9);
    history(&m.stack.activities, &users).await;
    m.drain_stats().await;
    for owner in &users {
        m.stack
            .stats_store
            .overwrite(owner, corrupted(PeriodKey::AllTime));
    }
    let interrupted = Arc::new(Recorder {
        fail_after: Some(2),
        ..Default::default()
    });
    let error = m
        .runner()
        .run_all(
            &settings(0, 1),
            Checkpoint::new("stats", 3),
            interrupted.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Checkpoint(_)), "{error}");
    let kept = interrupted
        .checkpoints
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert!(!kept.is_done());

    let resumed = Arc::new(Recorder::default());
    m.runner()
        .run_all(&settings(0, 1), kept, resumed.clone())
        .await
        .unwrap();
    assert!(
        resumed
            .checkpoints
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .is_done()
    );
    m.assert_exact(&users).await;
}

fn window_request(name: &str, consumer: ConsumerFunction) -> ReplayRequest {
    let now = OffsetDateTime::now_utc();
    ReplayRequest {
        name: name.to_owned(),
        consumer,
        from: now - time::Duration::hours(1),
        to: now + time::Duration::minutes(1),
    }
}

#[tokio::test]
async fn memory_stats_deleted_then_a_replay_restores_them() {
    let m = Memory::new();
    let users = users("replayed", 3);
    history(&m.stack.activities, &users).await;
    m.drain_stats().await;
    let applied = m.stack.stats_store.snapshot();
    let achievements_before = m.stack.queue("AchievementsQueue").unwrap().len();

    // The projection lost whole: statistics and the consumer's processed-event markers.
    m.stack.stats_store.reset();
    assert!(m.stack.stats_store.snapshot().is_empty());

    let replay = ArchiveReplay::new(m.stack.bus.clone());
    let mut shares = Vec::new();
    let outcome = replay
        .run(
            &window_request("restore", ConsumerFunction::UpdateStats),
            Duration::from_millis(10),
            |_, share| shares.push(share),
        )
        .await
        .unwrap();
    assert_eq!(outcome.state, ReplayState::Completed);
    assert_eq!(
        outcome.events,
        Some(15),
        "3 users × (3 created, 1 updated, 1 deleted)"
    );
    assert_eq!(shares.last(), Some(&Some(1.0)));
    assert_eq!(
        m.stack.queue("AchievementsQueue").unwrap().len(),
        achievements_before,
        "only the chosen consumer's queue receives the replay"
    );
    m.drain_stats().await;
    let non_empty = |snapshot: std::collections::HashMap<(UserId, PeriodKey), UserStats>| {
        snapshot
            .into_iter()
            .filter(|((_, period), stats)| *stats != UserStats::empty(*period))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        non_empty(m.stack.stats_store.snapshot()),
        non_empty(applied)
    );
    m.assert_exact(&users).await;
}

#[tokio::test]
async fn memory_a_replay_of_applied_events_changes_nothing() {
    let m = Memory::new();
    let users = users("again", 3);
    history(&m.stack.activities, &users).await;
    m.drain_stats().await;
    let applied = m.stack.stats_store.snapshot();

    ArchiveReplay::new(m.stack.bus.clone())
        .run(
            &window_request("again", ConsumerFunction::UpdateStats),
            Duration::from_millis(10),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(m.drain_stats().await, 15, "every event delivered again");
    assert_eq!(m.stack.stats_store.snapshot(), applied);

    // A window that holds nothing replays nothing.
    let past = ReplayRequest {
        name: "past".into(),
        consumer: ConsumerFunction::UpdateStats,
        from: OffsetDateTime::now_utc() - time::Duration::days(3),
        to: OffsetDateTime::now_utc() - time::Duration::days(2),
    };
    m.stack.bus.start_replay(&past).await.unwrap();
    assert_eq!(m.drain_stats().await, 0);
    assert!(
        m.stack.bus.start_replay(&past).await.is_err(),
        "a name is used once"
    );
}

#[tokio::test]
async fn memory_achievements_rebuild_raises_lost_progress_and_never_awards_twice() {
    let m = Memory::new();
    let veteran = user("veteran");
    for n in 0..10 {
        create(&m.stack.activities, &veteran, n).await;
    }
    let poller = m.achievements_poller();
    while poller.poll_once().await > 0 {}
    let standing = m.stack.achievement_store.standing(&veteran).await.unwrap();
    assert!(standing.has(Milestone::TenActivities));
    let awards_before = standing.awards.clone();
    let published_before = m.stack.bus.accepted_events().len();

    m.stack
        .achievement_store
        .overwrite_progress(&veteran, Progress::default());
    let rebuild = AchievementsRebuild::new(
        m.stack.activity_store.clone(),
        m.stack.achievement_store.clone(),
        m.stack.achievement_store.clone(),
        m.stack.activity_store.clone(),
        Some(m.stack.bus.clone() as Arc<dyn EventPublisher>),
        m.stack.clock.clone(),
        m.stack.ids.clone(),
    );
    let report = rebuild
        .rebuild_users(std::slice::from_ref(&veteran), &RebuildSettings::default())
        .await
        .unwrap();
    let UserRebuild::Repaired { progress, awarded } = &report.users[0].1 else {
        panic!("{report:?}");
    };
    assert_eq!(progress.unwrap().1.activities, 10);
    assert!(awarded.is_empty(), "every milestone was awarded before");
    let after = m
        .stack
        .achievement_store
        .progress_projection(&veteran)
        .await
        .unwrap();
    assert_eq!(after.standing.progress.activities, 10);
    assert_eq!(after.standing.awards, awards_before);
    assert_eq!(
        m.stack.bus.accepted_events().len(),
        published_before,
        "no achievement.unlocked published again"
    );

    // A user whose awards were never made (their events were lost) gets them, once.
    let newcomer = user("newcomer");
    create(&m.stack.activities, &newcomer, 1).await;
    let report = rebuild
        .rebuild_users(std::slice::from_ref(&newcomer), &RebuildSettings::default())
        .await
        .unwrap();
    assert!(matches!(
        &report.users[0].1,
        UserRebuild::Repaired { awarded, .. } if *awarded == [Milestone::FirstActivity]
    ));
    let again = rebuild
        .rebuild_users(std::slice::from_ref(&newcomer), &RebuildSettings::default())
        .await
        .unwrap();
    assert_eq!(again.users[0].1, UserRebuild::Unchanged);
}

/// A correction whose fence is behind the stored one (a second rebuild on a clock that is behind
/// the first's) is refused whole: the fence never moves back, so events the first rebuild
/// counted are never added again.
async fn a_correction_never_lowers_the_fence(store: &dyn StatsProjectionStore, owner: &UserId) {
    let later = OffsetDateTime::now_utc();
    let earlier = later - time::Duration::seconds(60);
    let one = StatsCorrection {
        period: PeriodKey::AllTime,
        totals: Totals {
            activities: 1,
            ..Totals::default()
        },
        by_type: BTreeMap::new(),
    };
    let read = store.projection(owner).await.unwrap();
    assert_eq!(
        store
            .correct(owner, read.revision, later, std::slice::from_ref(&one))
            .await
            .unwrap(),
        CorrectionOutcome::Corrected
    );
    let read = store.projection(owner).await.unwrap();
    assert_eq!(
        store
            .correct(owner, read.revision, earlier, std::slice::from_ref(&one))
            .await
            .unwrap(),
        CorrectionOutcome::RevisionMoved,
        "a fence behind the stored one is refused"
    );
    let after = store.projection(owner).await.unwrap();
    assert_eq!(after.revision, read.revision, "nothing written");
    assert_eq!(after.periods[&PeriodKey::AllTime].totals.activities, 1);
    let micros = |at: OffsetDateTime| at.unix_timestamp_nanos() / 1000;
    assert_eq!(
        after.fence.map(micros),
        Some(micros(later)),
        "the fence kept"
    );
}

#[tokio::test]
async fn memory_a_correction_never_lowers_the_fence() {
    let m = Memory::new();
    a_correction_never_lowers_the_fence(m.stack.stats_store.as_ref(), &user("fence-0")).await;
}

// ---------------------------------------------------------------------------------------------
// Projection versions: v2 rebuilt beside v1, readers switched by configuration
// ---------------------------------------------------------------------------------------------

fn v2() -> ProjectionVersion {
    ProjectionVersion::new(2).unwrap()
}

/// The version a process configured with `STATS_PROJECTION_VERSION=<raw>` reads and writes.
fn configured_version(raw: &str) -> ProjectionVersion {
    let raw = raw.to_owned();
    Settings::from_lookup(move |name| (name == STATS_PROJECTION_VERSION).then(|| raw.clone()))
        .stats_projection_version()
        .unwrap()
}

/// The template's rules plus a second stats rule into `StatsV2Queue`: the queue of the v2
/// consumer deployed beside the v1 one for a switch-over.
fn rules_with_a_v2_consumer() -> Vec<RoutingRule> {
    let mut rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let mut v2 = rules
        .iter()
        .find(|rule| rule.target_queue == "StatsQueue")
        .unwrap()
        .clone();
    v2.name = "StatsV2Rule".into();
    v2.target_queue = "StatsV2Queue".into();
    rules.push(v2);
    rules
}

/// Empties a queue without handling anything: the v2 queue is deployed after the history, which
/// never reached it.
fn discard(queue: &MemoryQueue) {
    loop {
        let received = queue.receive(100);
        if received.is_empty() {
            return;
        }
        for message in received {
            queue.delete(&message.receipt_handle);
        }
    }
}

/// A v2 consumer is deployed beside v1 (its own queue, its own markers), v2 is rebuilt from the
/// activities while a writer keeps changing them and both consumers keep applying events; v2
/// ends exact, and v1 ends exact without ever having been touched by the rebuild (no fence).
/// One thread with paused time, for the reason the v1 test of this shape gives.
#[tokio::test(start_paused = true)]
async fn memory_v2_rebuilt_beside_v1_while_both_consumers_run_ends_exact_and_leaves_v1_untouched() {
    let m = Memory::with_rules(&rules_with_a_v2_consumer());
    let users = users("versions", 5);
    history(&m.stack.activities, &users).await;
    m.drain_stats().await;
    let v2_queue = m.stack.queue("StatsV2Queue").unwrap().clone();
    discard(&v2_queue);
    let v1_store = m.stack.stats_store.clone();
    let v2_store = m.stack.stats_store.at_version(v2());
    let v2_poller = Poller::new(
        v2_queue,
        Arc::new(StatsConsumer::new(StatsUpdater::new(v2_store.clone()))),
        10,
    );
    for owner in &users {
        assert!(v2_store.projection(owner).await.unwrap().periods.is_empty());
    }

    // Writes in bursts to one user at a time, so each user has quiet spans longer than the
    // settle time, until the rebuild is over (bounded: a rebuild that never ends fails below).
    let rebuilding = Arc::new(AtomicBool::new(true));
    let writer = {
        let service = m.stack.activities.clone();
        let source = m.stack.activity_store.clone();
        let users = users.clone();
        let rebuilding = rebuilding.clone();
        tokio::spawn(async move {
            let mut written_during = 0u32;
            let mut i = 0u32;
            while i < 3000 && (i < 12 || rebuilding.load(Ordering::SeqCst)) {
                let owner = &users[(i / 6) as usize % users.len()];
                if i % 3 == 2 {
                    let mine = source.user_activities(owner).await.unwrap();
                    if let Some(activity) = mine.get(i as usize % mine.len().max(1)) {
                        let patch = ActivityPatch {
                            duration: Some(DurationMinutes::parse(5 + i % 100).unwrap()),
                            ..Default::default()
                        };
                        let _ = service.update(&ctx(owner), activity.id, &patch, None).await;
                    }
                } else {
                    create(&service, owner, i).await;
                }
                written_during += u32::from(rebuilding.load(Ordering::SeqCst));
                i += 1;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            written_during
        })
    };
    let consuming = Arc::new(AtomicBool::new(true));
    let consumers = {
        let v1_poller = m.stats_poller();
        let consuming = consuming.clone();
        tokio::spawn(async move {
            while consuming.load(Ordering::SeqCst) {
                v1_poller.poll_once().await;
                v2_poller.poll_once().await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            v2_poller
        })
    };

    tokio::time::sleep(Duration::from_millis(50)).await;
    let runner = RebuildRunner::new(
        m.stack.activity_store.clone(),
        Arc::new(StatsRebuild::new(
            m.stack.activity_store.clone(),
            v2_store.clone(),
            m.stack.clock.clone(),
        )),
    );
    let recorder = Arc::new(Recorder::default());
    let summary = runner
        .run_all(
            &settings(15, 30),
            Checkpoint::new("stats-v2", 3),
            recorder.clone(),
        )
        .await
        .unwrap();
    rebuilding.store(false, Ordering::SeqCst);
    assert!(summary.busy.is_empty(), "{summary:?}");
    assert_eq!(
        recorder.corrected().len(),
        users.len(),
        "v2 held only what its consumer applied since it was deployed: {summary:?}"
    );
    assert!(
        writer.await.unwrap() > 0,
        "no change arrived while the rebuild ran"
    );
    consuming.store(false, Ordering::SeqCst);
    let v2_poller = consumers.await.unwrap();
    m.drain_stats().await;
    while v2_poller.poll_once().await > 0 {}
    let source = m.stack.activity_store.as_ref();
    assert_exact_noting(source, v2_store.as_ref(), &users, "v2, rebuilt").await;
    assert_exact_noting(source, v1_store.as_ref(), &users, "v1, left alone").await;
    for owner in &users {
        assert_eq!(
            v1_store.projection(owner).await.unwrap().fence,
            None,
            "the v2 rebuild raised no fence on v1"
        );
        assert!(v2_store.projection(owner).await.unwrap().fence.is_some());
    }
}

/// The reader (get-stats) reads the version it is configured with: v1 corrupted, v2 rebuilt;
/// configured with `STATS_PROJECTION_VERSION=2` it answers v2's figures.
#[tokio::test]
async fn memory_readers_read_the_version_they_are_configured_with() {
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let stack = InMemoryStack::with_system_clock(&rules, &QueueOptions::default()).unwrap();
    let alice = user("reader");
    create(&stack.activities, &alice, 1).await;
    let poller = Poller::new(
        stack.queue("StatsQueue").unwrap().clone(),
        Arc::new(StatsConsumer::new(stack.stats_updater.clone())),
        10,
    );
    while poller.poll_once().await > 0 {}
    let v2_store = stack.stats_store.at_version(v2());
    RebuildRunner::new(
        stack.activity_store.clone(),
        Arc::new(StatsRebuild::new(
            stack.activity_store.clone(),
            v2_store,
            stack.clock.clone(),
        )),
    )
    .run_users(std::slice::from_ref(&alice), &settings(0, 1))
    .await
    .unwrap();
    stack
        .stats_store
        .overwrite(&alice, corrupted(PeriodKey::AllTime));

    let all_time = |queries: &StatsQueries| {
        let queries = queries.clone();
        let alice = alice.clone();
        async move {
            queries
                .get(&ctx(&alice), PeriodKey::AllTime)
                .await
                .unwrap()
                .totals
                .activities
        }
    };
    assert_eq!(all_time(&stack.stats).await, 5, "v1: the corrupted figures");
    let switched = stack.with_stats_version(configured_version("2"));
    assert_eq!(
        all_time(&switched.stats).await,
        1,
        "v2: the rebuilt figures"
    );
    assert_eq!(configured_version("v2"), v2());
}

// ---------------------------------------------------------------------------------------------
// moto
// ---------------------------------------------------------------------------------------------

/// A table, a bus with the template's rules into SQS queues, an archive of the bus, and the use
/// cases over them.
struct Moto {
    clients: Clients,
    store: DynamoDbStore,
    service: ActivityService,
    bus_arn: String,
    archive_arn: String,
    rule_arns: BTreeMap<String, String>,
    stats_queue: String,
    achievements_queue: String,
    /// The v2 stats consumer's queue, when the test deployed one.
    stats_v2_queue: Option<String>,
    /// The test's own moto server, when it has one (stopped when the test ends).
    _server: Option<MotoServer>,
}

impl Moto {
    async fn new() -> Self {
        Self::with_rules(rules_from_template(include_str!("../template.yaml")).unwrap()).await
    }

    /// The template's rules and a v2 stats consumer's rule and queue (`StatsV2Queue`).
    async fn with_a_v2_consumer() -> Self {
        Self::with_rules(rules_with_a_v2_consumer()).await
    }

    /// On a moto of the test's own with item-level rollback ([`MotoServer::start_with_item_rollback`]).
    async fn on_a_server_with_item_rollback() -> Self {
        let server = MotoServer::start_with_item_rollback().unwrap();
        let clients = Clients::at(server.endpoint());
        let mut moto = Self::at(
            clients,
            rules_from_template(include_str!("../template.yaml")).unwrap(),
        )
        .await;
        moto._server = Some(server);
        moto
    }

    async fn with_rules(rules_in_template: Vec<RoutingRule>) -> Self {
        Self::at(Clients::new(), rules_in_template).await
    }

    async fn at(clients: Clients, rules_in_template: Vec<RoutingRule>) -> Self {
        let table = unique("rebuild");
        clients.create_table(&table).await;
        let bus = unique("bus");
        let mut rules = Vec::new();
        let mut rule_arns = BTreeMap::new();
        let mut queues = BTreeMap::new();
        for rule in rules_in_template {
            let (queue, _dlq) = clients
                .create_queue_with_dlq(&unique(&rule.target_queue), 30, 5)
                .await;
            let arn = clients.queue_arn(&queue).await;
            let name = unique(&rule.name);
            rule_arns.insert(
                rule.target_queue.clone(),
                format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{name}"),
            );
            queues.insert(rule.target_queue.clone(), queue);
            rules.push((name, rule.event_pattern, arn));
        }
        clients.create_bus(&bus, &rules).await;
        let bus_arn = format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}");
        let archive = clients
            .eventbridge
            .create_archive()
            .archive_name(unique("archive"))
            .event_source_arn(&bus_arn)
            .retention_days(30)
            .send()
            .await
            .expect("create archive");
        let store = DynamoDbStore::new(clients.dynamodb.clone(), &table);
        let service = ActivityService::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(EventBridgePublisher::new(clients.eventbridge.clone(), &bus)),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        Self {
            archive_arn: archive.archive_arn.unwrap(),
            stats_queue: queues.remove("StatsQueue").unwrap(),
            achievements_queue: queues.remove("AchievementsQueue").unwrap(),
            stats_v2_queue: queues.remove("StatsV2Queue"),
            _server: None,
            clients,
            store,
            service,
            bus_arn,
            rule_arns,
        }
    }

    async fn stats_poller(&self) -> SqsPoller {
        let handler = Arc::new(StatsConsumer::new(StatsUpdater::new(Arc::new(
            self.store.clone(),
        ))));
        SqsPoller::connect(self.clients.sqs.clone(), &self.stats_queue, handler)
            .await
            .unwrap()
            .with_wait_time(Duration::from_secs(0))
    }

    /// Applies what is waiting in `queue` with the stats consumer of `store`'s version.
    async fn drain_with(&self, queue: &str, store: &DynamoDbStore) -> usize {
        let handler = Arc::new(StatsConsumer::new(StatsUpdater::new(Arc::new(
            store.clone(),
        ))));
        let poller = SqsPoller::connect(self.clients.sqs.clone(), queue, handler)
            .await
            .unwrap()
            .with_wait_time(Duration::from_secs(0));
        let mut handled = 0;
        loop {
            let n = poller.poll_once().await.unwrap();
            if n == 0 {
                return handled;
            }
            handled += n;
        }
    }

    /// The sort keys of a user's items that start with `STATS`, and the marker partitions of
    /// every stats consumer (`PROCESSED#update-stats…`).
    async fn stats_keys(&self, owner: &UserId) -> (Vec<String>, Vec<String>) {
        let mut keys = Vec::new();
        let mut markers = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .clients
                .dynamodb
                .scan()
                .table_name(self.store.table_name())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            for item in page.items() {
                let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                    (item.get("PK"), item.get("SK"))
                else {
                    continue;
                };
                if *pk == format!("USER#{owner}") && sk.starts_with("STATS") {
                    keys.push(sk.clone());
                }
                if pk.starts_with("PROCESSED#update-stats") {
                    markers.push(pk.clone());
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        keys.sort();
        (keys, markers)
    }

    async fn drain_stats(&self) -> usize {
        let poller = self.stats_poller().await;
        let mut handled = 0;
        loop {
            let n = poller.poll_once().await.unwrap();
            if n == 0 {
                return handled;
            }
            handled += n;
        }
    }

    fn runner(&self) -> RebuildRunner {
        let store = Arc::new(self.store.clone());
        RebuildRunner::new(
            store.clone(),
            Arc::new(StatsRebuild::new(
                store.clone(),
                store,
                Arc::new(SystemClock),
            )),
        )
    }

    fn archive(&self) -> EventBridgeArchive {
        EventBridgeArchive::new(
            self.clients.eventbridge.clone(),
            &self.archive_arn,
            &self.bus_arn,
            [
                (
                    ConsumerFunction::UpdateStats,
                    self.rule_arns["StatsQueue"].clone(),
                ),
                (
                    ConsumerFunction::RecordAchievements,
                    self.rule_arns["AchievementsQueue"].clone(),
                ),
            ],
        )
    }

    async fn assert_exact(&self, users: &[UserId]) {
        assert_exact(&self.store, &self.store, users).await;
    }

    /// Overwrites attributes of a stats item directly, as a bug would.
    async fn corrupt(&self, owner: &UserId, period: PeriodKey) {
        self.clients
            .dynamodb
            .update_item()
            .table_name(self.store.table_name())
            .key("PK", AttributeValue::S(format!("USER#{owner}")))
            .key("SK", AttributeValue::S(format!("STATS#{period}")))
            .update_expression("SET activities = :a, minutes = :m, swimming_activities = :a")
            .expression_attribute_values(":a", AttributeValue::N("5".into()))
            .expression_attribute_values(":m", AttributeValue::N("500".into()))
            .send()
            .await
            .unwrap();
    }

    /// Deletes a user's statistics and the stats consumer's markers: the projection lost.
    async fn delete_stats(&self, owner: &UserId) {
        let table = self.store.table_name();
        let scan = self
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .send()
            .await
            .unwrap();
        for item in scan.items.unwrap_or_default() {
            let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get("PK"), item.get("SK"))
            else {
                continue;
            };
            let stats = *pk == format!("USER#{owner}") && sk.starts_with("STATS#");
            let marker = pk.starts_with("PROCESSED#update-stats#");
            if stats || marker {
                self.clients
                    .dynamodb
                    .delete_item()
                    .table_name(table)
                    .key("PK", AttributeValue::S(pk.clone()))
                    .key("SK", AttributeValue::S(sk.clone()))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn moto_stats_corrupted_then_rebuilt_are_exactly_the_recomputed_values() {
    let m = Moto::new().await;
    let users = users("corrupt", 5);
    history(&m.service, &users).await;
    m.drain_stats().await;
    m.assert_exact(&users).await;

    m.corrupt(&users[0], PeriodKey::AllTime).await;
    m.corrupt(&users[1], PeriodKey::week_of(date!(2026 - 09 - 01)))
        .await;
    m.corrupt(
        &users[2],
        PeriodKey::Month {
            year: 2020,
            month: 1,
        },
    )
    .await;

    let mut dry = settings(0, 1);
    dry.rebuild.dry_run = true;
    let dry_run = Arc::new(Recorder::default());
    m.runner()
        .run_all(&dry, Checkpoint::new("stats", 3), dry_run.clone())
        .await
        .unwrap();
    assert_eq!(dry_run.corrected().len(), 3);

    let recorder = Arc::new(Recorder::default());
    m.runner()
        .run_all(
            &settings(0, 1),
            Checkpoint::new("stats", 3),
            recorder.clone(),
        )
        .await
        .unwrap();
    assert_eq!(recorder.corrected().len(), 3);
    m.assert_exact(&users).await;
    // The API reads what the rebuild wrote.
    let all_time = activelog::application::StatsStore::get(&m.store, &users[0], PeriodKey::AllTime)
        .await
        .unwrap();
    assert_eq!(all_time.totals.activities, 2);
}

/// `--all` also meets a user who has statistics but no activity left (the last delete's event
/// lost, or the statistics otherwise wrong): they are recomputed to zero.
#[tokio::test]
async fn moto_a_user_with_statistics_and_no_activities_is_rebuilt_to_zero() {
    let m = Moto::new().await;
    let orphan = user("orphan-0");
    m.corrupt(&orphan, PeriodKey::AllTime).await;
    m.corrupt(&orphan, PeriodKey::week_of(date!(2026 - 09 - 01)))
        .await;
    assert!(m.store.user_activities(&orphan).await.unwrap().is_empty());

    let recorder = Arc::new(Recorder::default());
    m.runner()
        .run_all(
            &settings(0, 1),
            Checkpoint::new("stats", 3),
            recorder.clone(),
        )
        .await
        .unwrap();
    assert!(recorder.corrected().contains(&orphan), "the user was met");
    m.assert_exact(std::slice::from_ref(&orphan)).await;
}

#[tokio::test]
async fn moto_a_correction_never_lowers_the_fence() {
    let m = Moto::new().await;
    a_correction_never_lowers_the_fence(&m.store, &user("fence-0")).await;
}

#[tokio::test]
async fn moto_an_event_in_flight_during_a_rebuild_is_counted_once() {
    let m = Moto::new().await;
    let alice = user("in-flight");
    create(&m.service, &alice, 1).await;
    m.drain_stats().await;
    m.corrupt(&alice, PeriodKey::AllTime).await;
    create(&m.service, &alice, 2).await;

    let (report, _) = m
        .runner()
        .run_users(std::slice::from_ref(&alice), &settings(0, 1))
        .await
        .unwrap();
    assert!(matches!(report.users[0].1, UserRebuild::Corrected(_)));
    m.assert_exact(std::slice::from_ref(&alice)).await;
    assert_eq!(m.drain_stats().await, 1, "the in-flight event is delivered");
    m.assert_exact(std::slice::from_ref(&alice)).await;
    create(&m.service, &alice, 3).await;
    m.drain_stats().await;
    m.assert_exact(std::slice::from_ref(&alice)).await;
}

/// Activities keep being written (and their events published) while every user is rebuilt; the
/// consumer runs only after the writer stops, so every event written during the rebuild is in
/// flight when the rebuild corrects its user.
///
/// On a moto of its own with item-level rollback: on stock moto (one server shared by the whole
/// test binary) a transaction the SDK retries after a lost answer is cancelled by design, and
/// stock moto then puts back a copy of the whole table, undoing what the writer or the rebuild
/// wrote meanwhile — seen as activities gone whose events were counted.
///
/// The writes are real round trips, so the cut-over's premise (the settle time is longer than
/// the time from an event's stamp to its commit) is about the machine: the settle is 1 s, far
/// above a create on moto even at a load average of 20, and a failure reports the slowest
/// create against it. The writer writes one user at a time, in bursts, so users have quiet
/// spans, and it stops after a bounded number of creates (or when the rebuild ends), so the
/// rebuild always meets a quiet table in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_rebuild_while_events_keep_arriving_ends_exact() {
    const SETTLE: Duration = Duration::from_secs(1);
    const BURST: u32 = 4;
    const CREATES: u32 = 40;
    let m = Arc::new(Moto::on_a_server_with_item_rollback().await);
    let users = users("busy", 4);
    history(&m.service, &users).await;
    m.drain_stats().await;
    for owner in &users {
        m.corrupt(owner, PeriodKey::AllTime).await;
    }
    let rebuilding = Arc::new(AtomicBool::new(true));
    let writer = {
        let m = m.clone();
        let users = users.clone();
        let rebuilding = rebuilding.clone();
        tokio::spawn(async move {
            let (mut written, mut written_during, mut slowest) = (0u32, 0u32, Duration::ZERO);
            while written < CREATES && (written < 8 || rebuilding.load(Ordering::SeqCst)) {
                let during = rebuilding.load(Ordering::SeqCst);
                let started = std::time::Instant::now();
                create(
                    &m.service,
                    &users[(written / BURST) as usize % users.len()],
                    written,
                )
                .await;
                slowest = slowest.max(started.elapsed());
                written += 1;
                written_during += u32::from(during && rebuilding.load(Ordering::SeqCst));
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            (written_during, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let recorder = Arc::new(Recorder::default());
    let mut run = settings(u64::try_from(SETTLE.as_millis()).unwrap(), 40);
    // Few pages, so the run is a few settle times long, not one per four items.
    run.page_items = 25;
    let summary = m
        .runner()
        .run_all(&run, Checkpoint::new("stats", 2), recorder.clone())
        .await
        .unwrap();
    rebuilding.store(false, Ordering::SeqCst);
    let (written_during, slowest) = writer.await.unwrap();
    assert!(summary.busy.is_empty(), "{summary:?}");
    assert_eq!(recorder.corrected().len(), users.len(), "{summary:?}");
    assert!(written_during > 0, "no event arrived while the rebuild ran");
    m.drain_stats().await;
    assert_exact_noting(
        &m.store,
        &m.store,
        &users,
        &format!(
            "{written_during} creates during the rebuild; the slowest create took {slowest:?} \
             against a settle of {SETTLE:?} (the cut-over assumes the settle is longer)"
        ),
    )
    .await;
}

#[tokio::test]
async fn moto_stats_deleted_then_a_replay_restores_them() {
    let m = Moto::new().await;
    let users = users("replayed", 2);
    history(&m.service, &users).await;
    assert_eq!(m.drain_stats().await, 10);
    m.assert_exact(&users).await;
    for owner in &users {
        m.delete_stats(owner).await;
    }
    assert!(
        m.store
            .projection(&users[0])
            .await
            .unwrap()
            .periods
            .is_empty(),
        "deleted"
    );

    let request = window_request(&unique("restore"), ConsumerFunction::UpdateStats);
    let outcome = ArchiveReplay::new(Arc::new(m.archive()))
        .run(&request, Duration::from_millis(100), |_, _| {})
        .await
        .unwrap();
    assert_eq!(outcome.state, ReplayState::Completed);
    assert_eq!(m.drain_stats().await, 10, "every archived event replayed");
    m.assert_exact(&users).await;
}

#[tokio::test]
async fn moto_a_replay_of_applied_events_changes_nothing() {
    let m = Moto::new().await;
    let users = users("again", 2);
    history(&m.service, &users).await;
    m.drain_stats().await;
    let before: Vec<_> = {
        let mut all = Vec::new();
        for owner in &users {
            all.push(m.store.projection(owner).await.unwrap().periods);
        }
        all
    };
    m.archive()
        .start_replay(&window_request(
            &unique("again"),
            ConsumerFunction::UpdateStats,
        ))
        .await
        .unwrap();
    assert_eq!(m.drain_stats().await, 10, "every event delivered again");
    for (owner, periods) in users.iter().zip(before) {
        assert_eq!(m.store.projection(owner).await.unwrap().periods, periods);
    }
}

/// What moto cannot do, pinned: its `StartReplay` sends the whole archive, outside the window
/// too, to every matching rule, the filtered-out one included. EventBridge sends only the window
/// to the rules in `FilterArns`.
#[tokio::test]
async fn moto_replay_ignores_the_window_and_the_rule_filter() {
    let m = Moto::new().await;
    let owner = user("limits");
    create(&m.service, &owner, 1).await;
    m.drain_stats().await;
    let achievements_depth = m.clients.queue_depth(&m.achievements_queue).await.0;
    let past = ReplayRequest {
        name: unique("past"),
        consumer: ConsumerFunction::UpdateStats,
        from: OffsetDateTime::now_utc() - time::Duration::days(3),
        to: OffsetDateTime::now_utc() - time::Duration::days(2),
    };
    m.archive().start_replay(&past).await.unwrap();
    let progress = m.archive().replay_progress(&past.name).await.unwrap();
    assert_eq!(
        progress.state,
        ReplayState::Completed,
        "moto replays synchronously"
    );
    assert_eq!(
        m.clients.queue_depth(&m.stats_queue).await.0,
        1,
        "moto replayed an event outside the window"
    );
    assert_eq!(
        m.clients.queue_depth(&m.achievements_queue).await.0,
        achievements_depth + 1,
        "moto replayed to a rule not in FilterArns"
    );
    let received = m
        .clients
        .sqs
        .receive_message()
        .queue_url(&m.stats_queue)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(
        body["replay-name"],
        past.name.as_str(),
        "marked as a replay"
    );
}

/// v2 rebuilt beside v1 on moto with events in flight to both consumers (committed and queued
/// before the rebuild, applied after it): v2 exact, v1 exact and unfenced; v1's keys and markers
/// are the ones from before versions existed and v2's have their own prefix; the reader follows
/// its configuration. No writer runs during the rebuild here: moto's `TransactWriteItems`
/// deep-copies the table and fails with a 500 when another request changes it meanwhile (seen
/// with this test's first shape, "dictionary changed size during iteration"); the concurrent
/// run is the memory test above.
#[tokio::test]
async fn moto_v2_rebuilt_beside_v1_ends_exact_leaves_v1_and_its_keys_untouched() {
    let m = Moto::with_a_v2_consumer().await;
    let v2_queue = m.stats_v2_queue.clone().unwrap();
    let users = users("versions", 3);
    history(&m.service, &users).await;
    m.drain_stats().await;
    // The v2 consumer is deployed now: the history never reached its queue.
    m.clients
        .sqs
        .purge_queue()
        .queue_url(&v2_queue)
        .send()
        .await
        .unwrap();
    let v1_keys = m.stats_keys(&users[0]).await.0;
    let v2_store = m.store.clone().with_stats_version(v2());
    // In flight to both consumers while v2 is rebuilt.
    for (n, owner) in users.iter().enumerate() {
        create(&m.service, owner, 40 + u32::try_from(n).unwrap()).await;
    }

    let runner = RebuildRunner::new(
        Arc::new(m.store.clone()),
        Arc::new(StatsRebuild::new(
            Arc::new(v2_store.clone()),
            Arc::new(v2_store.clone()),
            Arc::new(SystemClock),
        )),
    );
    let recorder = Arc::new(Recorder::default());
    let summary = runner
        .run_all(
            &settings(0, 1),
            Checkpoint::new("stats-v2", 2),
            recorder.clone(),
        )
        .await
        .unwrap();
    assert!(summary.busy.is_empty(), "{summary:?}");
    assert_eq!(recorder.corrected().len(), users.len(), "{summary:?}");
    assert_eq!(m.drain_stats().await, users.len(), "in flight to v1");
    assert_eq!(
        m.drain_with(&v2_queue, &v2_store).await,
        users.len(),
        "in flight to v2"
    );
    assert_exact_noting(&m.store, &v2_store, &users, "v2, rebuilt").await;
    assert_exact_noting(&m.store, &m.store, &users, "v1, left alone").await;
    for owner in &users {
        assert_eq!(m.store.projection(owner).await.unwrap().fence, None);
        assert!(v2_store.projection(owner).await.unwrap().fence.is_some());
    }
    // Later events are counted by both.
    create(&m.service, &users[0], 50).await;
    m.drain_stats().await;
    m.drain_with(&v2_queue, &v2_store).await;
    assert_exact(&m.store, &v2_store, &users).await;
    assert_exact(&m.store, &m.store, &users).await;

    // The keys: v1's are those it had before v2 existed (plus the periods new activities
    // opened), all `STATS#<period>`; v2 holds the same periods under `STATS@v2#`.
    let (keys, markers) = m.stats_keys(&users[0]).await;
    let (v1_now, v2_now): (Vec<String>, Vec<String>) =
        keys.into_iter().partition(|k| k.starts_with("STATS#"));
    assert!(v1_keys.contains(&"STATS#all".to_owned()), "{v1_keys:?}");
    assert!(
        v1_keys.iter().all(|k| v1_now.contains(k)),
        "{v1_keys:?} {v1_now:?}"
    );
    let mut expected: Vec<String> = v1_now
        .iter()
        .map(|k| k.replacen("STATS#", "STATS@v2#", 1))
        .collect();
    expected.sort();
    assert_eq!(v2_now, expected, "every key is v1's or v2's");
    assert!(
        markers
            .iter()
            .any(|pk| pk.starts_with("PROCESSED#update-stats#"))
    );
    assert!(
        markers
            .iter()
            .any(|pk| pk.starts_with("PROCESSED#update-stats@v2#"))
    );

    // The reader follows its configuration: v1 corrupted, v2 not.
    m.corrupt(&users[0], PeriodKey::AllTime).await;
    let reader = |raw: &str| {
        StatsQueries::new(Arc::new(
            m.store.clone().with_stats_version(configured_version(raw)),
        ))
    };
    let all_time = |queries: StatsQueries| {
        let owner = users[0].clone();
        async move {
            queries
                .get(&ctx(&owner), PeriodKey::AllTime)
                .await
                .unwrap()
                .totals
                .activities
        }
    };
    assert_eq!(all_time(reader("1")).await, 5, "v1: corrupted");
    let recomputed = m.store.user_activities(&users[0]).await.unwrap().len();
    assert_eq!(
        all_time(reader("2")).await,
        i64::try_from(recomputed).unwrap(),
        "v2: rebuilt and kept by its consumer"
    );
}

/// The memory test of the achievements rebuild, on the table: progress lost by a bug is raised
/// back to what the activities add up to, no award is granted twice, and a user whose events
/// never reached the consumer gets their award once. Awards go to the outbox (no publisher, as
/// `activelog-admin` runs it).
#[tokio::test]
async fn moto_achievements_rebuild_raises_lost_progress_and_never_awards_twice() {
    let m = Moto::new().await;
    let store = Arc::new(m.store.clone());
    let bus = m.bus_arn.rsplit('/').next().unwrap().to_owned();
    let recorder = activelog::application::AchievementRecorder::new(
        store.clone(),
        store.clone(),
        Arc::new(EventBridgePublisher::new(
            m.clients.eventbridge.clone(),
            &bus,
        )),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
    );
    let poller = SqsPoller::connect(
        m.clients.sqs.clone(),
        &m.achievements_queue,
        Arc::new(AchievementsConsumer::new(recorder)),
    )
    .await
    .unwrap()
    .with_wait_time(Duration::from_secs(0));
    let veteran = user("veteran");
    for n in 0..10 {
        create(&m.service, &veteran, n).await;
    }
    while poller.poll_once().await.unwrap() > 0 {}
    let standing = m.store.standing(&veteran).await.unwrap();
    assert!(standing.has(Milestone::TenActivities), "{standing:?}");
    let awards_before = standing.awards.clone();

    // Progress lost by a bug: the item's counts set to zero.
    m.clients
        .dynamodb
        .update_item()
        .table_name(m.store.table_name())
        .key("PK", AttributeValue::S(format!("USER#{veteran}")))
        .key("SK", AttributeValue::S("ACHIEVEMENT#PROGRESS".into()))
        .update_expression("SET activities = :z, minutes = :z, distance_m = :z")
        .expression_attribute_values(":z", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.store
            .progress_projection(&veteran)
            .await
            .unwrap()
            .standing
            .progress,
        Progress::default()
    );

    let rebuild = AchievementsRebuild::new(
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        None,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
    );
    let report = rebuild
        .rebuild_users(std::slice::from_ref(&veteran), &RebuildSettings::default())
        .await
        .unwrap();
    let UserRebuild::Repaired { progress, awarded } = &report.users[0].1 else {
        panic!("{report:?}");
    };
    assert_eq!(progress.unwrap().1.activities, 10);
    assert!(awarded.is_empty(), "every milestone was awarded before");
    let after = m.store.progress_projection(&veteran).await.unwrap();
    assert_eq!(after.standing.progress.activities, 10);
    assert_eq!(after.standing.awards, awards_before);

    // A user whose events never reached the consumer gets the award, once.
    let newcomer = user("newcomer");
    create(&m.service, &newcomer, 1).await;
    let report = rebuild
        .rebuild_users(std::slice::from_ref(&newcomer), &RebuildSettings::default())
        .await
        .unwrap();
    assert!(
        matches!(
            &report.users[0].1,
            UserRebuild::Repaired { awarded, .. } if *awarded == [Milestone::FirstActivity]
        ),
        "{report:?}"
    );
    let again = rebuild
        .rebuild_users(std::slice::from_ref(&newcomer), &RebuildSettings::default())
        .await
        .unwrap();
    assert_eq!(again.users[0].1, UserRebuild::Unchanged);
    assert_eq!(
        m.store.standing(&newcomer).await.unwrap().awards.len(),
        1,
        "awarded once"
    );
}
