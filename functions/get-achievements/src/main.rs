//! `get-achievements`: `GET /achievements`. Builds the achievement queries once per execution
//! environment and hands every request to `activelog::http::get_achievements`.

use activelog::telemetry::{self, LogFormat};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let achievements = activelog::startup::achievement_queries().await?;
    lambda_http::run(service_fn(|request: Request| async {
        Ok::<_, Error>(activelog::http::get_achievements(&achievements, request).await)
    }))
    .await
}
