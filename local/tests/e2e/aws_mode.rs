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
use activelog_tests::moto::{self, Clients, unique};
use serde_json::{Value, json};

struct Running {
    child: Child,
    base: String,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_runs_on_aws_adapters_against_moto() {
    let endpoint = moto::endpoint();
    let clients = Clients::at(&endpoint);
    let table = unique("activelog");
    let bus = unique("activelog-bus");
    clients.create_table(&table).await;
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let mut queues = std::collections::BTreeMap::new();
    let mut rules = Vec::new();
    for rule in rules_from_template(&template).unwrap() {
        let (url, dlq) = clients
            .create_queue_with_dlq(&unique(&rule.target_queue), 1, 2)
            .await;
        let arn = clients.queue_arn(&url).await;
        rules.push((unique(&rule.name), rule.event_pattern, arn));
        queues.insert(rule.target_queue, (url, dlq));
    }
    clients.create_bus(&bus, &rules).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
        .args(["--aws", "--port", "0", "--relay-interval", "1"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", moto::REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("TABLE_NAME", &table)
        .env("EVENT_BUS_NAME", &bus)
        .env("CURSOR_SECRET", "a-local-cursor-secret-of-32-bytes-or-more")
        .env("OUTBOX_GRACE_SECONDS", "0")
        .env("STATS_QUEUE_URL", &queues["StatsQueue"].0)
        .env("STATS_DLQ_URL", &queues["StatsQueue"].1)
        .env("ACHIEVEMENTS_QUEUE_URL", &queues["AchievementsQueue"].0)
        .env("ACHIEVEMENTS_DLQ_URL", &queues["AchievementsQueue"].1)
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
    assert_eq!(
        token.len(),
        40,
        "--aws prints a fresh operator token at start"
    );
    let running = Running {
        child,
        base: format!("http://{address}"),
    };
    let url = |path: &str| format!("{}{path}", running.base);
    let anonymous = reqwest::Client::new();
    let response = anonymous.get(url("/_local/queues")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401, "/_local/ needs the token");
    let client = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::HeaderName::from_static("x-activelog-local-token"),
            reqwest::header::HeaderValue::from_str(&token).unwrap(),
        )]))
        .build()
        .unwrap();

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
