//! The load and the checks after it, both through the public API as a client sees it: concurrent
//! users creating, updating and deleting their activities, each remembering what the API
//! acknowledged; then, once `/_local/queues` shows the pipeline idle, every acknowledged activity
//! is read back and every user's statistics and achievements compared with a recomputation from
//! the activities the API lists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What one user's client saw acknowledged.
#[derive(Debug, Default)]
pub struct UserLedger {
    /// id → `Some(version)` if live at that version, `None` if acknowledged deleted.
    pub activities: BTreeMap<String, Option<u64>>,
    /// Activities the API acknowledged creating: achievements count each once, deleted or not.
    pub created: u64,
    pub created_minutes: u64,
}

/// Answers of one load run.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub latencies: Vec<Duration>,
    pub by_status: BTreeMap<u16, u64>,
    /// Connection failures: no answer at all.
    pub unanswered: u64,
    pub ledgers: BTreeMap<String, UserLedger>,
}

impl LoadOutcome {
    pub fn merge(&mut self, other: LoadOutcome) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
        self.unanswered += other.unanswered;
        self.ledgers.extend(other.ledgers);
    }
}

/// SplitMix64: a seeded stream of choices, one per user, so a run's requests repeat.
pub struct Choices(u64);

impl Choices {
    pub fn new(seed: u64, user: usize) -> Self {
        Self(seed ^ (user as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TYPES: [&str; 8] = [
    "running", "cycling", "swimming", "walking", "hiking", "strength", "yoga", "other",
];

/// One user's `requests` requests, one at a time: half creates, then updates and deletes of what
/// it created, each with the version it was last told (`If-Match`). `ledger` is what the user was
/// told before (empty for a new user). With a `working_set`, a user that already has that many
/// live activities deletes one where it would have created one, so its activities, and the
/// statistics periods they touch, stay bounded however long the load runs. With
/// [`Mix::CreatesOnly`] every request is a create, with the same choices of body.
pub async fn user_load(
    client: reqwest::Client,
    base: String,
    user: String,
    mut ledger: UserLedger,
    requests: usize,
    mix: Mix,
    mut choices: Choices,
) -> LoadOutcome {
    let (working_set, creates_only) = match mix {
        Mix::Mixed { working_set } => (working_set, false),
        Mix::CreatesOnly => (None, true),
    };
    let mut outcome = LoadOutcome::default();
    let today = time::OffsetDateTime::now_utc().date();
    for _ in 0..requests {
        let live: Vec<(String, u64)> = ledger
            .activities
            .iter()
            .filter_map(|(id, v)| v.map(|v| (id.clone(), v)))
            .collect();
        let roll = choices.below(100);
        let minutes = 10 + choices.below(170) as u64;
        let date = (today - time::Duration::days(choices.below(60) as i64)).to_string();
        let full = working_set.is_some_and(|cap| live.len() >= cap);
        let (request, kind) = if (roll < 50 && !full) || live.is_empty() || creates_only {
            let body = json!({
                "type": TYPES[choices.below(TYPES.len())],
                "title": format!("load {user}"),
                "duration_minutes": minutes,
                "distance_km": 1 + choices.below(20),
                "activity_date": date,
            });
            (
                client.post(format!("{base}/activities")).json(&body),
                Kind::Create,
            )
        } else if (50..80).contains(&roll) {
            let (id, version) = live[choices.below(live.len())].clone();
            (
                client
                    .patch(format!("{base}/activities/{id}"))
                    .header("if-match", format!("\"{version}\""))
                    .json(&json!({"duration_minutes": minutes})),
                Kind::Update(id),
            )
        } else {
            let (id, version) = live[choices.below(live.len())].clone();
            (
                client
                    .delete(format!("{base}/activities/{id}"))
                    .header("if-match", format!("\"{version}\"")),
                Kind::Delete(id),
            )
        };
        let started = Instant::now();
        let response = request.header("x-user-id", &user).send().await;
        let Ok(response) = response else {
            outcome.unanswered += 1;
            continue;
        };
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        outcome.latencies.push(started.elapsed());
        *outcome.by_status.entry(status).or_default() += 1;
        match (kind, status) {
            (Kind::Create, 201) => {
                if let Some(id) = body["id"].as_str() {
                    ledger.activities.insert(id.to_owned(), Some(1));
                    ledger.created += 1;
                    ledger.created_minutes += minutes;
                }
            }
            (Kind::Update(id), 200) => {
                let version = body["version"].as_u64();
                ledger.activities.insert(id, version);
            }
            (Kind::Delete(id), 204) => {
                ledger.activities.insert(id, None);
            }
            // Anything else is counted by status and judged by the caller; the ledger keeps only
            // what was acknowledged.
            _ => {}
        }
    }
    outcome.ledgers.insert(user, ledger);
    outcome
}

/// What a user's requests are.
#[derive(Debug, Clone, Copy)]
pub enum Mix {
    /// Creates, updates and deletes (see [`user_load`]), within a working set when one is given.
    Mixed { working_set: Option<usize> },
    /// Creates only: the create throughput.
    CreatesOnly,
}

enum Kind {
    Create,
    Update(String),
    Delete(String),
}

/// Waits until every queue shows nothing visible, in flight or dead-lettered (or `limit` passes).
pub async fn wait_until_idle(
    client: &reqwest::Client,
    base: &str,
    limit: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut quiet = 0;
    while quiet < 2 {
        if started.elapsed() > limit {
            return Err(format!("the pipeline was not idle after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let depths: Value = client
            .get(format!("{base}/_local/queues"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let idle = depths.as_object().is_some_and(|queues| {
            queues.values().all(|q| {
                // A transport that does not report a count (RabbitMQ has no in-flight
                // figure) is judged by the ones it reports; the checks then allow for the rest.
                ["visible", "in_flight", "dead_lettered"]
                    .iter()
                    .all(|k| q.get(*k).is_none_or(|v| v.as_u64() == Some(0)))
            })
        });
        quiet = if idle { quiet + 1 } else { 0 };
    }
    Ok(started.elapsed())
}

/// One failed invariant, said plainly.
pub type Violation = String;

async fn get_json(
    client: &reqwest::Client,
    url: String,
    user: &str,
) -> Result<(u16, Value), String> {
    let response = client
        .get(&url)
        .header("x-user-id", user)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Every activity the API lists for `user`, following the cursor.
async fn listed(client: &reqwest::Client, base: &str, user: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/activities?limit=100&cursor={c}"),
            None => format!("{base}/activities?limit=100"),
        };
        let (status, page) = get_json(client, url, user).await?;
        if status != 200 {
            return Err(format!("listing {user}: {status} {page}"));
        }
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}

/// The invariants, checked through the public API; returns (checks passed, violations).
pub async fn check(
    client: &reqwest::Client,
    base: &str,
    ledgers: &BTreeMap<String, UserLedger>,
) -> Result<(u64, Vec<Violation>), String> {
    let mut passed = 0;
    let mut violations = Vec::new();
    let mut verdict = |ok: bool, what: String| {
        if ok {
            passed += 1;
        } else {
            violations.push(what);
        }
    };
    for (user, ledger) in ledgers {
        for (id, known) in &ledger.activities {
            let (status, body) = get_json(client, format!("{base}/activities/{id}"), user).await?;
            match known {
                Some(version) => verdict(
                    status == 200 && body["version"].as_u64() == Some(*version),
                    format!("{user}: acknowledged {id} at version {version}, read {status} {body}"),
                ),
                None => verdict(
                    status == 404,
                    format!("{user}: acknowledged deleting {id}, read {status}"),
                ),
            }
        }
        let items = listed(client, base, user).await?;
        let listed_ids: BTreeSet<&str> = items.iter().filter_map(|a| a["id"].as_str()).collect();
        let live: BTreeSet<&str> = ledger
            .activities
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(id, _)| id.as_str())
            .collect();
        verdict(
            listed_ids == live,
            format!(
                "{user}: lists {} activities, {} acknowledged live",
                listed_ids.len(),
                live.len()
            ),
        );
        let minutes: u64 = items
            .iter()
            .filter_map(|a| a["duration_minutes"].as_u64())
            .sum();
        let metres: u64 = items
            .iter()
            .filter_map(|a| a["distance_km"].as_f64())
            .map(|km| (km * 1000.0).round() as u64)
            .sum();
        // Stats and progress may trail by what a transport delivered but had not settled when
        // it looked idle: a few seconds' grace before a difference counts.
        let settled_by = Instant::now() + Duration::from_secs(10);
        let (stats_match, totals) = loop {
            let (_, stats) = get_json(client, format!("{base}/stats?period=all"), user).await?;
            let totals = stats["totals"].clone();
            let kept_metres = totals["distance_km"]
                .as_f64()
                .map(|km| (km * 1000.0).round() as u64);
            let matches = totals["activities"].as_u64() == Some(items.len() as u64)
                && totals["duration_minutes"].as_u64() == Some(minutes)
                && kept_metres == Some(metres);
            if matches || Instant::now() > settled_by {
                break (matches, totals);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        verdict(
            stats_match,
            format!(
                "{user}: stats {totals} differ from the listing ({} activities, {minutes} min, {metres} m)",
                items.len()
            ),
        );
        let (progress_match, standing) = loop {
            let (_, standing) = get_json(client, format!("{base}/achievements"), user).await?;
            let progress = &standing["progress"];
            let matches = progress["activities"].as_u64() == Some(ledger.created)
                && progress["duration_minutes"].as_u64() == Some(ledger.created_minutes);
            if matches || Instant::now() > settled_by {
                break (matches, standing);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let progress = &standing["progress"];
        verdict(
            progress_match,
            format!(
                "{user}: progress {progress}, {} created with {} min",
                ledger.created, ledger.created_minutes
            ),
        );
        let awarded: Vec<&str> = standing["achievements"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["achievement"].as_str()).collect())
            .unwrap_or_default();
        let unique: BTreeSet<&str> = awarded.iter().copied().collect();
        verdict(
            unique.len() == awarded.len(),
            format!("{user}: awarded twice: {awarded:?}"),
        );
    }
    Ok((passed, violations))
}
