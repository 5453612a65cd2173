//! `record-achievements`: the achievements consumer, triggered by the achievements queue's SQS
//! event source mapping (`ReportBatchItemFailures`), or by an Amazon MQ for RabbitMQ queue
//! (`template-amazon-mq.yaml`; no partial batch response: see `activelog::consumer::amazon_mq`). It
//! only wires: the behaviour is `activelog::consumer::AchievementsConsumer`.

use activelog::consumer::AchievementsConsumer;
use activelog::consumer::trigger::{self, Trigger};
use activelog::{startup, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    activelog::traces::init(telemetry::LogFormat::Json, "record-achievements");
    // Built once per execution environment, reused by every invocation.
    let consumer = AchievementsConsumer::new(startup::achievement_recorder().await?);
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Trigger>| async move {
        trigger::answer(consumer, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
