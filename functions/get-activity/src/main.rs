//! `get-activity`: one route of the HTTP API. Builds the activity read use cases (by id: no bus, no cursor secret) once per execution
//! environment and hands every request to `activelog::http::get_activity`.

use activelog::startup::ReadScope;
use activelog::telemetry::LogFormat;
use lambda_http::{Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(LogFormat::Json, "get-activity");
    let service = activelog::startup::activity_queries(ReadScope::ById).await?;
    // Our own event conversion, not lambda_http::run: its conversion panics on some events.
    activelog::http::run_on_lambda(|request: Request| {
        activelog::http::get_activity(&service, request)
    })
    .await
}
