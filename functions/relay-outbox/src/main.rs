//! `relay-outbox`: run every minute by an EventBridge schedule, publishes the outbox records the
//! HTTP functions could not publish themselves and removes them once the bus has them. Wiring
//! only; the work is `activelog::relay::run` (which stops before the invocation's deadline and
//! reports the relay's metrics).

use activelog::application::RelayReport;
use activelog::relay;
use activelog::telemetry::{self, LogFormat};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let outbox_relay = activelog::startup::outbox_relay().await?;
    let outbox_relay = &outbox_relay;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            tracing::info!(schedule_event = ?event.payload.id, time = ?event.payload.time, "relay run");
            let deadline = relay::deadline_from_epoch_ms(event.context.deadline);
            // A failed run is an invocation error (alarmed); the next tick tries again.
            let report: RelayReport = relay::run(outbox_relay, deadline).await?;
            Ok::<_, Error>(report)
        },
    ))
    .await
}
