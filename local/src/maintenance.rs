//! Operator endpoints for the projections, under `/_local/` beside the queue endpoints:
//! `POST /_local/replay` replays a window of the in-memory bus archive to one consumer's queue,
//! and `POST /_local/rebuild/stats` rebuilds the statistics from the stored activities — the use
//! cases `activelog-admin` runs against AWS, here on the in-memory stack. Where a stack has no
//! archive (`--aws`, where the admin command is the way, and the brokers, see
//! `docs/operations.md`) they answer 501.

use std::sync::Arc;
use std::time::Duration;

use activelog::application::{
    ActivitySource, ArchiveReplay, Checkpoint, EventArchive, PageReport, RebuildRunner,
    RebuildSettings, ReplayRequest, ReplayState, RunObserver, RunSettings, StatsRebuild,
    UserRebuild,
};
use activelog::domain::UserId;
use activelog::functions::ConsumerFunction;
use activelog::startup::InMemoryStack;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::json_response::json_response;

/// What the endpoints run on: the bus archive and the statistics rebuild over the stack.
#[derive(Clone)]
pub struct Maintenance {
    archive: Arc<dyn EventArchive>,
    source: Arc<dyn ActivitySource>,
    stats: StatsRebuild,
}

impl Maintenance {
    pub fn in_memory(stack: &InMemoryStack) -> Self {
        Self {
            archive: stack.bus.clone(),
            source: stack.activity_store.clone(),
            stats: StatsRebuild::new(
                stack.activity_store.clone(),
                stack.stats_store.clone(),
                stack.clock.clone(),
            ),
        }
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(maintenance: Option<Maintenance>) -> Router<S> {
    Router::new()
        .route("/replay", post(replay))
        .route("/rebuild/stats", post(rebuild_stats))
        .with_state(maintenance)
}

fn refused(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json_response(status, json!({"message": message.into()}))
}

fn unavailable() -> Response<Body> {
    refused(
        StatusCode::NOT_IMPLEMENTED,
        "no archive or rebuild in this mode: use activelog-admin (docs/operations.md)",
    )
}

fn time_field(body: &Value, name: &str) -> Result<OffsetDateTime, String> {
    body.get(name)
        .and_then(Value::as_str)
        .and_then(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok())
        .ok_or_else(|| format!("`{name}` must be an RFC 3339 time"))
}

/// `{"consumer": "update-stats", "from": "…", "to": "…", "name"?: "…"}` → the replay's outcome.
async fn replay(State(maintenance): State<Option<Maintenance>>, body: Bytes) -> Response<Body> {
    let Some(maintenance) = maintenance else {
        return unavailable();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "the body must be JSON");
    };
    let consumer = body
        .get("consumer")
        .and_then(Value::as_str)
        .and_then(|name| ConsumerFunction::ALL.into_iter().find(|c| c.name() == name));
    let Some(consumer) = consumer else {
        return refused(
            StatusCode::BAD_REQUEST,
            "`consumer` must be update-stats or record-achievements",
        );
    };
    let (from, to) = match (time_field(&body, "from"), time_field(&body, "to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(message), _) | (_, Err(message)) => {
            return refused(StatusCode::BAD_REQUEST, message);
        }
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-{}", consumer.name(), ulid::Ulid::new()));
    let request = ReplayRequest {
        name: name.clone(),
        consumer,
        from,
        to,
    };
    match ArchiveReplay::new(maintenance.archive)
        .run(&request, Duration::from_millis(100), |_, _| {})
        .await
    {
        Ok(progress) => json_response(
            StatusCode::OK,
            json!({
                "name": name,
                "consumer": consumer.name(),
                "state": match progress.state {
                    ReplayState::Completed => "completed".to_owned(),
                    other => format!("{other:?}"),
                },
                "events": progress.events,
            }),
        ),
        Err(error) => refused(StatusCode::BAD_REQUEST, error.to_string()),
    }
}

/// No checkpoint to keep: a local rebuild is quick, and runs again from the start.
struct Discard;

impl RunObserver for Discard {
    fn page_done(&self, _segment: u32, _scanned: usize, _report: &PageReport) {}
    fn checkpoint(&self, _checkpoint: &Checkpoint) -> Result<(), String> {
        Ok(())
    }
}

/// `{"users"?: ["alice"], "dry_run"?: false, "settle_ms"?: 1000}` → what the rebuild did.
async fn rebuild_stats(
    State(maintenance): State<Option<Maintenance>>,
    body: Bytes,
) -> Response<Body> {
    let Some(maintenance) = maintenance else {
        return unavailable();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "the body must be JSON");
    };
    let users: Result<Vec<UserId>, _> = body
        .get("users")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|u| UserId::parse(u.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or(Ok(Vec::new()));
    let Ok(users) = users else {
        return refused(StatusCode::BAD_REQUEST, "`users` must be user ids");
    };
    let settings = RunSettings {
        segments: 2,
        page_items: 100,
        rate: None,
        rebuild: RebuildSettings {
            settle: Duration::from_millis(
                body.get("settle_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(1000),
            ),
            attempts: 5,
            // Writers and rebuild share this process's clock.
            max_clock_skew: Duration::ZERO,
            dry_run: body
                .get("dry_run")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
    };
    let runner = RebuildRunner::new(maintenance.source, Arc::new(maintenance.stats));
    let outcome = if users.is_empty() {
        runner
            .run_all(
                &settings,
                Checkpoint::new("stats", settings.segments),
                Arc::new(Discard),
            )
            .await
            .map(|summary| (Vec::new(), summary))
    } else {
        runner
            .run_users(&users, &settings)
            .await
            .map(|(report, summary)| (report.users, summary))
    };
    match outcome {
        Ok((reports, summary)) => {
            let corrected: Vec<Value> = reports
                .iter()
                .filter_map(|(user, outcome)| match outcome {
                    UserRebuild::Corrected(differences) => Some(json!({
                        "user": user.as_str(),
                        "periods": differences.iter().map(|d| d.period.to_string()).collect::<Vec<_>>(),
                    })),
                    _ => None,
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({
                    "dry_run": settings.rebuild.dry_run,
                    "users": summary.users,
                    "corrected": summary.corrected,
                    "unchanged": summary.unchanged,
                    "busy": summary.busy.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                    "differences": corrected,
                }),
            )
        }
        Err(error) => refused(StatusCode::BAD_GATEWAY, error.to_string()),
    }
}
