//! `redrive-eventbridge-dlq <queue url>`: sends the events in the EventBridge rules' dead-letter
//! queue (`EventBridgeDeadLetterQueueUrl` output) back to the queues their rules target, once the
//! cause is fixed. SQS's own redrive cannot do this (the messages did not come from an SQS queue).
//! Region, credentials and `AWS_ENDPOINT_URL` come from the usual AWS environment.

use activelog::adapters::sqs::DeadLetterQueue;
use activelog::telemetry::{self, LogFormat};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init(LogFormat::Pretty);
    let Some(queue_url) = std::env::args().nth(1) else {
        eprintln!("usage: redrive-eventbridge-dlq <EventBridgeDeadLetterQueueUrl>");
        std::process::exit(2);
    };
    let client = aws_sdk_sqs::Client::new(activelog::startup::aws::sdk_config().await);
    let outcome = DeadLetterQueue::new(client, &queue_url)
        .redrive_to_targets()
        .await?;
    println!(
        "redriven to their target queues: {}; relay ticks settled: {}; left for a person: {}",
        outcome.redriven, outcome.settled, outcome.left
    );
    Ok(())
}
