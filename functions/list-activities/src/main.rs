//! `list-activities`: one route of the HTTP API. Builds the activity read use cases (listing: no bus) once per execution
//! environment and hands every request to `activelog::http::list_activities`.

use activelog::startup::ReadScope;
use activelog::telemetry::{self, LogFormat};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let service = activelog::startup::activity_queries(ReadScope::Listing).await?;
    lambda_http::run(service_fn(|request: Request| async {
        Ok::<_, Error>(activelog::http::list_activities(&service, request).await)
    }))
    .await
}
