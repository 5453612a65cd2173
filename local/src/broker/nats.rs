//! `--broker nats://...`: NATS JetStream as the local stack's transport, the one NATS-specific
//! file of `local/`. Events are published to one stream with a subject per event type (de-duped
//! by event id), durable pull consumers filtered by the template's rules feed the consumers, and
//! `/_local/` lists and redrives the dead-letter stream. An unreachable server is a start-up
//! error naming the URL without its password.

use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::nats::{
    ConsumerSubjects, NatsDeadLetters, NatsPublisher, NatsSubscriber, NatsSubscriberSettings,
    NatsTopology, NatsUrl,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::operator::dead_letter_operator;
use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::Operator;

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

dead_letter_operator!(
    NatsOperator,
    NatsDeadLetters,
    ConsumerSubjects,
    queue,
    |depth| serde_json::json!(depth)
);
