//! `--aws`: the same local stack on the real AWS adapters. Region, credentials and endpoint come
//! from the usual AWS environment (so `AWS_ENDPOINT_URL` points it at a local AWS-protocol server
//! such as moto); resource names from the variables the functions read (`TABLE_NAME`,
//! `EVENT_BUS_NAME`, `CURSOR_SECRET`) plus the queue URLs a Lambda event source mapping would know
//! (`STATS_QUEUE_URL`, `ACHIEVEMENTS_QUEUE_URL` and their `*_DLQ_URL`). The consumers are fed by
//! long-polling the queues as an event source mapping does; the outbox relay runs on a timer, as
//! its schedule does in AWS (in an account where relay-outbox is deployed too, both relaying is
//! harmless: consumers deduplicate).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use activelog::adapters::aws_call;
use activelog::adapters::sqs::{DeadLetterQueue, RedriveOutcome, SqsPoller};
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{AchievementRecorder, EventPublisher, OutboxRelay, StatsUpdater};
use activelog::configuration::{
    ACHIEVEMENTS_DLQ_URL, ACHIEVEMENTS_QUEUE_URL, STATS_DLQ_URL, STATS_QUEUE_URL, Settings,
};
use activelog::consumer::{AchievementsConsumer, BatchHandler, StatsConsumer};
use activelog::domain::ProjectionVersion;
use activelog::functions::ConsumerFunction;
use activelog::startup::aws;
use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::console::{Journal, RecordingBatchHandler, RecordingPublisher};
use crate::operator::{Operator, OperatorError};
use crate::server::Services;
use crate::stores::Stores;

/// A queue the stack polls: logical id in `template.yaml`, URL, dead-letter queue URL.
#[derive(Debug, Clone)]
struct QueueUrls {
    name: &'static str,
    url: String,
    dead_letter_url: String,
}

/// Each consumer queue's URL variables, by logical id.
const QUEUE_VARIABLES: &[(&str, &str, &str)] = &[
    ("StatsQueue", STATS_QUEUE_URL, STATS_DLQ_URL),
    (
        "AchievementsQueue",
        ACHIEVEMENTS_QUEUE_URL,
        ACHIEVEMENTS_DLQ_URL,
    ),
];

pub struct AwsStack {
    pub services: Services,
    pub operator: Arc<dyn Operator>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl AwsStack {
    pub async fn start(
        relay_interval: StdDuration,
        stats_version: ProjectionVersion,
        journal: &Arc<Journal>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let settings = Settings::from_env();
        let mut queues = Vec::new();
        for (name, url, dead_letter_url) in QUEUE_VARIABLES {
            queues.push(QueueUrls {
                name,
                url: settings.required(url)?,
                dead_letter_url: settings.required(dead_letter_url)?,
            });
        }
        let stores = Stores::dynamodb(stats_version).await?.recorded(journal);
        let publisher: Arc<dyn EventPublisher> = Arc::new(RecordingPublisher::new(
            Arc::new(aws::event_publisher(&settings).await?),
            journal.clone(),
            "eventbridge",
        ));
        let services = stores.services(publisher.clone());
        let sqs = aws_sdk_sqs::Client::new(aws::sdk_config().await);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for queue in &queues {
            let function = ConsumerFunction::for_queue(queue.name)
                .ok_or_else(|| format!("queue {} has no consumer", queue.name))?;
            let consumer: Arc<dyn BatchHandler> = match function {
                ConsumerFunction::UpdateStats => {
                    Arc::new(StatsConsumer::new(StatsUpdater::new(stores.stats.clone())))
                }
                ConsumerFunction::RecordAchievements => {
                    Arc::new(AchievementsConsumer::new(AchievementRecorder::new(
                        stores.achievements.clone(),
                        stores.outbox.clone(),
                        publisher.clone(),
                        Arc::new(SystemClock),
                        Arc::new(RandomIds),
                    )))
                }
            };
            let handler = Arc::new(RecordingBatchHandler::new(
                consumer,
                journal.clone(),
                queue.name,
            ));
            let poller = SqsPoller::connect(sqs.clone(), &queue.url, handler).await?;
            tasks.push(tokio::spawn(poller.run(stopped.clone())));
        }
        let relay = OutboxRelay::new(
            stores.outbox.clone(),
            publisher,
            Arc::new(SystemClock),
            aws::outbox_grace(settings.outbox_grace()?),
        );
        tasks.push(crate::pipeline::spawn_relay(
            relay,
            relay_interval,
            stopped.clone(),
        ));
        Ok(Self {
            services,
            operator: Arc::new(SqsOperator {
                client: sqs,
                queues,
            }),
            stop,
            tasks,
        })
    }

    /// Stops polling; a batch in progress is finished and its successes deleted. Nothing else
    /// needs draining: queues and outbox are durable.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The operator endpoints over real SQS queues.
struct SqsOperator {
    client: aws_sdk_sqs::Client,
    queues: Vec<QueueUrls>,
}

impl SqsOperator {
    fn queue(&self, name: &str) -> Result<&QueueUrls, OperatorError> {
        self.queues
            .iter()
            .find(|q| q.name == name)
            .ok_or_else(|| OperatorError::UnknownQueue(name.to_owned()))
    }

    async fn count(&self, url: &str, attribute: QueueAttributeName) -> Result<u64, OperatorError> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(attribute.clone())
            .send()
            .instrument(aws_call::sqs("GetQueueAttributes", url))
            .await
            .map_err(|e| {
                OperatorError::Failed(format!(
                    "{url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(answer
            .attributes()
            .and_then(|a| a.get(&attribute))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

#[async_trait]
impl Operator for SqsOperator {
    async fn depths(&self) -> Result<Value, OperatorError> {
        let mut depths = serde_json::Map::new();
        for queue in &self.queues {
            depths.insert(
                queue.name.to_owned(),
                json!({
                    "visible": self.count(&queue.url, QueueAttributeName::ApproximateNumberOfMessages).await?,
                    "in_flight": self.count(&queue.url, QueueAttributeName::ApproximateNumberOfMessagesNotVisible).await?,
                    "dead_lettered": self.count(&queue.dead_letter_url, QueueAttributeName::ApproximateNumberOfMessages).await?,
                }),
            );
        }
        Ok(Value::Object(depths))
    }

    async fn dead_letters(&self, queue: &str) -> Result<Value, OperatorError> {
        let queue = self.queue(queue)?;
        let letters = DeadLetterQueue::new(self.client.clone(), &queue.dead_letter_url)
            .peek(10)
            .await
            .map_err(|e| OperatorError::Failed(e.to_string()))?;
        let messages: Vec<Value> = letters
            .into_iter()
            .map(|l| json!({"message_id": l.message_id, "body": l.body, "receive_count": l.receive_count}))
            .collect();
        Ok(json!({"messages": messages}))
    }

    async fn redrive(&self, queue: &str) -> Result<Value, OperatorError> {
        let queue = self.queue(queue)?;
        let outcome = DeadLetterQueue::new(self.client.clone(), &queue.dead_letter_url)
            .redrive(&queue.url)
            .await
            .map_err(|e| OperatorError::Failed(e.to_string()))?;
        Ok(match outcome {
            RedriveOutcome::Moved { count } => json!({"redriven": count}),
            RedriveOutcome::MoveTaskStarted { task_handle } => json!({"move_task": task_handle}),
        })
    }

    async fn redrive_one(&self, queue: &str, message_id: &str) -> Result<Value, OperatorError> {
        let found = self.queue(queue)?;
        let moved = DeadLetterQueue::new(self.client.clone(), &found.dead_letter_url)
            .redrive_one(&found.url, message_id)
            .await
            .map_err(|e| OperatorError::Failed(e.to_string()))?;
        match moved {
            true => Ok(json!({"redriven": 1})),
            false => Err(OperatorError::UnknownDeadLetter {
                queue: queue.to_owned(),
                message_id: message_id.to_owned(),
            }),
        }
    }

    async fn send(&self, queue: &str, body: String) -> Result<String, OperatorError> {
        let queue = self.queue(queue)?;
        let sent = self
            .client
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .instrument(aws_call::sqs("SendMessage", &queue.url))
            .await
            .map_err(|e| {
                OperatorError::Failed(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}
