//! The cluster's layout, derived from `template.yaml`'s EventBridge rules so that the template
//! stays the one source of truth for which consumer receives which events:
//!
//! - `<namespace>.events`: the one topic every event is published to, keyed by user id, so each
//!   user's events keep their order (one partition per key) while users spread over partitions;
//! - per rule target (e.g. `StatsQueue`): a consumer group `<namespace>.StatsQueue` that reads the
//!   whole topic and hands its consumer only the event types of its rule (the others are
//!   committed past, as an EventBridge rule that does not match drops the event for that
//!   target); a dead-letter topic `<namespace>.StatsQueue.dlq`; and a redrive topic
//!   `<namespace>.StatsQueue.redrive` that only this group reads, where redriven dead letters and
//!   an operator's raw messages go.
//!
//! Why one topic filtered by each subscriber, not a topic per consumer: Kafka has no broker-side
//! routing, so a topic per consumer would make the publisher fan out, writing each event once per
//! consumer with no atomicity between the writes (a crash between them delivers an event to one
//! consumer and not the other, and the outbox record cannot say which). One write per event keeps
//! "confirmed" meaning "every consumer will see it", per-user order holds across consumers, and a
//! new rule in the template needs a new group, not a republish. The cost is that each group reads
//! events it skips, which the filter does before any work.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::adapters::memory::{RoutingRule, consumer_routes};

use super::connection::{CONNECT_TIMEOUT, KafkaAdapterError, KafkaUrl};

/// One consumer's group and topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The consumer's queue in `template.yaml` (`StatsQueue`): the name operators use.
    pub logical_id: String,
    pub group_id: String,
    pub dead_letter_topic: String,
    pub redrive_topic: String,
    /// The event types the group hands to its consumer.
    pub event_types: Vec<String>,
}

impl ConsumerGroup {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopology {
    pub events_topic: String,
    /// Partitions of the events topic: how many consumers of one group can share the work.
    pub partitions: i32,
    pub groups: Vec<ConsumerGroup>,
    /// Deliveries of a message that keeps failing before it is dead-lettered (the SQS queues'
    /// `maxReceiveCount`); the retries happen in the consumer, with a backoff.
    pub delivery_limit: u32,
}

/// A rule whose pattern a filter on the event type cannot express.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}` cannot be routed by event type on Kafka: {reason}")]
pub struct KafkaTopologyError {
    pub rule: String,
    pub reason: String,
}

impl KafkaTopology {
    /// The layout for these rules under `namespace` (a prefix that keeps stacks, and tests,
    /// apart on one cluster).
    pub fn from_rules(
        namespace: &str,
        rules: &[RoutingRule],
        delivery_limit: u32,
    ) -> Result<Self, KafkaTopologyError> {
        let groups = consumer_routes(rules)
            .map_err(|error| KafkaTopologyError {
                rule: error.rule,
                reason: error.reason,
            })?
            .into_iter()
            .map(|route| ConsumerGroup {
                group_id: format!("{namespace}.{}", route.logical_id),
                dead_letter_topic: format!("{namespace}.{}.dlq", route.logical_id),
                redrive_topic: format!("{namespace}.{}.redrive", route.logical_id),
                logical_id: route.logical_id,
                event_types: route.event_types,
            })
            .collect();
        Ok(Self {
            events_topic: format!("{namespace}.events"),
            partitions: 3,
            groups,
            delivery_limit,
        })
    }

    pub fn group(&self, logical_id: &str) -> Option<&ConsumerGroup> {
        self.groups.iter().find(|g| g.logical_id == logical_id)
    }

    /// The topics to create. Dead-letter and redrive topics keep their messages with no time or
    /// size limit (`retention.ms` and `retention.bytes` -1): a dead letter waits for an operator,
    /// however long that takes, as it does on Redis and NATS; under the broker's default
    /// (`log.retention.hours=168`) it would vanish after 7 days without an error. The events
    /// topic keeps the broker's default retention: a consumer group that falls further behind
    /// than that loses events, so the cluster's retention must exceed any outage of a consumer.
    fn new_topics(&self) -> Vec<NewTopic<'_>> {
        let mut topics = vec![NewTopic::new(
            &self.events_topic,
            self.partitions,
            TopicReplication::Fixed(1),
        )];
        for group in &self.groups {
            for topic in [&group.dead_letter_topic, &group.redrive_topic] {
                topics.push(
                    NewTopic::new(topic, 1, TopicReplication::Fixed(1))
                        .set("retention.ms", "-1")
                        .set("retention.bytes", "-1"),
                );
            }
        }
        topics
    }

    /// Creates the topics that do not exist yet (idempotent: an existing topic is left as it
    /// is). Replication factor 1 suits a single broker; a production cluster's topics are made
    /// by its operators with the same names.
    pub async fn create_topics(&self, url: &KafkaUrl) -> Result<(), KafkaAdapterError> {
        let admin: AdminClient<DefaultClientContext> = url
            .client_config()
            .create()
            .map_err(|e| url.failed("creating an admin client", e))?;
        let topics = self.new_topics();
        let options = AdminOptions::new().operation_timeout(Some(CONNECT_TIMEOUT));
        let created =
            tokio::time::timeout(CONNECT_TIMEOUT * 2, admin.create_topics(&topics, &options))
                .await
                .map_err(|_| KafkaAdapterError::Unreachable {
                    url: url.to_string(),
                    reason: format!("no answer within {:?}", CONNECT_TIMEOUT * 2),
                })?
                .map_err(|e| url.unreachable(&e))?;
        for result in created {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(url.failed(&format!("creating topic {topic}"), code));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::rules_from_template;

    #[test]
    fn the_template_rules_become_one_filtered_group_per_consumer_on_one_topic() {
        let rules = rules_from_template(include_str!("../../../../template.yaml")).unwrap();
        let topology = KafkaTopology::from_rules("activelog", &rules, 5).unwrap();
        assert_eq!(topology.events_topic, "activelog.events");
        let stats = topology.group("StatsQueue").unwrap();
        assert_eq!(stats.group_id, "activelog.StatsQueue");
        assert_eq!(stats.dead_letter_topic, "activelog.StatsQueue.dlq");
        assert_eq!(stats.redrive_topic, "activelog.StatsQueue.redrive");
        assert_eq!(
            stats.event_types,
            ["activity.created", "activity.updated", "activity.deleted"]
        );
        let achievements = topology.group("AchievementsQueue").unwrap();
        assert!(achievements.wants("activity.created"));
        assert!(!achievements.wants("activity.updated"));
    }

    #[test]
    fn dead_letter_and_redrive_topics_are_never_expired_by_the_broker() {
        let rules = rules_from_template(include_str!("../../../../template.yaml")).unwrap();
        let topology = KafkaTopology::from_rules("activelog", &rules, 5).unwrap();
        let topics = topology.new_topics();
        let forever = [("retention.ms", "-1"), ("retention.bytes", "-1")];
        for group in &topology.groups {
            for name in [&group.dead_letter_topic, &group.redrive_topic] {
                let topic = topics.iter().find(|t| t.name == name.as_str()).unwrap();
                assert_eq!(topic.config, forever, "{name}");
            }
        }
        let events = topics
            .iter()
            .find(|t| t.name == "activelog.events")
            .unwrap();
        assert!(events.config.is_empty());
    }

    #[test]
    fn a_pattern_a_type_filter_cannot_express_is_refused() {
        let rule = RoutingRule {
            name: "Big".into(),
            event_pattern: serde_json::json!({"detail-type": ["a"], "detail": {"x": [1]}}),
            target_queue: "Q".into(),
        };
        let error = KafkaTopology::from_rules("n", &[rule], 5).unwrap_err();
        assert!(error.reason.contains("`detail`"), "{error}");
    }
}
