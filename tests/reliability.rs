//! Issue #14: nothing acknowledged is lost and nothing is applied twice, under load with faults
//! injected at random. Concurrent creates, updates and deletes go through the functions' HTTP
//! handlers over the real DynamoDB, EventBridge and SQS adapters; the consumers poll their queues
//! in batches and the outbox relay runs on a timer — every SDK call through the fault proxy
//! (`support/fault_proxy.rs`) in front of moto. Then the proxy stops injecting, the system
//! settles (relay, redeliveries, dead-letter redrive) and the invariants are checked against what
//! the API answered.
//!
//! Small by default (part of `cargo test`); `scripts/reliability.sh` runs it at full size with
//! `RELIABILITY_OPERATIONS`, `RELIABILITY_USERS`, `RELIABILITY_WORKERS`,
//! `RELIABILITY_FAULT_FRACTION` and `RELIABILITY_SEED` (printed at the start of every run: a
//! failing run is repeated with the same seed). `RELIABILITY_REPORT` names a file the run's
//! figures are written to as JSON.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activelog::adapters::dynamodb::DynamoDbStore;
use activelog::adapters::eventbridge::EventBridgePublisher;
use activelog::adapters::memory::rules_from_template;
use activelog::adapters::sqs::{DeadLetterQueue, SqsPoller};
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementRecorder, AchievementStore, ActivityService, ActivityStore, ListQuery, Outbox,
    OutboxRelay, StatsStore, StatsUpdater,
};
use activelog::consumer::{AchievementsConsumer, StatsConsumer};
use activelog::domain::{
    Activity, ActivityFacts, Milestone, PeriodKey, Progress, UserId, UserStats,
};
use activelog::http;
use activelog::http::GatewayEventBuilder;
use activelog_tests::fault_proxy::{self, FaultKind, FaultPlan, FaultProxy};
use activelog_tests::http::{TestResponse, api_request};
use activelog_tests::moto::{self, Clients, unique};
use serde_json::json;
use time::{Date, OffsetDateTime};
use tokio::sync::watch;

/// The run's size and fault rate, from the environment or the small defaults.
#[derive(Debug, Clone)]
struct RunSize {
    operations: usize,
    users: usize,
    workers: usize,
    fault_fraction: f64,
    seed: u64,
    /// How often the outbox relay runs (`RELIABILITY_RELAY_INTERVAL_MS`).
    relay_interval: Duration,
}

impl RunSize {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        }
        let fresh_seed = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        Self {
            operations: var("RELIABILITY_OPERATIONS", 80),
            users: var("RELIABILITY_USERS", 6),
            workers: var("RELIABILITY_WORKERS", 3),
            fault_fraction: var("RELIABILITY_FAULT_FRACTION", 0.1),
            seed: var("RELIABILITY_SEED", fresh_seed),
            relay_interval: Duration::from_millis(var("RELIABILITY_RELAY_INTERVAL_MS", 500)),
        }
    }
}

/// A deterministic stream of choices for one worker, from the run's seed.
struct Choices {
    state: u64,
}

impl Choices {
    fn new(seed: u64, worker: usize) -> Self {
        Self {
            state: seed ^ (worker as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
        }
    }

    /// SplitMix64, as the fault proxy draws.
    fn next(&mut self) -> u64 {
        let drawn = fault_proxy::splitmix64(self.state);
        self.state = self.state.wrapping_add(fault_proxy::GOLDEN);
        drawn
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the API told a client about one activity.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Acknowledged (201/200): it exists with these values at this version.
    Live {
        minutes: u32,
        version: u64,
        date: Date,
    },
    /// Acknowledged deleted (204).
    Deleted,
    /// A 5xx: the change may or may not have happened. Either outcome is honest; the activity is
    /// left alone from then on.
    Uncertain,
}

/// One user's activities as the API acknowledged them.
#[derive(Debug, Default)]
struct UserLedger {
    activities: BTreeMap<String, Known>,
    /// Created for sure (acknowledged), with their minutes and distance: progress counts every
    /// created activity, deleted or not.
    created: Vec<(u32, u32)>,
    /// Creates that ended in 5xx: title → (minutes, metres).
    uncertain_creates: BTreeMap<String, (u32, u32)>,
    /// Titles of creates the API refused (4xx): none may exist.
    refused_titles: BTreeSet<String>,
    /// Every activity date used, for the periods to check.
    dates: BTreeSet<Date>,
}

/// Answers and their latencies, over all workers.
#[derive(Debug, Default)]
struct Answers {
    latencies: Vec<Duration>,
    by_status: BTreeMap<u16, u64>,
    /// 5xx answers other than a 503 problem (the honest "try again").
    dishonest: Vec<String>,
}

/// Table, bus, the template's rules and queues; the services over the faulty clients.
struct Stack {
    admin: Clients,
    proxy: FaultProxy,
    table: String,
    /// (queue, dead-letter queue) by logical id.
    queues: BTreeMap<String, (String, String)>,
    service: ActivityService,
    faulty: Clients,
    bus: String,
}

impl Stack {
    async fn new(plan: FaultPlan) -> Self {
        let admin = Clients::new();
        let proxy = FaultProxy::start(&admin.endpoint, plan).await.unwrap();
        let faulty = Clients::with_production_policy(proxy.endpoint());
        let table = unique("reliability");
        admin.create_table(&table).await;
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .unwrap();
        let bus = unique("reliability-bus");
        let mut queues = BTreeMap::new();
        let mut rules = Vec::new();
        for rule in rules_from_template(&template).unwrap() {
            // Short visibility: a batch whose answer was lost comes back within the run.
            let (url, dlq) = admin
                .create_queue_with_dlq(&unique(&rule.target_queue), VISIBILITY_SECONDS, 3)
                .await;
            let arn = admin.queue_arn(&url).await;
            rules.push((unique(&rule.name), rule.event_pattern, arn));
            queues.insert(rule.target_queue, (url, dlq));
        }
        admin.create_bus(&bus, &rules).await;
        let store = DynamoDbStore::new(faulty.dynamodb.clone(), &table);
        let service = ActivityService::new(
            Arc::new(store.clone()),
            Arc::new(store),
            Arc::new(EventBridgePublisher::new(faulty.eventbridge.clone(), &bus)),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        );
        Self {
            admin,
            proxy,
            table,
            queues,
            service,
            faulty,
            bus,
        }
    }

    fn faulty_store(&self) -> DynamoDbStore {
        DynamoDbStore::new(self.faulty.dynamodb.clone(), &self.table)
    }

    fn direct_store(&self) -> DynamoDbStore {
        DynamoDbStore::new(self.admin.dynamodb.clone(), &self.table)
    }

    /// The consumers (two pollers per queue) and the relay, on the faulty clients, until `stop`.
    async fn start_pipeline(
        &self,
        stop: watch::Receiver<bool>,
        relay_interval: Duration,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (name, (url, _)) in &self.queues {
            for _ in 0..2 {
                let store = Arc::new(self.faulty_store());
                let handler: Arc<dyn activelog::consumer::BatchHandler> = match name.as_str() {
                    "StatsQueue" => Arc::new(StatsConsumer::new(StatsUpdater::new(store))),
                    "AchievementsQueue" => {
                        Arc::new(AchievementsConsumer::new(AchievementRecorder::new(
                            store.clone(),
                            store,
                            Arc::new(EventBridgePublisher::new(
                                self.faulty.eventbridge.clone(),
                                &self.bus,
                            )),
                            Arc::new(SystemClock),
                            Arc::new(RandomIds),
                        )))
                    }
                    other => panic!("no consumer for {other}"),
                };
                let poller = loop {
                    // Connecting checks the queue once; a fault there is retried like any start.
                    match SqsPoller::connect(self.faulty.sqs.clone(), url, handler.clone()).await {
                        Ok(poller) => break poller,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                tasks.push(tokio::spawn(
                    poller
                        .with_wait_time(Duration::from_secs(1))
                        .run(stop.clone()),
                ));
            }
        }
        let relay = OutboxRelay::new(
            Arc::new(self.faulty_store()),
            Arc::new(EventBridgePublisher::new(
                self.faulty.eventbridge.clone(),
                &self.bus,
            )),
            Arc::new(SystemClock),
            // As `startup::aws` wires it with `OUTBOX_GRACE_SECONDS=0`: raised to its floor.
            activelog::startup::aws::outbox_grace(time::Duration::ZERO),
        );
        let mut relay_stop = stop;
        tasks.push(tokio::spawn(async move {
            loop {
                // A failed run leaves its records for the next one.
                let _ = relay.relay_pending().await;
                tokio::select! {
                    _ = relay_stop.changed() => break,
                    _ = tokio::time::sleep(relay_interval) => {}
                }
            }
        }));
        tasks
    }
}

/// Long enough that a batch slowed by faults (and by moto, serialised) is rarely redelivered
/// while still being handled; short enough that a lost receive comes back within the run.
const VISIBILITY_SECONDS: u32 = 10;

async fn call(service: &ActivityService, request: GatewayEventBuilder) -> (TestResponse, Duration) {
    let request = request.request().unwrap();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = match method.as_str() {
        "POST" => http::create_activity(service, request).await,
        "PATCH" => http::update_activity(service, request).await,
        "DELETE" => http::delete_activity(service, request).await,
        other => panic!("the run sends no {other}"),
    };
    (TestResponse::from(response), started.elapsed())
}

fn record(answers: &Mutex<Answers>, response: &TestResponse, latency: Duration, what: &str) {
    let mut answers = answers.lock().unwrap();
    answers.latencies.push(latency);
    *answers.by_status.entry(response.status).or_default() += 1;
    if response.status >= 500
        && !(response.status == 503 && response.problem() == Some("service-unavailable"))
    {
        answers
            .dishonest
            .push(format!("{what}: {} {}", response.status, response.text));
    }
}

/// One worker: its users' creates, updates and deletes, one at a time per user, as a client that
/// retries a failed create with its idempotency key would.
async fn worker(
    service: ActivityService,
    users: Vec<String>,
    operations: usize,
    mut choices: Choices,
    run: String,
    answers: Arc<Mutex<Answers>>,
) -> BTreeMap<String, UserLedger> {
    let mut ledgers: BTreeMap<String, UserLedger> = users
        .iter()
        .map(|u| (u.clone(), UserLedger::default()))
        .collect();
    let today = OffsetDateTime::now_utc().date();
    for n in 0..operations {
        let user = users[choices.below(users.len())].clone();
        let ledger = ledgers.get_mut(&user).unwrap();
        let live: Vec<(String, u64)> = ledger
            .activities
            .iter()
            .filter_map(|(id, known)| match known {
                Known::Live { version, .. } => Some((id.clone(), *version)),
                _ => None,
            })
            .collect();
        let roll = choices.below(100);
        let minutes = 10 + choices.below(170) as u32;
        let date = today - time::Duration::days(choices.below(60) as i64);
        if roll < 50 || live.is_empty() {
            // 1 in 20 creates is invalid (a zero duration): the API must refuse it and write nothing.
            let invalid = choices.below(20) == 0;
            let title = format!("{run} {user} #{n}");
            let metres = 1000 * (1 + choices.below(20) as u32);
            let body = json!({
                "type": activelog::domain::ActivityType::ALL[choices.below(8)].as_str(),
                "title": title,
                "duration_minutes": if invalid { 0 } else { minutes },
                "distance_km": f64::from(metres) / 1000.0,
                "activity_date": date.to_string(),
            });
            let key = format!("{run}-{user}-{n}");
            let mut outcome = None;
            // A client that got a 5xx tries again with the same key, as the API asks it to.
            for _attempt in 0..3 {
                let (response, latency) = call(
                    &service,
                    api_request("POST", "/activities")
                        .caller(&user)
                        .header("idempotency-key", &key)
                        .json(&body),
                )
                .await;
                record(&answers, &response, latency, "create");
                outcome = Some(response);
                if outcome.as_ref().unwrap().status < 500 {
                    break;
                }
            }
            let response = outcome.unwrap();
            ledger.dates.insert(date);
            match response.status {
                200 | 201 => {
                    assert!(
                        !invalid,
                        "an invalid create was accepted: {}",
                        response.text
                    );
                    let id = response.body["id"].as_str().unwrap().to_owned();
                    ledger.activities.insert(
                        id,
                        Known::Live {
                            minutes,
                            version: 1,
                            date,
                        },
                    );
                    ledger.created.push((minutes, metres));
                }
                400..=499 => {
                    assert!(invalid, "a valid create was refused: {}", response.text);
                    ledger.refused_titles.insert(title);
                }
                _ => {
                    ledger.uncertain_creates.insert(title, (minutes, metres));
                }
            }
        } else if roll < 80 {
            let (id, version) = &live[choices.below(live.len())];
            let (response, latency) = call(
                &service,
                api_request("PATCH", &format!("/activities/{id}"))
                    .caller(&user)
                    .header("if-match", &format!("\"{version}\""))
                    .json(&json!({"duration_minutes": minutes, "activity_date": date.to_string()})),
            )
            .await;
            record(&answers, &response, latency, "update");
            ledger.dates.insert(date);
            let known = match response.status {
                200 => Known::Live {
                    minutes,
                    version: version + 1,
                    date,
                },
                500..=599 => Known::Uncertain,
                _ => panic!("update of {id} at version {version}: {}", response.text),
            };
            ledger.activities.insert(id.clone(), known);
        } else {
            let (id, version) = &live[choices.below(live.len())];
            let (response, latency) = call(
                &service,
                api_request("DELETE", &format!("/activities/{id}"))
                    .caller(&user)
                    .header("if-match", &format!("\"{version}\"")),
            )
            .await;
            record(&answers, &response, latency, "delete");
            let known = match response.status {
                204 => Known::Deleted,
                500..=599 => Known::Uncertain,
                _ => panic!("delete of {id} at version {version}: {}", response.text),
            };
            ledger.activities.insert(id.clone(), known);
        }
    }
    ledgers
}

/// Every stored activity of a user, read directly from moto.
async fn stored_activities(store: &DynamoDbStore, user: &UserId) -> Vec<Activity> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = ActivityStore::list(
            store,
            user,
            &ListQuery {
                from: None,
                to: None,
                activity_type: None,
                limit: 100,
                after,
            },
        )
        .await
        .unwrap();
        all.extend(page.items.iter().map(|a| Activity::clone(a)));
        match page.next {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

/// Stops injecting and waits until the outbox is empty and every queue and dead-letter queue has
/// drained, redriving dead letters as an operator would. Returns how many were redriven.
async fn settle(stack: &Stack) -> usize {
    stack.proxy.set_injecting(false);
    let store = stack.direct_store();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut redriven = 0;
    let mut quiet_checks = 0;
    let mut last = String::new();
    while quiet_checks < 2 {
        assert!(
            Instant::now() < deadline,
            "the system did not settle within 600 s; last look: {last}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let far = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let pending = store.pending(far, 100).await.unwrap().len();
        let mut quiet = pending == 0;
        last = format!("outbox {pending}");
        for (name, (queue, dlq)) in &stack.queues {
            let depth = stack.admin.queue_depth(queue).await;
            if depth != (0, 0) {
                quiet = false;
            }
            let (dead, _) = stack.admin.queue_depth(dlq).await;
            last += &format!(", {name} {depth:?} dead {dead}");
            if dead > 0 {
                quiet = false;
                redriven += dead;
                DeadLetterQueue::new(stack.admin.sqs.clone(), dlq)
                    .redrive(queue)
                    .await
                    .unwrap();
            }
        }
        quiet_checks = if quiet { quiet_checks + 1 } else { 0 };
    }
    redriven
}

/// The invariants of #14, each counted when it holds; a violation fails the run.
async fn check_invariants(
    stack: &Stack,
    ledgers: &BTreeMap<String, UserLedger>,
    answers: &Answers,
    failed_calls: u64,
) -> usize {
    let store = stack.direct_store();
    let mut checks = 0;
    for (name, ledger) in ledgers {
        let user = UserId::parse(name).unwrap();
        let stored = stored_activities(&store, &user).await;
        let by_id: BTreeMap<String, &Activity> =
            stored.iter().map(|a| (a.id.to_string(), a)).collect();

        // Every acknowledged activity exists as acknowledged; every acknowledged delete is gone.
        for (id, known) in &ledger.activities {
            match known {
                Known::Live {
                    minutes,
                    version,
                    date,
                } => {
                    let activity = by_id
                        .get(id)
                        .unwrap_or_else(|| panic!("acknowledged activity {id} of {name} is lost"));
                    assert_eq!(
                        (
                            activity.duration.get(),
                            activity.version.get(),
                            activity.activity_date.date()
                        ),
                        (*minutes, *version, *date),
                        "{id} of {name} is not as acknowledged"
                    );
                }
                Known::Deleted => {
                    assert!(!by_id.contains_key(id), "deleted {id} of {name} exists")
                }
                Known::Uncertain => {}
            }
            checks += 1;
        }
        // Nothing refused exists; anything not acknowledged is an uncertain create, at most once.
        let mut extra_progress = Progress::default();
        for activity in &stored {
            let id = activity.id.to_string();
            if ledger.activities.contains_key(&id) {
                continue;
            }
            let title = activity.title.as_str();
            assert!(
                !ledger.refused_titles.contains(title),
                "refused create {title:?} exists"
            );
            let Some((minutes, metres)) = ledger.uncertain_creates.get(title) else {
                panic!("{id} of {name} ({title:?}) was never asked for");
            };
            assert_eq!(
                stored.iter().filter(|a| a.title.as_str() == title).count(),
                1,
                "{title:?} was created twice"
            );
            extra_progress.add(&Progress {
                activities: 1,
                minutes: u64::from(*minutes),
                distance_m: u64::from(*metres),
            });
            checks += 1;
        }
        checks += ledger.refused_titles.len();

        // Stats of every period any of the user's activities touched = a recomputation.
        let facts: Vec<ActivityFacts> = stored.iter().map(Activity::facts).collect();
        let mut periods = BTreeSet::new();
        for date in &ledger.dates {
            periods.extend(PeriodKey::containing(*date));
        }
        for period in periods {
            let kept = StatsStore::get(&store, &user, period).await.unwrap();
            assert_eq!(
                kept,
                UserStats::recompute(period, facts.iter()),
                "stats of {name} for {period} differ from a recomputation"
            );
            checks += 1;
        }

        // Progress counts every created activity once; each milestone reached is awarded once.
        // Uncertain creates that did not happen are not stored and count nothing; ones that did
        // happen were never touched again, so they are all in `extra_progress`.
        let standing = AchievementStore::standing(&store, &user).await.unwrap();
        let mut expected = extra_progress;
        for (minutes, metres) in &ledger.created {
            expected.add(&Progress {
                activities: 1,
                minutes: u64::from(*minutes),
                distance_m: u64::from(*metres),
            });
        }
        assert_eq!(standing.progress, expected, "progress of {name}");
        let awarded: Vec<Milestone> = standing.awards.iter().map(|a| a.milestone).collect();
        let unique_awards: BTreeSet<Milestone> = awarded.iter().copied().collect();
        assert_eq!(
            awarded.len(),
            unique_awards.len(),
            "{name} awarded twice: {awarded:?}"
        );
        let reached: BTreeSet<Milestone> = Milestone::reached_by(&expected).collect();
        assert_eq!(unique_awards, reached, "awards of {name}");
        checks += 2;
    }

    // The outbox is empty; queues and dead-letter queues too (after redrive).
    let far = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        stack
            .direct_store()
            .pending(far, 10)
            .await
            .unwrap()
            .is_empty(),
        "outbox not empty"
    );
    checks += 1;
    for (name, (queue, dlq)) in &stack.queues {
        assert_eq!(
            stack.admin.queue_depth(queue).await,
            (0, 0),
            "{name} not drained"
        );
        assert_eq!(
            stack.admin.queue_depth(dlq).await,
            (0, 0),
            "{name} DLQ not empty"
        );
        checks += 2;
    }

    // 5xx only as the honest 503, and never more of them than failed calls: faults injected,
    // and the timeouts moto's own slowness caused (answered past the attempt timeout, or given
    // up on while waiting for it).
    assert!(answers.dishonest.is_empty(), "{:?}", answers.dishonest);
    let server_errors: u64 = answers.by_status.range(500..).map(|(_, n)| n).sum();
    assert!(
        server_errors <= failed_calls,
        "{server_errors} 5xx answers from {failed_calls} failed calls"
    );
    checks += 2;
    checks
}

/// Every `RELIABILITY_MONITOR_SECONDS` (default 30) until dropped, one line on where the time
/// went since the last: AWS calls per second, the table's size, and how long moto took to answer
/// each kind of call (DynamoDB calls reach it one at a time, so theirs add up to moto's DynamoDB
/// time). What shows whether a slow run waits on moto or on activelog.
async fn monitor(stack: &Stack, started: Instant) -> std::convert::Infallible {
    let every = Duration::from_secs(
        std::env::var("RELIABILITY_MONITOR_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let mut before = stack.proxy.counts();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let now = stack.proxy.counts();
        let window = since.elapsed().as_secs_f64();
        let items = stack
            .admin
            .dynamodb
            .describe_table()
            .table_name(&stack.table)
            .send()
            .await
            .ok()
            .and_then(|t| t.table.and_then(|t| t.item_count))
            .unwrap_or(-1);
        let mut spent: Vec<(String, f64, u64)> = now
            .moto_time
            .iter()
            .map(|(operation, spent)| {
                let earlier = before.moto_time.get(operation).copied().unwrap_or_default();
                (
                    operation.clone(),
                    (spent.time - earlier.time).as_secs_f64(),
                    spent.calls - earlier.calls,
                )
            })
            .filter(|(_, seconds, _)| *seconds > 0.0)
            .collect();
        spent.sort_by(|a, b| b.1.total_cmp(&a.1));
        let dynamodb: f64 = spent
            .iter()
            .filter(|(operation, ..)| operation.starts_with("DynamoDB."))
            .map(|(_, seconds, _)| seconds)
            .sum();
        let top: Vec<String> = spent
            .iter()
            .take(6)
            .map(|(operation, seconds, calls)| format!("{operation} {seconds:.1} s/{calls}"))
            .collect();
        eprintln!(
            "reliability monitor t={:.0}s: {:.1} AWS calls/s, {} faults so far, table {items} items, \
             moto on DynamoDB {dynamodb:.1} s of {window:.1} s; {}",
            started.elapsed().as_secs_f64(),
            (now.calls - before.calls) as f64 / window,
            now.faults_total(),
            top.join(", ")
        );
        before = now;
        since = Instant::now();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_at_random_lose_nothing_acknowledged_and_apply_nothing_twice() {
    let size = RunSize::from_env();
    if std::env::var("RELIABILITY_LOG").is_ok() {
        activelog::telemetry::init(activelog::telemetry::LogFormat::Json);
    }
    // Printed first, so that a failing run can be repeated.
    eprintln!(
        "reliability run: {size:?} (repeat with RELIABILITY_SEED={})",
        size.seed
    );
    let _ = moto::endpoint();
    let stack = Stack::new(FaultPlan::even(size.seed, size.fault_fraction)).await;
    let (stop, stopped) = watch::channel(false);
    let pipeline = stack.start_pipeline(stopped, size.relay_interval).await;

    let run = format!("r{}", size.seed % 100_000);
    let users: Vec<String> = (0..size.users).map(|u| format!("{run}-user-{u}")).collect();
    let answers = Arc::new(Mutex::new(Answers::default()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..size.workers {
        let mine: Vec<String> = users
            .iter()
            .enumerate()
            .filter(|(u, _)| u % size.workers == w)
            .map(|(_, user)| user.clone())
            .collect();
        if mine.is_empty() {
            continue;
        }
        let operations =
            size.operations / size.workers + usize::from(w < size.operations % size.workers);
        workers.push(tokio::spawn(worker(
            stack.service.clone(),
            mine,
            operations,
            Choices::new(size.seed, w),
            run.clone(),
            answers.clone(),
        )));
    }
    let mut ledgers = BTreeMap::new();
    let all_done = async {
        for worker in workers {
            ledgers.extend(worker.await.unwrap());
        }
    };
    tokio::select! {
        () = all_done => {}
        never = monitor(&stack, started) => match never {},
    }
    let load_time = started.elapsed();
    let faults = stack.proxy.counts();
    let redriven = tokio::select! {
        redriven = settle(&stack) => redriven,
        never = monitor(&stack, started) => match never {},
    };
    let settle_time = started.elapsed() - load_time;
    let _ = stop.send(true);
    for task in pipeline {
        let _ = task.await;
    }

    let answers = Arc::try_unwrap(answers).unwrap().into_inner().unwrap();
    let failed_calls = faults.faults_total() + faults.abandoned_before_moto + faults.slow_answers;
    let checks = check_invariants(&stack, &ledgers, &answers, failed_calls).await;

    let mut latencies = answers.latencies.clone();
    latencies.sort();
    let requests = latencies.len();
    let report = json!({
        "seed": size.seed,
        "operations": size.operations,
        "requests": requests,
        "answers": answers.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "aws_calls": faults.calls,
        "faults": FaultKind::ALL.iter().map(|k| (k.name().to_owned(), json!(faults.fault(*k)))).collect::<serde_json::Map<_, _>>(),
        "faults_total": faults.faults_total(),
        "abandoned_before_moto": faults.abandoned_before_moto,
        "slow_answers": faults.slow_answers,
        "moto": stack.proxy.counts().moto_time.iter().map(|(operation, spent)| (operation.clone(), json!({"calls": spent.calls, "seconds": spent.time.as_secs_f64()}))).collect::<serde_json::Map<_, _>>(),
        "relay_interval_ms": size.relay_interval.as_millis() as u64,
        "dead_letters_redriven": redriven,
        "invariant_checks_passed": checks,
        "load_seconds": load_time.as_secs_f64(),
        "settle_seconds": settle_time.as_secs_f64(),
        "throughput_per_second": requests as f64 / load_time.as_secs_f64(),
        "p50_ms": percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        "p99_ms": percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
    });
    eprintln!("reliability report: {report}");
    if let Ok(path) = std::env::var("RELIABILITY_REPORT") {
        std::fs::write(path, report.to_string()).unwrap();
    }
    assert!(
        size.fault_fraction == 0.0 || faults.faults_total() > 0,
        "no fault was injected: the run proved nothing"
    );
}

/// The proxy's schedule is a function of its seed: the same seed faults the same calls the same
/// way, another seed differently, and the fraction and every kind show up.
#[test]
fn the_fault_schedule_is_reproducible_from_its_seed() {
    let plan = FaultPlan::even(42, 0.2);
    let first: Vec<_> = (0..10_000).map(|n| plan.decide(n)).collect();
    let again: Vec<_> = (0..10_000).map(|n| plan.decide(n)).collect();
    assert_eq!(first, again);
    let faulted = first.iter().filter(|f| f.is_some()).count();
    assert!((1_800..2_200).contains(&faulted), "{faulted}");
    for kind in FaultKind::ALL {
        assert!(first.contains(&Some(kind)), "{kind} never drawn");
    }
    let other: Vec<_> = (0..10_000)
        .map(|n| FaultPlan::even(43, 0.2).decide(n))
        .collect();
    assert_ne!(first, other);
}

/// Each kind of fault does to the SDK what it claims: throttling and 500s are retried and
/// answered by moto on the next attempt, a stall costs the attempt timeout, a reset and a lost
/// answer are retried — and the lost answer's write happened before the retry.
#[tokio::test]
async fn each_fault_kind_reaches_the_sdk_as_its_kind() {
    let admin = Clients::new();
    let queue = admin.create_queue(&unique("faults"), 30).await;
    for kind in FaultKind::ALL {
        // Every call faulted, always the same way.
        let plan = FaultPlan {
            seed: 1,
            fraction: 1.0,
            mix: vec![(kind, 1)],
            stall: Duration::from_secs(4),
        };
        let proxy = FaultProxy::start(&admin.endpoint, plan).await.unwrap();
        let faulty = Clients::with_production_policy(proxy.endpoint());
        let started = Instant::now();
        let sent = faulty
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(kind.name())
            .send()
            .await;
        let elapsed = started.elapsed();
        // Every attempt is faulted: the call fails after MAX_ATTEMPTS attempts (or the
        // operation timeout), and the error is the kind's.
        assert!(sent.is_err(), "{kind}: {sent:?}");
        let counts = proxy.counts();
        assert_eq!(counts.fault(kind), counts.calls, "{kind}");
        match kind {
            FaultKind::Timeout => {
                assert!(
                    elapsed >= activelog::startup::aws::ATTEMPT_TIMEOUT,
                    "{kind}: {elapsed:?}"
                );
                assert!(elapsed < Duration::from_secs(4), "{kind}: {elapsed:?}");
            }
            _ => assert_eq!(
                counts.calls,
                u64::from(activelog::startup::aws::MAX_ATTEMPTS),
                "{kind}: the SDK retried it"
            ),
        }
        if kind == FaultKind::Throttle || kind == FaultKind::ServerError {
            let error = format!("{:?}", sent.unwrap_err());
            let code = if kind == FaultKind::Throttle {
                "RequestThrottled"
            } else {
                "InternalError"
            };
            assert!(error.contains(code), "{kind}: {error}");
        }
    }
    // Three lost answers wrote three messages; nothing else reached moto.
    let received = admin
        .sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, ["lost-answer"; 3]);
}

/// Found by the run above with the relay at a grace of 0 (a delete answered 404 after it had
/// committed): the DynamoDB adapter recognises a retried transaction that committed on an earlier
/// attempt by its own outbox record, so the relay must leave a record alone until every attempt of
/// its change is over. On DynamoDB it now does, whatever `OUTBOX_GRACE_SECONDS` says.
#[tokio::test]
async fn the_relay_on_dynamodb_leaves_a_record_in_place_until_its_change_can_no_longer_retry() {
    use activelog::application::StoreError;
    use activelog_tests::activity_fixtures::{activity, created_record, user};

    let clients = Clients::new();
    let table = unique("grace");
    clients.create_table(&table).await;
    let bus = unique("grace-bus");
    clients.create_bus(&bus, &[]).await;
    let store = DynamoDbStore::new(clients.dynamodb.clone(), &table);
    let relay = |grace| {
        OutboxRelay::new(
            Arc::new(store.clone()),
            Arc::new(EventBridgePublisher::new(clients.eventbridge.clone(), &bus)),
            Arc::new(SystemClock),
            grace,
        )
    };
    let today = OffsetDateTime::now_utc().date();
    let alice = user("alice");
    let running = activity(&alice, activelog::domain::ActivityType::Running, today, 30);
    ActivityStore::create(&store, &running, &created_record(&running), None)
        .await
        .unwrap();
    // A delete's first attempt commits; its answer is lost.
    let deleted = created_record(&running);
    ActivityStore::delete(&store, &running, &deleted)
        .await
        .unwrap();

    // The relay as `startup::aws` builds it with OUTBOX_GRACE_SECONDS=0 leaves both records...
    let grace = activelog::startup::aws::outbox_grace(time::Duration::ZERO);
    assert!(grace >= time::Duration::seconds(6), "{grace}");
    assert_eq!(relay(grace).relay_pending().await.unwrap().published, 0);
    // ...so the SDK's retry of the same transaction is recognised as committed.
    ActivityStore::delete(&store, &running, &deleted)
        .await
        .unwrap();

    // What a grace of 0 did: the record is taken between the attempts and the retry of a delete
    // that happened is answered "not found".
    assert_eq!(
        relay(time::Duration::ZERO)
            .relay_pending()
            .await
            .unwrap()
            .published,
        2
    );
    assert!(matches!(
        ActivityStore::delete(&store, &running, &deleted).await,
        Err(StoreError::NotFound)
    ));
}
