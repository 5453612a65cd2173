//! `list-activities`: one route of the HTTP API. Builds the activity read use cases (listing: no bus) once per execution
//! environment and hands every request to `activelog::http::list_activities`.

use activelog::startup::ReadScope;
use activelog::telemetry::LogFormat;
use lambda_http::{Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(LogFormat::Json, "list-activities");
    let service = activelog::startup::activity_queries(ReadScope::Listing).await?;
    // Our own event conversion, not lambda_http::run: its conversion panics on some events.
    activelog::http::run_on_lambda(|request: Request| {
        activelog::http::list_activities(&service, request)
    })
    .await
}
