//! `get-stats`: `GET /stats`. Builds the statistics queries once per execution environment and
//! hands every request to `activelog::http::get_stats`.

use activelog::telemetry::{self, LogFormat};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let stats = activelog::startup::stats_queries().await?;
    lambda_http::run(service_fn(|request: Request| async {
        Ok::<_, Error>(activelog::http::get_stats(&stats, request).await)
    }))
    .await
}
