//! End-to-end tests of `activelog-local`: start the real binary on a free loopback port, speak HTTP
//! to it as a user and an operator would, and read its JSON logs. [`LocalStack`] and the flows that
//! end in `_on` are shared: each broker's module runs the same flows through `--broker URL`.

// The helpers below set up a running stack; a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running local stack, killed when dropped.
pub(crate) struct LocalStack {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<Value>>>,
    client: reqwest::Client,
    /// The operator token the stack printed at start (always one with `--aws`); [`Self::call`]
    /// sends it, so the shared flows reach `/_local/` whatever the mode.
    operator_token: Option<String>,
}

impl LocalStack {
    /// Starts the stack on a free port with short queue timings (1 s visibility, 2 receives).
    pub(crate) fn start(relay_interval_secs: u64) -> Self {
        Self::start_with(relay_interval_secs, &[])
    }

    /// [`LocalStack::start`] with more command-line arguments.
    pub(crate) fn start_with(relay_interval_secs: u64, extra: &[&str]) -> Self {
        Self::start_with_env(relay_interval_secs, extra, &[])
    }

    /// [`LocalStack::start_with`] with environment variables too.
    pub(crate) fn start_with_env(
        relay_interval_secs: u64,
        extra: &[&str],
        variables: &[(&str, &str)],
    ) -> Self {
        let relay_interval = relay_interval_secs.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
            .args(["--port", "0", "--visibility-timeout", "1"])
            .args([
                "--max-receive-count",
                "2",
                "--relay-interval",
                &relay_interval,
            ])
            .args(extra)
            .envs(variables.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the activelog-local binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let logs: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                // Stored before the address is handed over, so a test that has the address also
                // finds the listening line in the logs.
                let listening = (entry["message"] == "activelog-local listening")
                    .then(|| entry["address"].as_str().unwrap_or_default().to_owned());
                sink.lock().unwrap().push(entry);
                if let Some(address) = listening {
                    let _ = address_tx.send(address);
                }
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the stack logs its address within 30 s");
        let mut stack = Self {
            child,
            base: format!("http://{address}"),
            logs,
            client: reqwest::Client::new(),
            operator_token: None,
        };
        stack.operator_token = stack
            .log_with_message("activelog-local listening")
            .and_then(|l| l["operator_token"].as_str().map(str::to_owned));
        stack
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        if let Some(token) = &self.operator_token {
            request = request.header("x-activelog-local-token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the stack answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Polls `GET path` as `user` until `accept` holds for the body, for at most 15 s.
    pub(crate) async fn eventually(
        &self,
        path: &str,
        user: Option<&str>,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, body) = self.call(reqwest::Method::GET, path, user, None).await;
            if accept(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never reached the expected state; last body: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the stack did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`, where the stack serves.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The operator token the stack printed at start, when it has one.
    pub(crate) fn operator_token(&self) -> Option<&str> {
        self.operator_token.as_deref()
    }

    pub(crate) fn log_with_message(&self, message: &str) -> Option<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l["message"] == message)
            .cloned()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn activity(activity_type: &str, minutes: u32, km: f64, date: &str) -> Value {
    json!({"type": activity_type, "title": "e2e", "duration_minutes": minutes, "distance_km": km, "activity_date": date})
}

#[tokio::test]
async fn two_users_create_update_delete_and_stats_follow() {
    two_users_create_update_delete_and_stats_follow_on(&LocalStack::start(1)).await;
}

/// A broker's stack says which adapters it runs (`memory+<broker>`), the two-user flow holds
/// through it, and `/_local/queues` lists both consumers' queues with nothing dead-lettered.
pub(crate) async fn the_flows_hold_through_the_broker(stack: &LocalStack, adapters: &str) {
    let listening = stack.log_with_message("activelog-local listening").unwrap();
    assert_eq!(listening["adapters"], adapters);
    two_users_create_update_delete_and_stats_follow_on(stack).await;
    let (_, depths) = stack
        .call(reqwest::Method::GET, "/_local/queues", None, None)
        .await;
    assert_eq!(depths["StatsQueue"]["dead_lettered"], 0, "{depths}");
    assert!(depths["AchievementsQueue"].is_object(), "{depths}");
}

/// Starts the binary with `--broker url` and expects it to refuse to start within `within` (no
/// hang); returns its logs for the caller to read what it said.
pub(crate) fn refused_start_logs(url: &str, within: Duration) -> String {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
        .args(["--port", "0", "--broker", url])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it must not start");
    assert!(started.elapsed() < within, "no hang");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Two users create, update and delete; each sees only their own activities and the stats
/// follow. The same flow runs on every transport the local stack offers.
pub(crate) async fn two_users_create_update_delete_and_stats_follow_on(stack: &LocalStack) {
    use reqwest::Method;

    let (status, run) = stack
        .call(
            Method::POST,
            "/activities",
            Some("alice"),
            Some(activity("running", 30, 5.0, "2026-11-02")),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let (_, ride) = stack
        .call(
            Method::POST,
            "/activities",
            Some("alice"),
            Some(activity("cycling", 60, 20.5, "2026-11-03")),
        )
        .await;
    let (_, swim) = stack
        .call(
            Method::POST,
            "/activities",
            Some("bob"),
            Some(activity("swimming", 45, 1.5, "2026-10-30")),
        )
        .await;
    let (_, walk) = stack
        .call(
            Method::POST,
            "/activities",
            Some("bob"),
            Some(activity("walking", 20, 2.0, "2026-11-01")),
        )
        .await;

    let ride_id = ride["id"].as_str().unwrap();
    let (status, updated) = stack
        .call(
            Method::PATCH,
            &format!("/activities/{ride_id}"),
            Some("alice"),
            Some(json!({"duration_minutes": 90})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let walk_id = walk["id"].as_str().unwrap();
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/activities/{walk_id}"),
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(status, 204);

    // Cross-user requests look exactly like requests for ids that do not exist.
    let run_id = run["id"].as_str().unwrap();
    for method in [Method::GET, Method::DELETE] {
        let (status, problem) = stack
            .call(method, &format!("/activities/{run_id}"), Some("bob"), None)
            .await;
        assert_eq!(status, 404, "{problem}");
    }
    let (status, _) = stack
        .call(
            Method::PATCH,
            &format!("/activities/{run_id}"),
            Some("bob"),
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = stack.call(Method::GET, "/activities", None, None).await;
    assert_eq!(status, 401, "no identity, no access");

    let alice = stack
        .eventually("/stats?period=all", Some("alice"), |b| {
            b["totals"]["activities"] == 2 && b["totals"]["duration_minutes"] == 120
        })
        .await;
    assert_eq!(alice["totals"]["distance_km"], 25.5, "{alice}");
    let bob = stack
        .eventually("/stats?period=all", Some("bob"), |b| {
            b["totals"]["activities"] == 1
        })
        .await;
    assert_eq!(bob["totals"]["duration_minutes"], 45, "{bob}");
    let bob_november = stack
        .eventually("/stats?period=month&date=2026-11-15", Some("bob"), |b| {
            b["totals"]["activities"] == 0
        })
        .await;
    assert_eq!(
        bob_november["totals"]["duration_minutes"], 0,
        "the deleted walk no longer counts: {bob_november}"
    );
    let (_, bob_list) = stack
        .call(Method::GET, "/activities", Some("bob"), None)
        .await;
    let ids: Vec<&str> = bob_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![swim["id"].as_str().unwrap()],
        "bob sees only his own remaining activity"
    );
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_can_be_redriven() {
    a_poison_message_is_dead_lettered_and_can_be_redriven_on(
        &LocalStack::start(1),
        |dead| {
            assert_eq!(
                dead["receive_count"], 2,
                "dead-lettered after maxReceiveCount receives"
            );
        },
        true,
    )
    .await;
}

/// A poison message sent straight to the stats queue is dead-lettered without holding up a good
/// event, listed, redriven, and dead-lettered again (it is still poison). `why_dead_lettered`
/// checks what the transport says of the dead letter; `empty_after_redrive` whether the
/// dead-letter queue is seen empty right after the redrive (in memory the message is hidden for a
/// visibility timeout first; a broker rejects it again within milliseconds).
pub(crate) async fn a_poison_message_is_dead_lettered_and_can_be_redriven_on(
    stack: &LocalStack,
    why_dead_lettered: impl Fn(&Value),
    empty_after_redrive: bool,
) {
    use reqwest::Method;

    let (status, sent) = stack
        .call(
            Method::POST,
            "/_local/queues/StatsQueue/messages",
            None,
            Some(json!({"not": "an EventBridge event"})),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    // A good event flowing at the same time is not held up by the poison one.
    let (status, _) = stack
        .call(
            Method::POST,
            "/activities",
            Some("carol"),
            Some(activity("yoga", 50, 0.0, "2026-11-20")),
        )
        .await;
    assert_eq!(status, 201);
    stack
        .eventually("/stats?period=all", Some("carol"), |b| {
            b["totals"]["activities"] == 1
        })
        .await;

    let dead = stack
        .eventually("/_local/queues/StatsQueue/dead-letters", None, |b| {
            b["messages"].as_array().is_some_and(|m| m.len() == 1)
        })
        .await;
    assert_eq!(dead["messages"][0]["message_id"], sent["message_id"]);
    why_dead_lettered(&dead["messages"][0]);

    let (status, redriven) = stack
        .call(
            Method::POST,
            "/_local/queues/StatsQueue/redrive",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!((status, redriven["redriven"].clone()), (200, json!(1)));
    if empty_after_redrive {
        let (_, depths) = stack.call(Method::GET, "/_local/queues", None, None).await;
        assert_eq!(depths["StatsQueue"]["dead_lettered"], 0, "{depths}");
    }
    // Still poison: it fails its receives again and returns to the dead-letter queue.
    stack
        .eventually("/_local/queues/StatsQueue/dead-letters", None, |b| {
            b["messages"].as_array().is_some_and(|m| m.len() == 1)
        })
        .await;
    let (status, _) = stack
        .call(
            Method::POST,
            "/_local/queues/NoSuchQueue/redrive",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn one_dead_letter_is_redriven_by_its_id_and_the_other_stays() {
    one_dead_letter_is_redriven_by_its_id_on(&LocalStack::start(1)).await;
}

/// Two poison messages are dead-lettered; `POST /_local/queues/StatsQueue/dead-letters/{id}/redrive`
/// moves the one named back to the queue, where the consumer reads it again (the queue's poison
/// verdicts go up: it is still poison), and leaves the other where it is, not read again. An id
/// the dead letters do not hold is `404`. (That the named one leaves the dead letters is the
/// conformance suite's to show, with a message that then succeeds: a broker dead-letters this
/// poison again within milliseconds, under the same id.)
pub(crate) async fn one_dead_letter_is_redriven_by_its_id_on(stack: &LocalStack) {
    use reqwest::Method;

    let mut ids = Vec::new();
    for poison in ["first", "second"] {
        let (status, sent) = stack
            .call(
                Method::POST,
                "/_local/queues/StatsQueue/messages",
                None,
                Some(json!({"poison": poison})),
            )
            .await;
        assert_eq!(status, 200, "{sent}");
        ids.push(sent["message_id"].as_str().unwrap().to_owned());
    }
    let listed = |body: &Value, id: &str| {
        body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["message_id"] == id))
    };
    stack
        .eventually("/_local/queues/StatsQueue/dead-letters", None, |b| {
            listed(b, &ids[0]) && listed(b, &ids[1])
        })
        .await;
    let poison_verdicts = |snapshot: &Value| {
        snapshot["counters"]["queues"]["StatsQueue"]["poison"]
            .as_u64()
            .unwrap_or(0)
    };
    let verdicts_of = |journey: &Value| {
        journey["entries"]
            .as_array()
            .map_or(0, |e| e.iter().filter(|e| e["step"] == "verdict").count())
    };
    let (_, before) = stack
        .call(Method::GET, "/_local/journal/counters", None, None)
        .await;
    let other_journey = format!("/_local/journal?id={}", ids[1]);
    let (_, other_before) = stack.call(Method::GET, &other_journey, None, None).await;

    let one = format!("/_local/queues/StatsQueue/dead-letters/{}/redrive", ids[0]);
    let (status, answer) = stack.call(Method::POST, &one, None, Some(json!({}))).await;
    assert_eq!(
        (status, answer["redriven"].clone()),
        (200, json!(1)),
        "{answer}"
    );
    stack
        .eventually("/_local/journal/counters", None, |b| {
            poison_verdicts(b) > poison_verdicts(&before)
        })
        .await;
    let (_, after) = stack
        .call(
            Method::GET,
            "/_local/queues/StatsQueue/dead-letters",
            None,
            None,
        )
        .await;
    assert!(listed(&after, &ids[1]), "the other stays: {after}");
    let (_, other_after) = stack.call(Method::GET, &other_journey, None, None).await;
    assert_eq!(
        verdicts_of(&other_after),
        verdicts_of(&other_before),
        "the other was not read again: {other_after}"
    );

    let unknown = "/_local/queues/StatsQueue/dead-letters/no-such-dead-letter/redrive";
    let (status, answer) = stack
        .call(Method::POST, unknown, None, Some(json!({})))
        .await;
    assert_eq!(status, 404, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_work_in_flight_loses_no_accepted_activity_or_event() {
    // A long relay interval: whatever the HTTP path does not publish, only the drain can.
    let mut stack = LocalStack::start(3600);
    let stack_ref = &stack;
    let accepted = Arc::new(Mutex::new(0usize));
    let mut requests = Vec::new();
    for i in 0..60u32 {
        let client = stack_ref.client.clone();
        let url = format!("{}/activities", stack_ref.base);
        let accepted = accepted.clone();
        requests.push(tokio::spawn(async move {
            let body = activity("running", 1 + i, 1.0, "2026-11-10");
            if let Ok(response) = client
                .post(url)
                .header("x-user-id", "dave")
                .json(&body)
                .send()
                .await
                && response.status().as_u16() == 201
            {
                *accepted.lock().unwrap() += 1;
            }
        }));
    }
    // The signal arrives while most requests are still in flight: some finish, the rest are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while *accepted.lock().unwrap() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stack_ref.terminate();
    for request in requests {
        let _ = request.await;
    }
    let status = stack.wait_for_exit(Duration::from_secs(30));
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    std::thread::sleep(Duration::from_millis(200));
    let summary = stack
        .log_with_message("shutdown complete")
        .expect("a shutdown summary is logged");
    let accepted = *accepted.lock().unwrap();
    eprintln!("accepted {accepted} of 60 requests around SIGTERM; summary: {summary}");
    assert!(
        accepted > 0,
        "some requests were accepted before the signal"
    );
    assert_eq!(
        summary["activities"],
        json!(accepted),
        "every accepted activity is stored: {summary}"
    );
    assert_eq!(
        summary["outbox_pending"], 0,
        "every event left the outbox: {summary}"
    );
    assert_eq!(
        summary["counted_activities"],
        json!(accepted),
        "every event reached the stats: {summary}"
    );
}

/// DNS rebinding: a page whose name resolves to 127.0.0.1 reaches the server with its own name
/// in `Host`. Only localhost and IP literals are served, on the API and `/_local/` alike.
/// An open console (its live stream never ends by itself) does not hold up a graceful shutdown.
#[tokio::test]
async fn sigterm_with_a_console_following_still_stops() {
    let mut stack = LocalStack::start(1);
    let stream = stack
        .client
        .get(format!("{}/_local/journal/stream", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    stack.terminate();
    let status = stack.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    drop(stream);
}

#[tokio::test]
async fn requests_for_foreign_host_names_are_refused() {
    let stack = LocalStack::start(1);
    for path in ["/activities", "/_local/queues"] {
        for (host, expected) in [
            ("attacker.example", 403),
            ("attacker.example:3000", 403),
            ("localhost.attacker.example", 403),
            ("localhost:3000", 200),
            ("127.0.0.1", 200),
            ("[::1]:3000", 200),
        ] {
            let response = stack
                .client
                .get(format!("{}{path}", stack.base))
                .header("host", host)
                .header("x-user-id", "dana")
                .send()
                .await
                .expect("the stack answers");
            assert_eq!(
                response.status().as_u16(),
                expected,
                "{path} with Host {host}"
            );
        }
    }
}

/// A cross-site form or `text/plain` POST needs no preflight; a JSON one does, and the local
/// server grants none. So operator POSTs must be declared JSON.
#[tokio::test]
async fn operator_posts_must_be_declared_json() {
    let stack = LocalStack::start(1);
    let url = format!("{}/_local/queues/StatsQueue/redrive", stack.base);
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = stack.client.post(&url).body("{}");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("the stack answers");
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
    }
    let response = stack
        .client
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .expect("the stack answers");
    assert_eq!(response.status().as_u16(), 200);
}

/// With a token (always so with `--aws`), `/_local/` answers only requests that carry it; the
/// public API is unaffected.
#[tokio::test]
async fn a_token_guards_the_operator_endpoints() {
    let stack = LocalStack::start_with(1, &["--operator-token", "per-run-secret"]);
    let listening = stack
        .log_with_message("activelog-local listening")
        .expect("the listening line");
    assert_eq!(
        listening["operator_token"], "per-run-secret",
        "printed at start"
    );
    let get = |token: Option<&str>| {
        let mut request = stack.client.get(format!("{}/_local/queues", stack.base));
        if let Some(token) = token {
            request = request.header("x-activelog-local-token", token);
        }
        request.send()
    };
    assert_eq!(get(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        get(Some("per-run-secreT")).await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        get(Some("per-run-secret")).await.unwrap().status().as_u16(),
        200
    );
    let (status, _) = stack
        .call(reqwest::Method::GET, "/activities", Some("dana"), None)
        .await;
    assert_eq!(status, 200);
}

/// `--aws` drives real queues: it must not listen beyond this machine. Refused before any AWS call.
#[test]
fn aws_mode_refuses_a_non_loopback_bind() {
    let output = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
        .args(["--aws", "--bind", "0.0.0.0", "--port", "0"])
        .env("RUST_LOG", "info")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("refusing to bind 0.0.0.0"),
        "says why: {stdout}"
    );
}
