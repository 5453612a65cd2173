//! `relay-outbox`: run every minute by an EventBridge schedule, publishes the outbox records the
//! HTTP functions could not publish themselves and removes them once the bus has them. Wiring
//! only; the work is `activelog::relay::run` (which stops before the invocation's deadline and
//! reports the relay's metrics).

use activelog::application::RelayReport;
use activelog::relay;
use activelog::telemetry::LogFormat;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(LogFormat::Json, "relay-outbox");
    let outbox_relay = activelog::startup::outbox_relay().await?;
    let outbox_relay = &outbox_relay;
    // Any JSON starts a run: the schedule's event carries nothing the relay needs, so a test's
    // or an operator's hand-made event must not be refused for its shape.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            tracing::info!(schedule_event = ?event.payload.get("id"), time = ?event.payload.get("time"), "relay run");
            let deadline = relay::deadline_from_epoch_ms(event.context.deadline);
            // A failed run is an invocation error (alarmed); the next tick tries again.
            let report: RelayReport = relay::run(outbox_relay, deadline).await?;
            Ok::<_, Error>(report)
        },
    ))
    .await
}
