//! `--broker redis://...`: Redis Streams as the local stack's transport, the one Redis-specific
//! file of `local/`. Each event is written at publish time to the stream of every consumer whose
//! rule names its type (from the template's rules), read back by one consumer group per stream,
//! and `/_local/` lists and redrives the dead-letter streams. An unreachable server is a start-up
//! error naming the URL without its password. The shared Redis of this project's machines keeps
//! nothing on disk: a restart of it loses the streams (see the adapter's module docs).

use std::sync::Arc;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::redis_streams::{
    ConsumerStream, RedisStreamsPublisher, RedisStreamsSubscriber, RedisUrl, StreamDeadLetters,
    StreamSubscriberSettings, StreamTopology,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::operator::dead_letter_operator;
use super::{BrokerError, BrokerOptions, ConnectedBroker};
use crate::operator::Operator;

/// A connected Redis with its consumer groups created.
pub struct Redis {
    url: RedisUrl,
    topology: StreamTopology,
    publisher: Arc<RedisStreamsPublisher>,
}

impl Redis {
    pub async fn connect(
        url: &RedisUrl,
        rules: &[RoutingRule],
        options: &BrokerOptions,
    ) -> Result<Self, BrokerError> {
        let topology =
            StreamTopology::from_rules(&options.namespace, rules, options.delivery_limit)
                .map_err(BrokerError::adapter)?;
        tracing::info!(broker = %url, "connecting to Redis");
        let publisher = RedisStreamsPublisher::connect(url.clone(), topology.clone())
            .await
            .map_err(BrokerError::adapter)?;
        Ok(Self {
            url: url.clone(),
            topology,
            publisher: Arc::new(publisher),
        })
    }
}

impl ConnectedBroker for Redis {
    fn name(&self) -> &'static str {
        "redis"
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
        let subscriber = RedisStreamsSubscriber::new(
            self.url.clone(),
            &self.topology,
            queue,
            handler,
            StreamSubscriberSettings::default(),
        )
        .ok_or_else(|| BrokerError::NoConsumer(queue.to_owned()))?;
        Ok(tokio::spawn(subscriber.run(stop)))
    }

    fn operator(&self) -> Arc<dyn Operator> {
        Arc::new(RedisOperator {
            dead_letters: StreamDeadLetters::new(self.url.clone(), self.topology.clone()),
        })
    }
}

dead_letter_operator!(
    RedisOperator,
    StreamDeadLetters,
    ConsumerStream,
    stream,
    |depth| serde_json::json!(depth)
);
