//! Where each consumer's events live in Redis, derived from `template.yaml`'s EventBridge rules
//! so that the template stays the one source of truth for which consumer receives which events.
//!
//! **Routing happens at publish time: one stream per consumer queue.** The template routes by
//! `detail-type` to one queue per consumer (`StatsQueue` gets created/updated/deleted,
//! `AchievementsQueue` only created). A stream per consumer keeps exactly that shape: each
//! consumer group reads only what its rule names, a stream's length is that consumer's backlog,
//! each can be trimmed as its consumer acknowledges (below), and a dead-letter stream belongs
//! to one consumer. One shared stream filtered in the subscriber would make every consumer read,
//! and acknowledge, every event of every other consumer, and no entry could be removed until
//! the slowest group had passed it. The cost is one `XADD` per (event, consumer): a create is
//! written twice, in one `MULTI` so that either both consumers get it or neither does.
//!
//! Keys under `<namespace>` (which keeps stacks, and tests, apart on one server):
//! - `<namespace>:<Queue>`: the consumer's stream, read by consumer group `<Queue>`;
//! - `<namespace>:<Queue>:dlq`: its dead-letter stream.

use crate::adapters::memory::{RoutingRule, TopologyError, consumer_routes};

/// One consumer's stream, group and dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStream {
    /// The queue's logical id in `template.yaml` (`StatsQueue`): the name operators use.
    pub logical_id: String,
    pub stream: String,
    pub group: String,
    pub dead_letter_stream: String,
    /// The event types written to this stream.
    pub event_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTopology {
    pub streams: Vec<ConsumerStream>,
    /// Deliveries after which an entry that keeps failing moves to the dead-letter stream (the
    /// SQS queues' `maxReceiveCount`).
    pub delivery_limit: u32,
}

impl StreamTopology {
    pub fn from_rules(
        namespace: &str,
        rules: &[RoutingRule],
        delivery_limit: u32,
    ) -> Result<Self, TopologyError> {
        let streams = consumer_routes(rules)?
            .into_iter()
            .map(|route| ConsumerStream {
                stream: format!("{namespace}:{}", route.logical_id),
                group: route.logical_id.clone(),
                dead_letter_stream: format!("{namespace}:{}:dlq", route.logical_id),
                logical_id: route.logical_id,
                event_types: route.event_types,
            })
            .collect();
        Ok(Self {
            streams,
            delivery_limit,
        })
    }

    pub fn stream(&self, logical_id: &str) -> Option<&ConsumerStream> {
        self.streams.iter().find(|s| s.logical_id == logical_id)
    }

    /// The streams an event of this type is written to.
    pub fn streams_for<'a>(
        &'a self,
        event_type: &'a str,
    ) -> impl Iterator<Item = &'a ConsumerStream> {
        self.streams
            .iter()
            .filter(move |s| s.event_types.iter().any(|t| t == event_type))
    }
}

/// Creates each consumer group (and its stream) if missing: idempotent, so the publisher and
/// every subscriber declare what they rely on. A group made before any event was written reads
/// from the stream's start.
pub(crate) async fn declare_group(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &ConsumerStream,
) -> Result<(), redis::RedisError> {
    let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream.stream)
        .arg(&stream.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::rules_from_template;

    #[test]
    fn the_template_rules_become_one_stream_per_consumer() {
        let rules = rules_from_template(include_str!("../../../../template.yaml")).unwrap();
        let topology = StreamTopology::from_rules("activelog", &rules, 5).unwrap();
        let stats = topology.stream("StatsQueue").unwrap();
        assert_eq!(stats.stream, "activelog:StatsQueue");
        assert_eq!(stats.dead_letter_stream, "activelog:StatsQueue:dlq");
        let created: Vec<&str> = topology
            .streams_for("activity.created")
            .map(|s| s.logical_id.as_str())
            .collect();
        assert_eq!(created, ["StatsQueue", "AchievementsQueue"]);
        let updated: Vec<&str> = topology
            .streams_for("activity.updated")
            .map(|s| s.logical_id.as_str())
            .collect();
        assert_eq!(updated, ["StatsQueue"]);
        assert_eq!(topology.streams_for("achievement.awarded").count(), 0);
    }
}
