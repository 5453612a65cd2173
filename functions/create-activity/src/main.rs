//! `create-activity`: one route of the HTTP API. Builds the activity use cases once per execution
//! environment and hands every request to `activelog::http::create_activity`.

use activelog::telemetry::LogFormat;
use lambda_http::{Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(LogFormat::Json, "create-activity");
    let service = activelog::startup::activity_service().await?;
    // Our own event conversion, not lambda_http::run: its conversion panics on some events.
    activelog::http::run_on_lambda(|request: Request| {
        activelog::http::create_activity(&service, request)
    })
    .await
}
