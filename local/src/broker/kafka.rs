//! `--broker kafka://host:port`: Kafka as the local stack's transport, the one Kafka-specific file
//! of `local/`. Events go to one topic keyed by user id through the idempotent `acks=all`
//! publisher; one consumer group per consumer queue of the template's rules reads it, filtered to
//! that rule's event types, and commits only settled batches; `/_local/` lists and redrives the
//! dead-letter topics. An unreachable cluster is a start-up error naming the URL.

use std::sync::Arc;

use activelog::adapters::kafka::{
    ConsumerGroup, KafkaDeadLetters, KafkaPublisher, KafkaSubscriber, KafkaTopology, KafkaUrl,
    SubscriberSettings,
};
use activelog::adapters::memory::RoutingRule;
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::operator::dead_letter_operator;
use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::Operator;

/// A connected Kafka cluster with its topics created.
pub struct Kafka {
    url: KafkaUrl,
    topology: KafkaTopology,
    publisher: Arc<KafkaPublisher>,
}

impl Kafka {
    pub async fn connect(
        url: &KafkaUrl,
        rules: &[RoutingRule],
        options: &BrokerOptions,
    ) -> Result<Self, BrokerError> {
        let topology = KafkaTopology::from_rules(&options.namespace, rules, options.delivery_limit)
            .map_err(BrokerError::adapter)?;
        tracing::info!(broker = %url, "connecting to Kafka");
        let publisher = KafkaPublisher::connect(url.clone(), topology.clone())
            .await
            .map_err(BrokerError::adapter)?;
        Ok(Self {
            url: url.clone(),
            topology,
            publisher: Arc::new(publisher),
        })
    }
}

impl ConnectedBroker for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
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
        let subscriber = KafkaSubscriber::new(
            self.url.clone(),
            self.topology.clone(),
            queue,
            handler,
            SubscriberSettings::default(),
        )
        .map_err(|_| BrokerError::NoConsumer(queue.to_owned()))?;
        Ok(tokio::spawn(subscriber.run(stop)))
    }

    fn operator(&self) -> Arc<dyn Operator> {
        Arc::new(KafkaOperator {
            dead_letters: KafkaDeadLetters::new(self.url.clone(), self.topology.clone()),
        })
    }
}

dead_letter_operator!(
    KafkaOperator,
    KafkaDeadLetters,
    ConsumerGroup,
    group,
    |dead_lettered| serde_json::json!({"dead_lettered": dead_lettered})
);
