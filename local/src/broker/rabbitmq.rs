//! `--broker rabbitmq://...`: RabbitMQ as the local stack's transport, the one RabbitMQ-specific
//! file of `local/`. A durable topic exchange routes each event by its type to one quorum queue
//! per consumer (from the template's rules); events go out through the confirming publisher, come
//! back through one subscriber per queue, and `/_local/` lists and redrives the dead-letter
//! queues. An unreachable broker is a start-up error naming the URL without its password.

use std::sync::Arc;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::rabbitmq::{
    BrokerUrl, ConsumerQueue, DeadLetters, RabbitMqPublisher, RabbitMqSubscriber,
    SubscriberSettings, Topology,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::operator::dead_letter_operator;
use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::Operator;

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

dead_letter_operator!(
    RabbitMqOperator,
    DeadLetters,
    ConsumerQueue,
    queue,
    |depth| serde_json::json!(depth)
);
