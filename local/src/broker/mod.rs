//! `--broker URL`: which event transport the local stack runs on, and the one seam every broker
//! plugs into. A broker connects from the template's rules and then offers three things, and
//! nothing else: the publisher the use cases and the relay publish through, one event source per
//! consumer queue feeding that queue's consumer, and the operator that lists, redrives and sends
//! on its dead-letter queues. [`BrokerStack`] wires the stores, use cases, relay and consumers
//! around those once, for every broker. Adding a broker is one file beside `rabbitmq.rs`, one arm
//! in [`Broker::parse`] and one in [`Broker::connect`].

mod kafka;
mod nats;
mod operator;
mod rabbitmq;
mod redis;
mod stack;

pub use stack::BrokerStack;

use std::sync::Arc;

use activelog::adapters::memory::RoutingRule;
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::operator::Operator;

/// The event transport of the local stack, as `--broker` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Broker {
    /// In-process queues (the default; nothing to install). Not a broker to connect to: the
    /// in-memory stack wires its own bus and queues.
    Memory,
    RabbitMq(activelog::adapters::rabbitmq::BrokerUrl),
    Redis(activelog::adapters::redis_streams::RedisUrl),
    Nats(activelog::adapters::nats::NatsUrl),
    Kafka(activelog::adapters::kafka::KafkaUrl),
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown broker `{0}`: use `memory` or a broker URL (see --help)")]
    Unknown(String),
    /// What the broker's adapter said: a bad URL, an unreachable broker, a refused topology.
    /// Adapters word their errors without passwords.
    #[error(transparent)]
    Adapter(Box<dyn std::error::Error + Send + Sync>),
    #[error("queue `{0}` of template.yaml has no consumer in the local stack")]
    NoConsumer(String),
}

impl BrokerError {
    /// Wraps a broker adapter's own error.
    pub fn adapter(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Adapter(Box::new(error))
    }
}

impl Broker {
    pub fn parse(value: &str) -> Result<Self, BrokerError> {
        if value == "memory" {
            return Ok(Self::Memory);
        }
        let scheme = value.split("://").next().unwrap_or_default();
        match scheme {
            "rabbitmq" | "rabbitmqs" | "amqp" | "amqps" => Ok(Self::RabbitMq(
                activelog::adapters::rabbitmq::BrokerUrl::parse(value)
                    .map_err(BrokerError::adapter)?,
            )),
            "redis" | "rediss" => Ok(Self::Redis(
                activelog::adapters::redis_streams::RedisUrl::parse(value)
                    .map_err(BrokerError::adapter)?,
            )),
            "nats" => Ok(Self::Nats(
                activelog::adapters::nats::NatsUrl::parse(value).map_err(BrokerError::adapter)?,
            )),
            "kafka" | "kafkas" => Ok(Self::Kafka(
                activelog::adapters::kafka::KafkaUrl::parse(value).map_err(BrokerError::adapter)?,
            )),
            // Never echo the value: it may hold a password. Without `://` the "scheme" is the
            // whole value (`admin:s3cret@host`), so only a well-formed scheme is shown.
            _ => Err(BrokerError::Unknown(shown_scheme(value))),
        }
    }

    /// Connects to the broker and declares what it needs (exchanges, queues, streams) from the
    /// template's rules. `None` for [`Broker::Memory`]: there is nothing to connect to.
    pub async fn connect(
        &self,
        rules: &[RoutingRule],
        options: &BrokerOptions,
    ) -> Result<Option<Arc<dyn ConnectedBroker>>, BrokerError> {
        Ok(match self {
            Self::Memory => None,
            Self::RabbitMq(url) => Some(Arc::new(
                rabbitmq::RabbitMq::connect(url, rules, options).await?,
            )),
            Self::Redis(url) => Some(Arc::new(redis::Redis::connect(url, rules, options).await?)),
            Self::Nats(url) => Some(Arc::new(nats::Nats::connect(url, rules, options).await?)),
            Self::Kafka(url) => Some(Arc::new(kafka::Kafka::connect(url, rules, options).await?)),
        })
    }
}

/// What an unknown `--broker` value may show of itself: its scheme when it has a well-formed one
/// (`^[a-z][a-z0-9+.-]*$` before `://`), otherwise nothing of the value.
fn shown_scheme(value: &str) -> String {
    match value.split_once("://") {
        Some((scheme, _))
            if scheme.starts_with(|c: char| c.is_ascii_lowercase())
                && scheme.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-')
                }) =>
        {
            format!("{scheme}://…")
        }
        _ => "(no scheme)".to_owned(),
    }
}

/// Settings every broker takes.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Prefix of the broker's names (exchanges, queues, streams, topics), so that several stacks
    /// can share one broker.
    pub namespace: String,
    /// Deliveries before a message that keeps failing is dead-lettered.
    pub delivery_limit: u32,
}

/// A broker the local stack is connected to. Routing comes from the template's rules given to
/// `connect`: an event reaches the queue of every rule whose pattern it matches, and the queue's
/// name is the rule target's logical id in `template.yaml` (`StatsQueue`, `AchievementsQueue`).
pub trait ConnectedBroker: Send + Sync {
    /// How the listening line names the transport (`rabbitmq`).
    fn name(&self) -> &'static str;

    /// The publisher behind the use cases and the outbox relay. A publish counts only once the
    /// broker holds the event durably; what it does not confirm stays in the outbox.
    fn publisher(&self) -> Arc<dyn EventPublisher>;

    /// Starts the event source of consumer queue `queue`: it hands batches to `handler` and
    /// settles each message by its verdict (applied and duplicate done, retry back later, poison
    /// to the dead-letter queue, also once the delivery limit is reached), reconnecting when the
    /// connection drops, until `stop` turns true; a batch in progress is settled first.
    fn spawn_event_source(
        &self,
        queue: &str,
        handler: Arc<dyn BatchHandler>,
        stop: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, BrokerError>;

    /// The `/_local/` operator over the consumer queues: depths, dead letters, redrive, send.
    fn operator(&self) -> Arc<dyn Operator>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(value: &str) -> String {
        match Broker::parse(value) {
            Err(error @ BrokerError::Unknown(_)) => error.to_string(),
            Err(other) => panic!("expected an unknown broker, got {other}"),
            Ok(_) => panic!("`{value}` parsed"),
        }
    }

    #[test]
    fn an_unknown_broker_without_a_scheme_never_echoes_the_value() {
        let error = unknown("admin:s3cret@10.0.0.5:6379");
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("(no scheme)"), "{error}");
    }

    #[test]
    fn an_unknown_scheme_is_named_without_the_rest_of_the_value() {
        let error = unknown("mqtt://admin:s3cret@10.0.0.5:1883");
        assert!(error.contains("`mqtt://…`"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let odd = unknown("ad:min:s3cret@host://x");
        assert!(!odd.contains("s3cret"), "{odd}");
    }
}
