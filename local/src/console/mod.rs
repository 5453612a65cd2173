//! The console: a page in the browser that shows the local stack's pipeline live, follows one
//! event through it, lists and redrives dead letters, and shows a user's statistics — and the
//! JSON it reads, under `/_local/journal`, so that everything the page does is a `curl` away.
//!
//! - `journal.rs` keeps the pipeline's recent past (a bounded ring) and its counters;
//! - `recording.rs` holds the recording twins of the ports that write it;
//! - `page.rs` serves the page itself, compiled into the binary, at `/_console/`.
//!
//! The page is public (it holds no data and no secret); everything it shows comes from
//! `/_local/` with the operator protections (`access.rs`). In `--aws` mode the browser sends the
//! operator token in the same header as curl: the page takes it from the URL's fragment (which a
//! browser never sends to a server) or asks for it, and keeps it for the tab only.

mod journal;
mod page;
mod recording;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

pub use journal::{DEFAULT_CAPACITY, Journal};
pub use page::{PATH as PAGE_PATH, routes as page_routes};
pub use recording::{
    RecordingActivityStore, RecordingBatchHandler, RecordingPublisher, RecordingStatsStore,
};

use crate::json_response::json_response;
use crate::operator::Operator;
use journal::{EventIds, Record, Step};

/// Entries `GET /_local/journal` answers when no `limit` is given.
const DEFAULT_LIMIT: usize = 200;

/// How often the live stream looks at the counters and depths (and sends them if they moved).
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// Depths younger than this are answered again instead of asking the transport: however many
/// consoles are open, the queues' depths are asked for about once a second (on a broker each
/// asking is a connection, with `--aws` three SQS calls per queue).
const DEPTHS_REUSED_FOR: Duration = Duration::from_millis(900);

#[derive(Clone)]
struct ConsoleState {
    journal: Arc<Journal>,
    operator: Arc<dyn Operator>,
    /// The latest depths and when they were asked for; the lock also makes concurrent askers
    /// wait for one call to the transport instead of each making their own.
    latest: Arc<tokio::sync::Mutex<Option<(Instant, Value)>>>,
}

/// The journal's endpoints, to be nested under `/_local` (behind the operator protections):
///
/// - `GET /journal?id=ID` — the journey of an activity, event, correlation or message id, oldest
///   first; without `id`, the latest `limit` entries;
/// - `GET /journal/counters` — counters per edge and the queues' depths;
/// - `GET /journal/dead-letters/{queue}` — the queue's dead letters with why each failed;
/// - `GET /journal/stream` — server-sent events: `entry` for each new entry, `counters` when
///   the counters or depths move.
pub fn operator_routes<S: Clone + Send + Sync + 'static>(
    journal: Arc<Journal>,
    operator: Arc<dyn Operator>,
) -> Router<S> {
    Router::new()
        .route("/journal", get(search))
        .route("/journal/counters", get(counters))
        .route("/journal/dead-letters/{queue}", get(dead_letters))
        .route("/journal/stream", get(stream))
        .with_state(ConsoleState {
            journal,
            operator,
            latest: Arc::default(),
        })
}

#[derive(serde::Deserialize)]
struct SearchQuery {
    id: Option<String>,
    limit: Option<usize>,
}

async fn search(
    State(state): State<ConsoleState>,
    Query(query): Query<SearchQuery>,
) -> Response<Body> {
    let entries = match query.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => state.journal.journey(id),
        _ => state.journal.latest(
            query
                .limit
                .unwrap_or(DEFAULT_LIMIT)
                .min(journal::MAX_ANSWERED),
        ),
    };
    json_response(StatusCode::OK, json!({ "entries": entries }))
}

impl ConsoleState {
    /// Counters and depths; a transport that cannot say its depths now says why instead.
    async fn snapshot(&self) -> Value {
        json!({
            "adapters": self.journal.adapters(),
            "counters": self.journal.counters(),
            "queues": self.depths().await,
        })
    }

    /// The queues' depths, asked of the transport at most about once a second.
    async fn depths(&self) -> Value {
        let mut latest = self.latest.lock().await;
        if let Some((taken, depths)) = latest.as_ref()
            && taken.elapsed() < DEPTHS_REUSED_FOR
        {
            return depths.clone();
        }
        let depths = match self.operator.depths().await {
            Ok(depths) => depths,
            Err(error) => json!({ "error": error.to_string() }),
        };
        *latest = Some((Instant::now(), depths.clone()));
        depths
    }
}

async fn counters(State(state): State<ConsoleState>) -> Response<Body> {
    json_response(StatusCode::OK, state.snapshot().await)
}

async fn dead_letters(
    State(state): State<ConsoleState>,
    Path(queue): Path<String>,
) -> Response<Body> {
    let listed = match state.operator.dead_letters(&queue).await {
        Ok(listed) => listed,
        Err(error) => return crate::operator::error_response(error),
    };
    let messages: Vec<Value> = listed["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|message| explained(&state.journal, message))
        .collect();
    json_response(StatusCode::OK, json!({ "messages": messages }))
}

/// A dead letter as the transport listed it, with the consumer's last verdict on it and why:
/// what the journal recorded, else what the consumer would say of the body now.
fn explained(journal: &Journal, mut message: Value) -> Value {
    let id = message["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let body = message["body"].as_str().unwrap_or_default().to_owned();
    let verdict = journal.last_verdict(&id, &body);
    let why = verdict
        .as_ref()
        .and_then(|v| v.detail["reason"].as_str().map(str::to_owned))
        .or_else(|| {
            activelog::consumer::read_event(Some(&body))
                .err()
                .map(|poison| poison.to_string())
        })
        .unwrap_or_else(|| "it kept failing until the delivery limit".to_owned());
    message["verdict"] = verdict.as_ref().map_or(Value::Null, |v| json!(v.outcome));
    message["why"] = json!(why);
    if message["receive_count"].is_null() {
        message["receive_count"] = message["delivery_count"].clone();
    }
    if message["receive_count"].is_null() {
        message["receive_count"] =
            verdict.map_or(Value::Null, |v| v.detail["receive_count"].clone());
    }
    message
}

async fn stream(
    State(state): State<ConsoleState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let follower = Follower {
        live: state.journal.follow(),
        closing: state.journal.closing(),
        ticks: tokio::time::interval(COUNTERS_EVERY),
        last_sent: Value::Null,
        state,
    };
    let events = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next_event().await?;
        Some((Ok(event), follower))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One browser's live view: each new entry as it is recorded, and the counters when they move.
struct Follower {
    live: tokio::sync::broadcast::Receiver<journal::JournalEntry>,
    closing: tokio::sync::watch::Receiver<bool>,
    ticks: tokio::time::Interval,
    last_sent: Value,
    state: ConsoleState,
}

impl Follower {
    async fn next_event(&mut self) -> Option<Event> {
        // Closed before this follower started (the only change a journal's `closing` makes).
        if *self.closing.borrow() {
            return None;
        }
        loop {
            tokio::select! {
                // The stack is stopping: the stream ends, so the graceful shutdown can finish.
                _ = self.closing.changed() => return None,
                received = self.live.recv() => return match received {
                    Ok(entry) => Some(json_event("entry", &entry)),
                    // A slow reader missed entries: it says so and reloads the journal itself.
                    Err(RecvError::Lagged(missed)) => {
                        Some(Event::default().event("lagged").data(missed.to_string()))
                    }
                    Err(RecvError::Closed) => None,
                },
                _ = self.ticks.tick() => {
                    let snapshot = self.state.snapshot().await;
                    if snapshot != self.last_sent {
                        self.last_sent = snapshot.clone();
                        return Some(json_event("counters", &snapshot));
                    }
                }
            }
        }
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Event::default().event(name).data(data)
}

/// The largest response body the request recorder reads to find a created activity's id.
const RECORDED_BODY_LIMIT: usize = 256 * 1024;

/// Records each API request that changes something (POST, PUT, PATCH, DELETE) with its status,
/// the activity it is about and its correlation id: the first step of an event's journey. Reads
/// cause no event and are left out; the console's own paths and `/_local/` too.
pub async fn record_changes(
    State(journal): State<Arc<Journal>>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let reads = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let arrived = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    if reads || path.starts_with("/_local") || path.starts_with("/_console") {
        return next.run(request).await;
    }
    let user = request
        .headers()
        .get(crate::gateway::USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    let correlation_id = response
        .headers()
        .get(activelog::http::CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (response, activity_id) = match path.strip_prefix("/activities/") {
        Some(id) => (response, Some(id.to_owned())),
        None if status == StatusCode::CREATED => created_id(response).await,
        None => (response, None),
    };
    journal.record(
        Step::Request,
        Record {
            at: Some(arrived),
            place: format!("{method} {path}"),
            outcome: status.as_u16().to_string(),
            ok: status.is_success(),
            ids: EventIds {
                activity_id,
                correlation_id,
                ..EventIds::default()
            },
            detail: json!({
                "user_id": user,
                "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
            }),
            message_id: None,
        },
        |c| c.requests += 1,
    );
    response
}

/// The `id` of the activity a create answered with, and the response rebuilt around its body.
async fn created_id(response: Response<Body>) -> (Response<Body>, Option<String>) {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, RECORDED_BODY_LIMIT).await {
        Ok(bytes) => {
            let id = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            (Response::from_parts(parts, Body::from(bytes)), id)
        }
        Err(_) => (
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "response body unreadable",
            )
                .into_response(),
            None,
        ),
    }
}
