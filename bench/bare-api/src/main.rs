//! The yardstick of the local stack's create throughput (issue 15): axum on a loopback port, on
//! the same runtime as `activelog-local`, answering `POST /activities` as the stack does: it reads
//! the caller from `x-user-id`, reads the JSON body into a typed value, and answers 201 with the
//! activity's JSON (a new ULID, the caller, the fields, version 1, two timestamps) and its
//! `Location`. Nothing is validated beyond the types, stored, logged or published. What the stack
//! spends on a create beyond this endpoint's time is activelog's own: the gateway event, the
//! handler, the store and outbox, the relay and the consumers behind it.
//!
//! It logs its address as `activelog-local` does (`{"message":"… listening","address":…}` on
//! stdout), so `load-bench` starts either the same way.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Parser)]
#[command(name = "bare-api")]
struct Options {
    /// The loopback port; 0 takes a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// The body `load-bench` sends, read as the stack's API reads it (`openapi.yaml`, NewActivity),
/// and written back in the answer.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NewActivity {
    #[serde(rename = "type")]
    activity_type: String,
    title: String,
    description: Option<String>,
    notes: Option<String>,
    duration_minutes: u32,
    distance_km: Option<f64>,
    calories_burned: Option<u32>,
    #[serde(default)]
    tags: Vec<String>,
    activity_date: String,
}

/// The answer, with the fields of the stack's `Activity`.
#[derive(Debug, Serialize)]
struct Activity {
    id: String,
    user_id: String,
    #[serde(flatten)]
    fields: NewActivity,
    version: u64,
    created_at: String,
    updated_at: String,
}

async fn create(headers: HeaderMap, Json(new): Json<NewActivity>) -> Response {
    let Some(user_id) = headers
        .get("x-user-id")
        .and_then(|value| value.to_str().ok())
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let activity = Activity {
        id: ulid::Ulid::new().to_string(),
        user_id: user_id.to_owned(),
        fields: new,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let location = format!("/activities/{}", activity.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(activity),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let options = Options::parse();
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
    println!(
        "{}",
        serde_json::json!({"message": "bare-api listening", "address": listener.local_addr()?.to_string()})
    );
    let app = Router::new().route("/activities", post(create));
    axum::serve(listener, app).await
}
