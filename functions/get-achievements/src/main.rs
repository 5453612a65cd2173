//! `get-achievements`: `GET /achievements`. Builds the achievement queries once per execution
//! environment and hands every request to `activelog::http::get_achievements`.

use activelog::telemetry::LogFormat;
use lambda_http::{Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(LogFormat::Json, "get-achievements");
    let achievements = activelog::startup::achievement_queries().await?;
    // Our own event conversion, not lambda_http::run: its conversion panics on some events.
    activelog::http::run_on_lambda(|request: Request| {
        activelog::http::get_achievements(&achievements, request)
    })
    .await
}
