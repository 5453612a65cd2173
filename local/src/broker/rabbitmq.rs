//! `--broker rabbitmq://...`: RabbitMQ as the local stack's transport, the one RabbitMQ-specific
//! file of `local/`. A durable topic exchange routes each event by its type to one quorum queue
//! per consumer (from the template's rules); events go out through the confirming publisher, come
//! back through one subscriber per queue, and `/_local/` lists and redrives the dead-letter
//! queues. An unreachable broker is a start-up error naming the URL without its password.

use std::sync::Arc;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::rabbitmq::{
    BrokerUrl, ConsumerQueue, DeadLetters, RabbitMqError, RabbitMqPublisher, RabbitMqSubscriber,
    SubscriberSettings, Topology,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::{Operator, OperatorError};

/// A connected RabbitMQ broker with its topology declared.
pub struct RabbitMq {
    url: BrokerUrl,
    topology: Topology,
    publisher: Arc<RabbitMqPublisher>,
}

impl RabbitMq {
    pub async fn connect(
        url: &BrokerUrl,
        rules: &[RoutingRule],
        options: &BrokerOptions,
    ) -> Result<Self, BrokerError> {
        let topology = Topology::from_rules(&options.namespace, rules, options.delivery_limit)
            .map_err(BrokerError::adapter)?;
        tracing::info!(broker = %url, "connecting to RabbitMQ");
        let publisher = RabbitMqPublisher::connect(url.clone(), topology.clone())
            .await
            .map_err(BrokerError::adapter)?;
        Ok(Self {
            url: url.clone(),
            topology,
            publisher: Arc::new(publisher),
        })
    }
}

impl ConnectedBroker for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.publisher.clone()
    }

    fn spawn_event_source(
        &self,
        queue: &str,
        handler: Arc<dyn BatchHandler>,
        stop: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, BrokerError> {
        let subscriber = RabbitMqSubscriber::new(
            self.url.clone(),
            self.topology.clone(),
            queue,
            handler,
            SubscriberSettings::default(),
        )
        .ok_or_else(|| BrokerError::NoConsumer(queue.to_owned()))?;
        Ok(tokio::spawn(subscriber.run(stop)))
    }

    fn operator(&self) -> Arc<dyn Operator> {
        Arc::new(RabbitMqOperator {
            dead_letters: DeadLetters::new(self.url.clone(), self.topology.clone()),
        })
    }
}

/// The operator endpoints over the broker's queues.
struct RabbitMqOperator {
    dead_letters: DeadLetters,
}

impl RabbitMqOperator {
    fn queue(&self, name: &str) -> Result<ConsumerQueue, OperatorError> {
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
