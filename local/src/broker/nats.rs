//! `--broker nats://...`: NATS JetStream as the local stack's transport, the one NATS-specific
//! file of `local/`. Events are published to one stream with a subject per event type (de-duped
//! by event id), durable pull consumers filtered by the template's rules feed the consumers, and
//! `/_local/` lists and redrives the dead-letter stream. An unreachable server is a start-up
//! error naming the URL without its password.

use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::nats::{
    ConsumerSubjects, NatsDeadLetters, NatsError, NatsPublisher, NatsSubscriber,
    NatsSubscriberSettings, NatsTopology, NatsUrl,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::{Operator, OperatorError};

/// How long a delivered message may stay unacknowledged before JetStream delivers it again: the
/// SQS queues' visibility timeout in `template.yaml`'s spirit, short enough for a local stack.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// A connected NATS server with its streams and consumers declared.
pub struct Nats {
    url: NatsUrl,
    topology: NatsTopology,
    publisher: Arc<NatsPublisher>,
}

impl Nats {
    pub async fn connect(
        url: &NatsUrl,
        rules: &[RoutingRule],
        options: &BrokerOptions,
    ) -> Result<Self, BrokerError> {
        let topology =
            NatsTopology::from_rules(&options.namespace, rules, options.delivery_limit, ACK_WAIT)
                .map_err(BrokerError::adapter)?;
        tracing::info!(broker = %url, "connecting to NATS");
        let publisher = NatsPublisher::connect(url.clone(), topology.clone())
            .await
            .map_err(BrokerError::adapter)?;
        Ok(Self {
            url: url.clone(),
            topology,
            publisher: Arc::new(publisher),
        })
    }
}

impl ConnectedBroker for Nats {
    fn name(&self) -> &'static str {
        "nats"
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
        let subscriber = NatsSubscriber::new(
            self.url.clone(),
            self.topology.clone(),
            queue,
            handler,
            NatsSubscriberSettings::default(),
        )
        .ok_or_else(|| BrokerError::NoConsumer(queue.to_owned()))?;
        Ok(tokio::spawn(subscriber.run(stop)))
    }

    fn operator(&self) -> Arc<dyn Operator> {
        Arc::new(NatsOperator {
            dead_letters: NatsDeadLetters::new(self.url.clone(), self.topology.clone()),
        })
    }
}

/// The operator endpoints over the consumers and the dead-letter stream.
struct NatsOperator {
    dead_letters: NatsDeadLetters,
}

impl NatsOperator {
    fn queue(&self, name: &str) -> Result<ConsumerSubjects, OperatorError> {
        self.dead_letters
            .queue(name)
            .cloned()
            .ok_or_else(|| OperatorError::UnknownQueue(name.to_owned()))
    }
}

fn failed(error: NatsError) -> OperatorError {
    OperatorError::Failed(error.to_string())
}

#[async_trait]
impl Operator for NatsOperator {
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
