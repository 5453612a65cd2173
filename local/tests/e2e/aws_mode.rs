//! `activelog-local --aws` against moto on loopback: the same binary, the real SDK adapters, the
//! queues long-polled as a Lambda event source mapping would — the third way the brief promises
//! the code runs. Table, bus, rules (read from template.yaml) and queues are created here first,
//! as `sam deploy` would.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use activelog::adapters::memory::rules_from_template;
use activelog_tests::fault_proxy::{FaultPlan, FaultProxy};
use activelog_tests::moto::{self, Clients, unique};
use serde_json::{Value, json};

pub(crate) struct Running {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    user: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(user) = user {
        request = request.header("x-user-id", user);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => panic!("the stack does not answer: {error}"),
    };
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn eventually(
    client: &reqwest::Client,
    url: String,
    user: Option<&str>,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = call(client, reqwest::Method::GET, url.clone(), user, None).await;
        if accept(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never reached the expected state; last: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `sam deploy` would have created, on moto: table, bus, the template's rules and queues.
pub(crate) struct AwsResources {
    endpoint: String,
    table: String,
    bus: String,
    /// (queue URL, dead-letter queue URL) by logical id.
    queues: std::collections::BTreeMap<String, (String, String)>,
}

impl AwsResources {
    /// Queues with `visibility_seconds` and a dead-letter queue after `max_receive_count`.
    pub(crate) async fn create(
        clients: &Clients,
        visibility_seconds: u32,
        max_receive_count: u32,
    ) -> Self {
        let table = unique("activelog");
        let bus = unique("activelog-bus");
        clients.create_table(&table).await;
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
                .unwrap();
        let mut queues = std::collections::BTreeMap::new();
        let mut rules = Vec::new();
        for rule in rules_from_template(&template).unwrap() {
            let (url, dlq) = clients
                .create_queue_with_dlq(
                    &unique(&rule.target_queue),
                    visibility_seconds,
                    max_receive_count,
                )
                .await;
            let arn = clients.queue_arn(&url).await;
            rules.push((unique(&rule.name), rule.event_pattern, arn));
            queues.insert(rule.target_queue, (url, dlq));
        }
        clients.create_bus(&bus, &rules).await;
        Self {
            endpoint: clients.endpoint.clone(),
            table,
            bus,
            queues,
        }
    }

    /// The environment `activelog-local --aws` reads these resources from.
    pub(crate) fn environment(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", moto::REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("TABLE_NAME", self.table.as_str()),
            ("EVENT_BUS_NAME", self.bus.as_str()),
            ("CURSOR_SECRET", "a-local-cursor-secret-of-32-bytes-or-more"),
            ("OUTBOX_GRACE_SECONDS", "0"),
            ("STATS_QUEUE_URL", self.queues["StatsQueue"].0.as_str()),
            ("STATS_DLQ_URL", self.queues["StatsQueue"].1.as_str()),
            (
                "ACHIEVEMENTS_QUEUE_URL",
                self.queues["AchievementsQueue"].0.as_str(),
            ),
            (
                "ACHIEVEMENTS_DLQ_URL",
                self.queues["AchievementsQueue"].1.as_str(),
            ),
        ]
    }

    /// Starts `activelog-local --aws` on these resources; returns it with its operator token.
    pub(crate) fn start(&self) -> (Running, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
            .args(["--aws", "--port", "0", "--relay-interval", "1"])
            .envs(self.environment())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("activelog-local starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "activelog-local listening"
                {
                    let _ = tx.send((
                        entry["address"].as_str().unwrap_or_default().to_owned(),
                        entry["operator_token"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
            }
        });
        let (address, token) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the stack listens");
        (
            Running {
                child,
                base: format!("http://{address}"),
            },
            token,
        )
    }
}

/// A client that sends the operator token.
fn operator_client(token: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::HeaderName::from_static("x-activelog-local-token"),
            reqwest::header::HeaderValue::from_str(token).unwrap(),
        )]))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_runs_on_aws_adapters_against_moto() {
    let clients = Clients::at(&moto::endpoint());
    let resources = AwsResources::create(&clients, 1, 2).await;
    let (running, token) = resources.start();
    assert_eq!(
        token.len(),
        40,
        "--aws prints a fresh operator token at start"
    );
    let url = |path: &str| format!("{}{path}", running.base);
    let anonymous = reqwest::Client::new();
    let response = anonymous.get(url("/_local/queues")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401, "/_local/ needs the token");
    let client = operator_client(&token);

    let (status, created) = call(
        &client,
        reqwest::Method::POST,
        url("/activities"),
        Some("erin"),
        Some(json!({"type": "hiking", "title": "Ridge", "duration_minutes": 240, "distance_km": 14.2, "activity_date": "2026-11-21"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let stats = eventually(&client, url("/stats?period=all"), Some("erin"), |b| {
        b["totals"]["activities"] == 1
    })
    .await;
    assert_eq!(stats["totals"]["distance_km"], 14.2, "{stats}");
    eventually(&client, url("/achievements"), Some("erin"), |b| {
        b["achievements"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["achievement"] == "first_activity"))
    })
    .await;

    // A poison message reaches the real dead-letter queue and is redriven through /_local/.
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        url("/_local/queues/StatsQueue/messages"),
        None,
        Some(json!({"poison": true})),
    )
    .await;
    assert_eq!(status, 200);
    eventually(&client, url("/_local/queues"), None, |b| {
        b["StatsQueue"]["dead_lettered"] == 1
    })
    .await;
    let (_, letters) = call(
        &client,
        reqwest::Method::GET,
        url("/_local/queues/StatsQueue/dead-letters"),
        None,
        None,
    )
    .await;
    assert_eq!(
        letters["messages"][0]["body"],
        json!({"poison": true}).to_string(),
        "{letters}"
    );
    let (status, redriven) = call(
        &client,
        reqwest::Method::POST,
        url("/_local/queues/StatsQueue/redrive"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{redriven}");
    assert!(
        redriven["redriven"] == 1 || redriven["move_task"].is_string(),
        "{redriven}"
    );
}

/// A row's Redrive with `--aws`: the SQS dead-letter queue gives back the one message named by
/// the id its listing shows (received until it turns up, sent to the stats queue, deleted), the
/// other stays and is not read again, and an unknown id is 404 — the same flow as in memory and
/// on each broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aws_on_moto_one_dead_letter_is_redriven_by_its_id_and_the_other_stays() {
    let clients = Clients::at(&moto::endpoint());
    let resources = AwsResources::create(&clients, 1, 2).await;
    let stack =
        crate::local_stack::LocalStack::start_with_env(1, &["--aws"], &resources.environment());
    assert!(
        stack.operator_token().is_some(),
        "--aws prints an operator token, which the flow's calls send"
    );
    crate::local_stack::one_dead_letter_is_redriven_by_its_id_on(&stack).await;
}

/// Issue #14, process faults: the stack killed with SIGKILL (no drain, no shutdown hook) in the
/// middle of a load, then started again on the same moto table and queues. Everything the API
/// acknowledged before the kill is there, and once the restarted relay and the queues have caught
/// up every user's statistics and achievement progress count each stored activity exactly once:
/// events whose publish the kill cut off wait in the DynamoDB outbox, batches it interrupted come
/// back after their visibility timeout. (In memory, a SIGKILL loses everything — store, outbox and
/// queues live in the process — so this is proven only where the data is kept.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_load_loses_nothing_the_api_acknowledged() {
    use std::sync::{Arc, Mutex};

    let clients = Clients::at(&moto::endpoint());
    // Visibility past a batch's worst case on a loaded machine, so only the kill returns messages.
    let mut resources = AwsResources::create(&clients, 5, 5).await;
    // The stack reaches moto through the fault proxy injecting nothing: it serialises DynamoDB
    // calls, which moto's transaction rollback needs under concurrency (see its `dynamodb_gate`).
    let proxy = FaultProxy::start(&resources.endpoint, FaultPlan::even(0, 0.0))
        .await
        .unwrap();
    resources.endpoint = proxy.endpoint().to_owned();
    let (first, _) = resources.start();
    let users: Vec<String> = (0..4).map(|u| unique(&format!("kill-{u}"))).collect();
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let unanswered: Arc<Mutex<usize>> = Arc::default();
    // Creates answered 503: the honest answer when DynamoDB did not answer in time on a loaded
    // machine. Not acknowledged, and (a timeout after the write) possibly stored.
    let unavailable: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for user in users.clone() {
        let (base, acknowledged, unanswered, unavailable) = (
            first.base.clone(),
            acknowledged.clone(),
            unanswered.clone(),
            unavailable.clone(),
        );
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0.. {
                let sent = client
                    .post(format!("{base}/activities"))
                    .header("x-user-id", &user)
                    .json(&json!({"type": "running", "title": format!("run {n}"), "duration_minutes": 30, "activity_date": "2026-11-21"}))
                    .send()
                    .await;
                let Ok(response) = sent else {
                    // The kill: this request may or may not have been written.
                    *unanswered.lock().unwrap() += 1;
                    return;
                };
                if response.status().as_u16() == 503 {
                    unavailable.lock().unwrap().push(user.clone());
                    continue;
                }
                assert_eq!(response.status().as_u16(), 201);
                let body: Value = response.json().await.unwrap();
                let id = body["id"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().push((user.clone(), id));
            }
        }));
    }
    // Mid-load: after some creates were acknowledged and their events are on their way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    for task in load {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let unanswered = *unanswered.lock().unwrap();

    let (second, token) = resources.start();
    let client = operator_client(&token);
    let url = |path: &str| format!("{}{path}", second.base);
    // The restarted relay publishes what the kill left in the outbox.
    let store = activelog::adapters::dynamodb::DynamoDbStore::new(
        clients.dynamodb.clone(),
        &resources.table,
    );
    let far = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending = activelog::application::Outbox::pending(&store, far, 10)
            .await
            .unwrap();
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted relay left {} records in the outbox: {:?}",
            pending.len(),
            pending
                .iter()
                .map(|r| (r.event_id, r.occurred_at))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Messages the killed process held come back after their visibility timeout; on a loaded
    // machine some reach their receive limit first and wait in a dead-letter queue, which is what
    // the operator redrives. So: every acknowledged activity is stored; then the queues drain,
    // dead letters redriven; then each stored activity is counted once by both consumers.
    let mut stored_counts = Vec::new();
    for user in &users {
        let mine: Vec<&String> = acknowledged
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, id)| id)
            .collect();
        let listing = eventually(&client, url("/activities?limit=100"), Some(user), |b| {
            b["items"].as_array().is_some()
        })
        .await;
        let stored: Vec<&str> = listing["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect();
        for id in &mine {
            assert!(
                stored.contains(&id.as_str()),
                "acknowledged {id} of {user} was lost"
            );
        }
        let answered_503 = unavailable
            .lock()
            .unwrap()
            .iter()
            .filter(|u| *u == user)
            .count();
        assert!(
            stored.len() <= mine.len() + 1 + answered_503,
            "{user}: {} stored, {} acknowledged, {answered_503} answered 503, at most one in flight",
            stored.len(),
            mine.len()
        );
        eprintln!(
            "sigkill: {user}: {} stored, {} acknowledged",
            stored.len(),
            mine.len()
        );
        stored_counts.push((user.clone(), stored.len()));
    }
    // Queues drained; dead letters redriven, as an operator would, until none are left.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while quiet < 2 {
        assert!(Instant::now() < deadline, "the queues did not drain");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, depths) = call(
            &client,
            reqwest::Method::GET,
            url("/_local/queues"),
            None,
            None,
        )
        .await;
        let mut idle = true;
        for queue in ["StatsQueue", "AchievementsQueue"] {
            let depth = &depths[queue];
            if depth["visible"] != 0 || depth["in_flight"] != 0 {
                idle = false;
            }
            if depth["dead_lettered"] != 0 {
                idle = false;
                let (_, letters) = call(
                    &client,
                    reqwest::Method::GET,
                    url(&format!("/_local/queues/{queue}/dead-letters")),
                    None,
                    None,
                )
                .await;
                eprintln!("sigkill: redriving {queue} dead letters: {letters}");
                call(
                    &client,
                    reqwest::Method::POST,
                    url(&format!("/_local/queues/{queue}/redrive")),
                    None,
                    Some(json!({})),
                )
                .await;
            }
        }
        quiet = if idle { quiet + 1 } else { 0 };
    }
    for (user, count) in &stored_counts {
        let count = *count;
        eventually(&client, url("/stats?period=all"), Some(user), |b| {
            b["totals"]["activities"] == count
        })
        .await;
        eventually(&client, url("/achievements"), Some(user), |b| {
            b["progress"]["activities"] == count
        })
        .await;
    }
    assert!(
        activelog::application::Outbox::pending(&store, far, 10)
            .await
            .unwrap()
            .is_empty(),
        "the outbox is empty once the relay caught up"
    );
    // Stats stay put: a second look after more relay runs and polls finds the same counts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for user in &users {
        let (_, stats) = call(
            &client,
            reqwest::Method::GET,
            url("/stats?period=all"),
            Some(user),
            None,
        )
        .await;
        let (_, listing) = call(
            &client,
            reqwest::Method::GET,
            url("/activities?limit=100"),
            Some(user),
            None,
        )
        .await;
        assert_eq!(
            stats["totals"]["activities"].as_u64(),
            listing["items"].as_array().map(|a| a.len() as u64),
            "{user}: applied once"
        );
    }
    eprintln!(
        "sigkill: {} acknowledged before the kill, {unanswered} cut off by it",
        acknowledged.len()
    );
}
