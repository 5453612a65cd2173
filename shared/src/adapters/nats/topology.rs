//! The JetStream layout, derived from `template.yaml`'s EventBridge rules so that the template
//! stays the one source of truth for which consumer receives which events:
//!
//! - stream `<namespace>-events`, subjects `<namespace>.events.<event type>` (one subject per
//!   event type: routing is the consumers' filters, an event is stored once) and
//!   `<namespace>.direct.<Queue>` (what the operator sends or redrives to one consumer only);
//!   file storage, and a duplicate window in which a second publish with the same `Nats-Msg-Id`
//!   (= `event_id`) is dropped by the server. **Trimming: limits retention with no age
//!   limit**, bounded by size ([`MAX_BYTES`]) with `discard: New`: a full stream refuses the
//!   publish, the publish fails and the event stays in the outbox until there is room (as
//!   Redis does at `maxmemory`). A `max_age` would delete an event a consumer had not yet
//!   acknowledged (one down for longer, or one still being retried) with no dead letter and no
//!   error, after the outbox had already released it. **Not done yet**: removing what every
//!   consumer has acknowledged (a periodic purge up to the lowest ack floor of the stream's
//!   consumers), so the stream only grows until an operator purges it (`nats stream purge`) or
//!   it reaches [`MAX_BYTES`] and publishing stops. A stream declared by an earlier version
//!   keeps its 7-day `max_age` until it is edited (`nats stream edit --max-age 0`): declaring
//!   does not change an existing stream. Interest retention (a message removed
//!   once every interested consumer acknowledged it) would keep the stream at the backlog, but
//!   on the nats-server 2.9.10 of this project's machines it lost a message across a restart in
//!   4 of 6 runs of the conformance suite's restart test (one consumer had acknowledged it, the
//!   other had it delivered and unacknowledged; after the restart it was gone), and 0 of 4 with
//!   limits retention;
//! - per consumer queue, durable pull consumers with explicit acks and ack wait = the visibility
//!   timeout: **one per event type of its rule** (`StatsQueue-activity_created`, ...) plus one
//!   for its direct subject. The NATS server of this project's machines is 2.9, which takes one
//!   filter subject per consumer; on 2.10+ one consumer with `filter_subjects` would do;
//! - stream `<namespace>-dead-letters`, subjects `<namespace>.dead-letters.<Queue>`, kept until
//!   the operator redrives or removes them.
//!
//! The server's own delivery limit (`max_deliver`) is not used: a message past it just stops
//! being delivered and stays in the stream, seen only by an advisory. The subscriber counts
//! deliveries itself (the delivery count of the message info) and moves a message past the
//! limit to the dead-letter stream.
//!
//! Declaring is idempotent, so the publisher and every subscriber declare what they rely on. A
//! consumer is declared with `DeliverPolicy::All`, so one made after events were published still
//! reads them.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};

use crate::adapters::memory::{RoutingRule, TopologyError, consumer_routes};

use super::connection::{NatsError, NatsUrl};

/// How long the server remembers a `Nats-Msg-Id` to drop a second publish of it: longer than
/// a relay's grace period plus a pass, so that a relay republishing what the request path
/// already published is dropped at the server.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The most the events stream stores (1 GiB) before it refuses new publishes (`discard: New`),
/// which then wait in the outbox: nothing stored is ever deleted to make room.
pub const MAX_BYTES: i64 = 1 << 30;

/// A durable pull consumer and the one subject it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullConsumer {
    pub durable_name: String,
    pub filter_subject: String,
}

/// One consumer queue's consumers and subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSubjects {
    /// The queue's logical id in `template.yaml` (`StatsQueue`): the name operators use.
    pub logical_id: String,
    pub event_types: Vec<String>,
    pub consumers: Vec<PullConsumer>,
    pub direct_subject: String,
    pub dead_letter_subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTopology {
    pub namespace: String,
    pub stream: String,
    pub subject_prefix: String,
    pub dead_letter_stream: String,
    pub queues: Vec<ConsumerSubjects>,
    /// Deliveries after which a message that keeps failing is dead-lettered (the SQS queues'
    /// `maxReceiveCount`).
    pub delivery_limit: u32,
    /// How long a delivered message may stay unacknowledged before the server delivers it
    /// again (the SQS queues' visibility timeout).
    pub ack_wait: Duration,
}

/// Whether `token` may stand in a stream name or one subject token.
fn plain_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl NatsTopology {
    /// The layout for these rules under `namespace` (letters, digits, `-` and `_`: it names
    /// streams and is a subject token).
    pub fn from_rules(
        namespace: &str,
        rules: &[RoutingRule],
        delivery_limit: u32,
        ack_wait: Duration,
    ) -> Result<Self, TopologyError> {
        if !plain_token(namespace) {
            return Err(TopologyError {
                rule: String::new(),
                reason: format!("namespace `{namespace}` must be letters, digits, - and _"),
            });
        }
        let mut queues = Vec::new();
        for route in consumer_routes(rules)? {
            let mut consumers = Vec::new();
            for event_type in &route.event_types {
                if !event_type.split('.').all(plain_token) {
                    return Err(TopologyError {
                        rule: route.logical_id.clone(),
                        reason: format!("event type `{event_type}` is not a NATS subject"),
                    });
                }
                consumers.push(PullConsumer {
                    durable_name: format!("{}-{}", route.logical_id, event_type.replace('.', "_")),
                    filter_subject: format!("{namespace}.events.{event_type}"),
                });
            }
            let direct_subject = format!("{namespace}.direct.{}", route.logical_id);
            consumers.push(PullConsumer {
                durable_name: format!("{}-direct", route.logical_id),
                filter_subject: direct_subject.clone(),
            });
            queues.push(ConsumerSubjects {
                dead_letter_subject: format!("{namespace}.dead-letters.{}", route.logical_id),
                logical_id: route.logical_id,
                event_types: route.event_types,
                consumers,
                direct_subject,
            });
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            stream: format!("{namespace}-events"),
            subject_prefix: format!("{namespace}.events"),
            dead_letter_stream: format!("{namespace}-dead-letters"),
            queues,
            delivery_limit,
            ack_wait,
        })
    }

    pub fn queue(&self, logical_id: &str) -> Option<&ConsumerSubjects> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// The subject an event of this type is published to.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.subject_prefix)
    }

    /// Creates the streams and every durable consumer if missing (idempotent).
    pub async fn declare(&self, url: &NatsUrl, context: &Context) -> Result<(), NatsError> {
        let namespace = &self.namespace;
        let events = context
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![
                    format!("{}.>", self.subject_prefix),
                    format!("{namespace}.direct.>"),
                ],
                retention: RetentionPolicy::Limits,
                max_bytes: MAX_BYTES,
                discard: DiscardPolicy::New,
                storage: StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..stream::Config::default()
            })
            .await
            // The reservation is named in the error: "insufficient storage resources" (10047) means
            // the server's JetStream storage limit is below it.
            .map_err(|e| {
                let doing = format!(
                    "declaring the events stream (it reserves {} MiB of the server's JetStream storage)",
                    MAX_BYTES >> 20
                );
                url.failed(&doing, e)
            })?;
        context
            .get_or_create_stream(stream::Config {
                name: self.dead_letter_stream.clone(),
                subjects: vec![format!("{namespace}.dead-letters.>")],
                retention: RetentionPolicy::Limits,
                storage: StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| url.failed("declaring the dead-letter stream", e))?;
        for queue in &self.queues {
            for consumer in &queue.consumers {
                events
                    .get_or_create_consumer(
                        &consumer.durable_name,
                        pull::Config {
                            durable_name: Some(consumer.durable_name.clone()),
                            filter_subject: consumer.filter_subject.clone(),
                            deliver_policy: DeliverPolicy::All,
                            ack_policy: AckPolicy::Explicit,
                            ack_wait: self.ack_wait,
                            max_deliver: -1,
                            ..pull::Config::default()
                        },
                    )
                    .await
                    .map_err(|e| url.failed("declaring a consumer", e))?;
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
    fn the_template_rules_become_filtered_consumers_per_queue() {
        let rules = rules_from_template(include_str!("../../../../template.yaml")).unwrap();
        let topology =
            NatsTopology::from_rules("activelog", &rules, 5, Duration::from_secs(30)).unwrap();
        assert_eq!(topology.stream, "activelog-events");
        assert_eq!(
            topology.subject("activity.created"),
            "activelog.events.activity.created"
        );
        let achievements = topology.queue("AchievementsQueue").unwrap();
        let filters: Vec<&str> = achievements
            .consumers
            .iter()
            .map(|c| c.filter_subject.as_str())
            .collect();
        assert_eq!(
            filters,
            [
                "activelog.events.activity.created",
                "activelog.direct.AchievementsQueue"
            ]
        );
        assert_eq!(topology.queue("StatsQueue").unwrap().consumers.len(), 4);
        assert_eq!(
            achievements.consumers[0].durable_name,
            "AchievementsQueue-activity_created"
        );
    }

    #[test]
    fn a_namespace_that_is_no_subject_token_is_refused() {
        assert!(NatsTopology::from_rules("a.b", &[], 5, Duration::from_secs(1)).is_err());
    }
}
