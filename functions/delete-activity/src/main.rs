//! `delete-activity`: one route of the HTTP API. Builds the activity use cases once per execution
//! environment and hands every request to `activelog::http::delete_activity`.

use activelog::telemetry::{self, LogFormat};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let service = activelog::startup::activity_service().await?;
    lambda_http::run(service_fn(|request: Request| async {
        Ok::<_, Error>(activelog::http::delete_activity(&service, request).await)
    }))
    .await
}
