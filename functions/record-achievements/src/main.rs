//! `record-achievements`: the achievements consumer, triggered by the achievements queue's SQS
//! event source mapping (`ReportBatchItemFailures`). It only wires: the behaviour is
//! `activelog::consumer::AchievementsConsumer`.

use activelog::consumer::{AchievementsConsumer, SqsBatchResponse, SqsEvent};
use activelog::{startup, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(telemetry::LogFormat::Json);
    // Built once per execution environment, reused by every invocation.
    let consumer = AchievementsConsumer::new(startup::achievement_recorder().await?);
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(consumer.handle(event.payload).await)
    }))
    .await
}
