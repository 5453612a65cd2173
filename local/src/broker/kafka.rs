//! `--broker kafka://host:port`: Kafka as the local stack's transport, the one Kafka-specific file
//! of `local/`. Events go to one topic keyed by user id through the idempotent `acks=all`
//! publisher; one consumer group per consumer queue of the template's rules reads it, filtered to
//! that rule's event types, and commits only settled batches; `/_local/` lists and redrives the
//! dead-letter topics. An unreachable cluster is a start-up error naming the URL.

use std::sync::Arc;

use activelog::adapters::kafka::{
    ConsumerGroup, KafkaAdapterError, KafkaDeadLetters, KafkaPublisher, KafkaSubscriber,
    KafkaTopology, KafkaUrl, SubscriberSettings,
};
use activelog::adapters::memory::RoutingRule;
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::{Operator, OperatorError};

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

/// The operator endpoints over the dead-letter and redrive topics.
struct KafkaOperator {
    dead_letters: KafkaDeadLetters,
}

impl KafkaOperator {
    fn group(&self, name: &str) -> Result<ConsumerGroup, OperatorError> {
        self.dead_letters
            .group(name)
            .cloned()
            .ok_or_else(|| OperatorError::UnknownQueue(name.to_owned()))
    }
}

fn failed(error: KafkaAdapterError) -> OperatorError {
    OperatorError::Failed(error.to_string())
}

#[async_trait]
impl Operator for KafkaOperator {
    async fn depths(&self) -> Result<Value, OperatorError> {
        let depths: serde_json::Map<String, Value> = self
            .dead_letters
            .depths()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|(name, dead_lettered)| (name, json!({"dead_lettered": dead_lettered})))
            .collect();
        Ok(Value::Object(depths))
    }

    async fn dead_letters(&self, queue: &str) -> Result<Value, OperatorError> {
        let group = self.group(queue)?;
        let letters = self.dead_letters.peek(&group, 100).await.map_err(failed)?;
        Ok(json!({"messages": letters}))
    }

    async fn redrive(&self, queue: &str) -> Result<Value, OperatorError> {
        let group = self.group(queue)?;
        let moved = self.dead_letters.redrive(&group).await.map_err(failed)?;
        Ok(json!({"redriven": moved}))
    }

    async fn send(&self, queue: &str, body: String) -> Result<String, OperatorError> {
        let group = self.group(queue)?;
        self.dead_letters.send(&group, &body).await.map_err(failed)
    }
}
