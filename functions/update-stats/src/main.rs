//! `update-stats`: the stats consumer, triggered by the stats queue's SQS event source mapping
//! (`ReportBatchItemFailures`). It only wires: the behaviour is `activelog::consumer::StatsConsumer`.

use activelog::consumer::{SqsBatchResponse, SqsEvent, StatsConsumer};
use activelog::{startup, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(telemetry::LogFormat::Json);
    // Built once per execution environment, reused by every invocation.
    let consumer = StatsConsumer::new(startup::stats_updater().await?);
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(consumer.handle(event.payload).await)
    }))
    .await
}
