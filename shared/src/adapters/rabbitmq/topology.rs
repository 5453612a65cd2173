//! The broker's routing, derived from `template.yaml`'s EventBridge rules so that the template
//! stays the one source of truth for which consumer receives which events:
//!
//! - `<namespace>.events`: a durable topic exchange; an event's routing key is its type;
//! - per rule target (e.g. `StatsQueue`): a durable quorum queue `<namespace>.StatsQueue` bound
//!   with every `detail-type` of the rule, with a delivery limit and the dead-letter exchange;
//! - `<namespace>.dead-letters`: a durable direct exchange; each consumer queue dead-letters
//!   with its own name as routing key into its durable dead-letter queue
//!   `<namespace>.StatsQueue.dlq`.
//!
//! Declaring is idempotent, so the publisher and every subscriber declare what they rely on.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::adapters::memory::RoutingRule;

use super::connection::{BrokerUrl, RabbitMqError};

/// One consumer's queue and dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerQueue {
    /// The queue's logical id in `template.yaml` (`StatsQueue`): the name operators use.
    pub logical_id: String,
    /// The broker queue's name.
    pub queue: String,
    pub dead_letter_queue: String,
    /// The event types bound to the queue.
    pub routing_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub dead_letter_exchange: String,
    pub queues: Vec<ConsumerQueue>,
    /// Deliveries after which the broker dead-letters a message that keeps coming back (the
    /// SQS queues' `maxReceiveCount`).
    pub delivery_limit: u32,
}

/// A rule whose pattern a topic binding cannot express.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}` cannot be routed by event type on a broker: {reason}")]
pub struct TopologyError {
    pub rule: String,
    pub reason: String,
}

impl Topology {
    /// The topology for these rules under `namespace` (a prefix that keeps stacks, and tests,
    /// apart on one broker). A pattern may name `source` and `detail-type` (lists of strings)
    /// and nothing else: that is what a routing key of the event type can express.
    pub fn from_rules(
        namespace: &str,
        rules: &[RoutingRule],
        delivery_limit: u32,
    ) -> Result<Self, TopologyError> {
        let mut queues: Vec<ConsumerQueue> = Vec::new();
        for rule in rules {
            let keys = rule.detail_types().map_err(|reason| TopologyError {
                rule: rule.name.clone(),
                reason,
            })?;
            match queues
                .iter_mut()
                .find(|q| q.logical_id == rule.target_queue)
            {
                Some(queue) => queue.routing_keys.extend(keys),
                None => queues.push(ConsumerQueue {
                    logical_id: rule.target_queue.clone(),
                    queue: format!("{namespace}.{}", rule.target_queue),
                    dead_letter_queue: format!("{namespace}.{}.dlq", rule.target_queue),
                    routing_keys: keys,
                }),
            }
        }
        Ok(Self {
            exchange: format!("{namespace}.events"),
            dead_letter_exchange: format!("{namespace}.dead-letters"),
            queues,
            delivery_limit,
        })
    }

    pub fn queue(&self, logical_id: &str) -> Option<&ConsumerQueue> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// Whether some queue is bound to this event type.
    pub fn routes(&self, event_type: &str) -> bool {
        self.queues
            .iter()
            .any(|q| q.routing_keys.iter().any(|k| k == event_type))
    }

    /// Declares exchanges, queues and bindings (idempotent).
    pub async fn declare(&self, url: &BrokerUrl, channel: &Channel) -> Result<(), RabbitMqError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|e| url.failed("declaring the events exchange", e))?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|e| url.failed("declaring the dead-letter exchange", e))?;
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        for queue in &self.queues {
            channel
                .queue_declare(
                    queue.dead_letter_queue.as_str().into(),
                    durable_queue,
                    // Classic, not quorum: listing dead letters returns them to the queue,
                    // which a quorum queue would count as deliveries towards a limit.
                    FieldTable::default(),
                )
                .await
                .map_err(|e| url.failed("declaring a dead-letter queue", e))?;
            channel
                .queue_bind(
                    queue.dead_letter_queue.as_str().into(),
                    self.dead_letter_exchange.as_str().into(),
                    queue.queue.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| url.failed("binding a dead-letter queue", e))?;
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
            );
            arguments.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.dead_letter_exchange),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                long_string(&queue.queue),
            );
            // At-least-once dead-lettering: a poison message leaves the queue only once the
            // dead-letter queue has it (it requires `reject-publish` overflow).
            arguments.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            arguments.insert("x-overflow".into(), long_string("reject-publish"));
            channel
                .queue_declare(
                    queue.queue.as_str().into(),
                    durable_queue,
                    quorum(arguments),
                )
                .await
                .map_err(|e| url.failed("declaring a consumer queue", e))?;
            for key in &queue.routing_keys {
                channel
                    .queue_bind(
                        queue.queue.as_str().into(),
                        self.exchange.as_str().into(),
                        key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| url.failed("binding a consumer queue", e))?;
            }
        }
        Ok(())
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Quorum queues: replicated, durable, and the only kind with a delivery limit.
fn quorum(mut arguments: FieldTable) -> FieldTable {
    arguments.insert(ShortString::from("x-queue-type"), long_string("quorum"));
    arguments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::rules_from_template;

    #[test]
    fn the_template_rules_become_one_bound_queue_per_consumer() {
        let rules = rules_from_template(include_str!("../../../../template.yaml")).unwrap();
        let topology = Topology::from_rules("activelog", &rules, 5).unwrap();
        assert_eq!(topology.exchange, "activelog.events");
        let stats = topology.queue("StatsQueue").unwrap();
        assert_eq!(stats.queue, "activelog.StatsQueue");
        assert_eq!(stats.dead_letter_queue, "activelog.StatsQueue.dlq");
        assert_eq!(
            stats.routing_keys,
            ["activity.created", "activity.updated", "activity.deleted"]
        );
        assert_eq!(
            topology.queue("AchievementsQueue").unwrap().routing_keys,
            ["activity.created"]
        );
        assert!(topology.routes("activity.updated"));
        assert!(!topology.routes("achievement.awarded"));
    }

    #[test]
    fn a_pattern_a_routing_key_cannot_express_is_refused() {
        let rule = RoutingRule {
            name: "Big".into(),
            event_pattern: serde_json::json!({"detail-type": ["a"], "detail": {"x": [1]}}),
            target_queue: "Q".into(),
        };
        let error = Topology::from_rules("n", &[rule], 5).unwrap_err();
        assert!(error.reason.contains("`detail`"), "{error}");
    }
}
