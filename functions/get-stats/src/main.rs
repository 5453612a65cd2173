//! `get-stats`: `GET /stats`. Builds the statistics queries once per execution environment and
//! hands every request to `activelog::http::get_stats`.

use activelog::telemetry::LogFormat;
use lambda_http::{Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(LogFormat::Json, "get-stats");
    let stats = activelog::startup::stats_queries().await?;
    // Our own event conversion, not lambda_http::run: its conversion panics on some events.
    activelog::http::run_on_lambda(|request: Request| activelog::http::get_stats(&stats, request))
        .await
}
