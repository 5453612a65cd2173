//! `--broker rabbitmq://...`: the local stack with RabbitMQ as its transport. The HTTP API, the
//! use cases and the stores are the in-memory ones; events go out through the RabbitMQ
//! publisher (the outbox relay on a timer behind it) and come back through one RabbitMQ
//! subscriber per consumer queue of `template.yaml`. `/_local/` lists and redrives the broker's
//! dead-letter queues. An unreachable broker is a start-up error naming the URL without its
//! password.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use activelog::adapters::memory::{
    MemoryAchievementStore, MemoryActivityStore, MemoryStatsStore, RoutingRule,
};
use activelog::adapters::rabbitmq::{
    BrokerUrl, DeadLetters, RabbitMqError, RabbitMqPublisher, RabbitMqSubscriber,
    SubscriberSettings, Topology,
};
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementQueries, AchievementRecorder, ActivityQueries, ActivityService, CursorCodec,
    EventPublisher, OutboxRelay, StatsQueries, StatsUpdater,
};
use activelog::consumer::{AchievementsConsumer, BatchHandler, StatsConsumer};
use activelog::functions::ConsumerFunction;
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::operator::{Operator, OperatorError};
use crate::server::Services;

/// The event transport of the local stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Broker {
    /// In-process queues (the default; nothing to install).
    Memory,
    RabbitMq(BrokerUrl),
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown broker `{0}`: use `memory` or a rabbitmq:// (or amqp://) URL")]
    Unknown(String),
    #[error(transparent)]
    RabbitMq(#[from] RabbitMqError),
    #[error(transparent)]
    Topology(#[from] activelog::adapters::rabbitmq::TopologyError),
    #[error("queue `{0}` of template.yaml has no consumer in the local stack")]
    NoConsumer(String),
}

impl Broker {
    pub fn parse(value: &str) -> Result<Self, BrokerError> {
        if value == "memory" {
            return Ok(Self::Memory);
        }
        let scheme = value.split("://").next().unwrap_or_default();
        match scheme {
            "rabbitmq" | "rabbitmqs" | "amqp" | "amqps" => {
                Ok(Self::RabbitMq(BrokerUrl::parse(value)?))
            }
            // Never echo the value: it may hold a password.
            _ => Err(BrokerError::Unknown(format!("{scheme}://…"))),
        }
    }
}

/// What the broker mode runs, besides the HTTP server.
pub struct RabbitMqStack {
    pub services: Services,
    pub operator: Arc<dyn Operator>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    relay: OutboxRelay,
    activity_store: Arc<MemoryActivityStore>,
}

/// Settings of the broker mode.
pub struct RabbitMqOptions {
    /// Prefix of the exchanges and queues, so that several stacks can share a broker.
    pub namespace: String,
    /// Deliveries before a message that keeps failing is dead-lettered.
    pub delivery_limit: u32,
    pub relay_interval: StdDuration,
}

impl RabbitMqStack {
    pub async fn start(
        url: BrokerUrl,
        rules: &[RoutingRule],
        options: RabbitMqOptions,
    ) -> Result<Self, BrokerError> {
        let topology = Topology::from_rules(&options.namespace, rules, options.delivery_limit)?;
        let publisher: Arc<dyn EventPublisher> =
            Arc::new(RabbitMqPublisher::connect(url.clone(), topology.clone()).await?);
        let activity_store = Arc::new(MemoryActivityStore::new());
        let stats_store = Arc::new(MemoryStatsStore::new());
        let achievement_store = Arc::new(MemoryAchievementStore::new(activity_store.clone()));
        let services = Services {
            activities: ActivityService::new(
                activity_store.clone(),
                activity_store.clone(),
                publisher.clone(),
                Arc::new(SystemClock),
                Arc::new(RandomIds),
            ),
            activity_queries: ActivityQueries::with_listing(
                activity_store.clone(),
                CursorCodec::new(
                    activelog::configuration::LOCAL_CURSOR_SECRET
                        .as_bytes()
                        .to_vec(),
                ),
            ),
            stats: StatsQueries::new(stats_store.clone()),
            achievements: AchievementQueries::new(achievement_store.clone()),
        };
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for queue in &topology.queues {
            let handler: Arc<dyn BatchHandler> =
                match ConsumerFunction::for_queue(&queue.logical_id) {
                    Some(ConsumerFunction::UpdateStats) => {
                        Arc::new(StatsConsumer::new(StatsUpdater::new(stats_store.clone())))
                    }
                    Some(ConsumerFunction::RecordAchievements) => {
                        Arc::new(AchievementsConsumer::new(AchievementRecorder::new(
                            achievement_store.clone(),
                            activity_store.clone(),
                            publisher.clone(),
                            Arc::new(SystemClock),
                            Arc::new(RandomIds),
                        )))
                    }
                    None => return Err(BrokerError::NoConsumer(queue.logical_id.clone())),
                };
            let subscriber = RabbitMqSubscriber::new(
                url.clone(),
                topology.clone(),
                &queue.logical_id,
                handler,
                SubscriberSettings::default(),
            )
            .ok_or_else(|| BrokerError::NoConsumer(queue.logical_id.clone()))?;
            tasks.push(tokio::spawn(subscriber.run(stopped.clone())));
        }
        let relay = OutboxRelay::new(
            activity_store.clone(),
            publisher.clone(),
            Arc::new(SystemClock),
            time::Duration::seconds(5),
        );
        tasks.push(crate::pipeline::spawn_relay(
            relay,
            options.relay_interval,
            stopped,
        ));
        // At shutdown, everything still in the outbox goes, with no grace period.
        let final_relay = OutboxRelay::new(
            activity_store.clone(),
            publisher,
            Arc::new(SystemClock),
            time::Duration::ZERO,
        );
        Ok(Self {
            services,
            operator: Arc::new(RabbitMqOperator {
                dead_letters: DeadLetters::new(url, topology),
            }),
            stop,
            tasks,
            relay: final_relay,
            activity_store,
        })
    }

    /// Publishes what is left in the outbox (the broker keeps everything else), then stops the
    /// subscribers; each settles its batch in progress first.
    pub async fn stop(self) {
        if let Err(error) = self.relay.relay_pending().await {
            tracing::error!(%error, "outbox relay failed at shutdown");
        }
        let left = self.activity_store.outbox_records().len();
        if left > 0 {
            tracing::warn!(
                outbox = left,
                "events left unpublished: the broker did not confirm them"
            );
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The operator endpoints over the broker's queues.
struct RabbitMqOperator {
    dead_letters: DeadLetters,
}

impl RabbitMqOperator {
    fn queue(
        &self,
        name: &str,
    ) -> Result<activelog::adapters::rabbitmq::ConsumerQueue, OperatorError> {
        self.dead_letters
            .queue(name)
            .cloned()
            .ok_or_else(|| OperatorError::UnknownQueue(name.to_owned()))
    }
}

fn failed(error: RabbitMqError) -> OperatorError {
    OperatorError::Failed(error.to_string())
}

#[async_trait]
impl Operator for RabbitMqOperator {
    async fn depths(&self) -> Result<Value, OperatorError> {
        let depths: serde_json::Map<String, Value> = self
            .dead_letters
            .depths()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|(name, depth)| (name, json!(depth)))
            .collect();
        Ok(Value::Object(depths))
    }

    async fn dead_letters(&self, queue: &str) -> Result<Value, OperatorError> {
        let queue = self.queue(queue)?;
        let letters = self.dead_letters.peek(&queue, 100).await.map_err(failed)?;
        Ok(json!({"messages": letters}))
    }

    async fn redrive(&self, queue: &str) -> Result<Value, OperatorError> {
        let queue = self.queue(queue)?;
        let moved = self.dead_letters.redrive(&queue).await.map_err(failed)?;
        Ok(json!({"redriven": moved}))
    }

    async fn send(&self, queue: &str, body: String) -> Result<String, OperatorError> {
        let queue = self.queue(queue)?;
        self.dead_letters.send(&queue, &body).await.map_err(failed)
    }
}
