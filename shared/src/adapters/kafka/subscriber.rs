//! A consumer group as an event source. Reads the events topic and the group's redrive topic,
//! gathers what has arrived into a batch, skips the event types its rule does not name, hands
//! the rest to the consumer, and commits the batch's offsets only once every message of it is
//! settled:
//!
//! - applied and duplicates are done;
//! - retryable failures are handed to the consumer again in this process, after a backoff that
//!   doubles, up to the topology's delivery limit (Kafka has no per-message redelivery: a log
//!   moves on by offset, so the retry happens here, holding the partition, which keeps each
//!   user's order); one that never succeeds is dead-lettered;
//! - poison is dead-lettered at once.
//!
//! Dead-lettering writes the message to the group's dead-letter topic with headers saying why
//! (`dead_letter_reason`, `dead_letter_attempts`) and where it came from, and counts only once
//! the cluster acknowledged it. If that or the commit fails, or the consumer dies, nothing is
//! committed: the group hands the uncommitted messages to the next consumer, those already
//! applied come back and are absorbed by the consumers' processed-event markers. So nothing is
//! lost and nothing is applied twice. After a failure the subscriber rejoins with backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::watch;

use crate::consumer::{BatchHandler, RawMessage, Verdict, traceparent_header};

use super::connection::{KafkaAdapterError, KafkaUrl};
use super::publisher::headers;
use super::topology::{ConsumerGroup, KafkaTopology};

/// The longest pause between two in-process retries of a batch.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// Headers a dead letter carries besides the original ones.
pub mod dead_letter_headers {
    pub const REASON: &str = "dead_letter_reason";
    pub const ATTEMPTS: &str = "dead_letter_attempts";
    pub const TOPIC: &str = "original_topic";
    pub const PARTITION: &str = "original_partition";
    pub const OFFSET: &str = "original_offset";
}

#[derive(Debug, Clone)]
pub struct SubscriberSettings {
    /// Messages per batch handed to the consumer.
    pub batch_size: usize,
    /// How long to wait for more messages once the first of a batch arrived.
    pub batch_window: Duration,
    /// Pause before the first in-process retry; doubled for each further one.
    pub retry_delay: Duration,
    /// First and longest pause between attempts to rejoin after a failure.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How long the group waits for a silent member before handing its partitions to others.
    pub session_timeout: Duration,
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            batch_window: Duration::from_millis(20),
            retry_delay: Duration::from_millis(500),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
        }
    }
}

pub struct KafkaSubscriber {
    url: KafkaUrl,
    topology: KafkaTopology,
    group: ConsumerGroup,
    handler: Arc<dyn BatchHandler>,
    settings: SubscriberSettings,
}

/// Why a consuming session ended.
enum Ended {
    Shutdown,
    Failed(KafkaAdapterError),
}

impl KafkaSubscriber {
    /// A subscriber for the consumer group of `logical_id` (e.g. `StatsQueue`) in `topology`.
    pub fn new(
        url: KafkaUrl,
        topology: KafkaTopology,
        logical_id: &str,
        handler: Arc<dyn BatchHandler>,
        settings: SubscriberSettings,
    ) -> Result<Self, KafkaAdapterError> {
        let group =
            topology
                .group(logical_id)
                .cloned()
                .ok_or_else(|| KafkaAdapterError::Broker {
                    url: url.to_string(),
                    doing: "subscribing".into(),
                    reason: format!("no consumer group for `{logical_id}` in the template's rules"),
                })?;
        Ok(Self {
            url,
            topology,
            group,
            handler,
            settings,
        })
    }

    /// Consumes until `shutdown` turns true, rejoining with backoff after failures.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut pause = self.settings.reconnect_min;
        loop {
            match self.consume(&mut shutdown).await {
                Ended::Shutdown => return,
                Ended::Failed(error) => {
                    tracing::warn!(%error, group = %self.group.group_id, retry_in = ?pause, "consumer failed; rejoining");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.settings.reconnect_max);
        }
    }

    fn consumer(&self) -> Result<StreamConsumer, KafkaAdapterError> {
        self.url
            .client_config()
            .set("group.id", &self.group.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                self.settings.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.settings.session_timeout.as_millis() / 4).to_string(),
            )
            .create()
            .map_err(|e| self.url.failed("creating a consumer", e))
    }

    async fn consume(&self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        if let Err(error) = self.topology.create_topics(&self.url).await {
            return Ended::Failed(error);
        }
        // Shared with the blocking thread that commits (see `commit`).
        let consumer = match self.consumer() {
            Ok(consumer) => Arc::new(consumer),
            Err(error) => return Ended::Failed(error),
        };
        let dead_letters = match dead_letter_producer(&self.url) {
            Ok(producer) => producer,
            Err(error) => return Ended::Failed(error),
        };
        let topics = [
            self.topology.events_topic.as_str(),
            self.group.redrive_topic.as_str(),
        ];
        if let Err(error) = consumer.subscribe(&topics) {
            return Ended::Failed(self.url.failed("subscribing", error));
        }
        tracing::info!(group = %self.group.group_id, broker = %self.url, "consuming");
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => return Ended::Shutdown,
                next = consumer.recv() => next,
            };
            let first = match first {
                Ok(message) => message.detach(),
                Err(error) => {
                    if let Some((_, reason)) = consumer.client().fatal_error() {
                        return Ended::Failed(self.url.failed("consuming", reason));
                    }
                    // The client reconnects by itself; say so and carry on.
                    tracing::debug!(%error, group = %self.group.group_id, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            let window = tokio::time::sleep(self.settings.batch_window);
            tokio::pin!(window);
            while batch.len() < self.settings.batch_size {
                tokio::select! {
                    () = &mut window => break,
                    next = consumer.recv() => match next {
                        Ok(message) => batch.push(message.detach()),
                        Err(_) => break,
                    },
                }
            }
            match self
                .settle(&consumer, &dead_letters, &batch, shutdown)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Ended::Shutdown,
                Err(error) => return Ended::Failed(error),
            }
        }
    }

    /// Hands the batch to the consumer until every message is settled, then commits its
    /// offsets. `Ok(false)`: shut down before the batch was settled (nothing committed).
    async fn settle(
        &self,
        consumer: &Arc<StreamConsumer>,
        dead_letters: &FutureProducer,
        batch: &[OwnedMessage],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, KafkaAdapterError> {
        let mut pending: Vec<&OwnedMessage> = batch
            .iter()
            .filter(|message| self.wanted(message))
            .collect();
        let mut attempt: u32 = 1;
        while !pending.is_empty() {
            let raw: Vec<RawMessage> = pending
                .iter()
                .map(|message| raw_message(message, attempt))
                .collect();
            let verdicts = self.handler.handle_batch(&raw).await;
            let mut retry = Vec::new();
            for (index, message) in pending.into_iter().enumerate() {
                // A missing verdict is a failure: the message is retried rather than lost.
                match verdicts.get(index).copied().unwrap_or(Verdict::Retry) {
                    Verdict::Applied | Verdict::Duplicate => {}
                    Verdict::Poison => {
                        self.dead_letter(dead_letters, message, "poison", attempt)
                            .await?;
                    }
                    Verdict::Retry if attempt >= self.topology.delivery_limit => {
                        self.dead_letter(dead_letters, message, "retries exhausted", attempt)
                            .await?;
                    }
                    Verdict::Retry => retry.push(message),
                }
            }
            if !retry.is_empty() {
                let pause = self
                    .settings
                    .retry_delay
                    .checked_mul(2u32.saturating_pow(attempt - 1))
                    .map_or(MAX_RETRY_PAUSE, |pause| pause.min(MAX_RETRY_PAUSE));
                tracing::warn!(group = %self.group.group_id, retry = retry.len(), attempt, ?pause, "retryable failures; handing them again after a pause");
                tokio::select! {
                    _ = shutdown.changed() => return Ok(false),
                    () = tokio::time::sleep(pause) => {}
                }
            }
            pending = retry;
            attempt += 1;
        }
        self.commit(consumer, batch).await?;
        Ok(true)
    }

    /// Whether the consumer gets this message: a redriven or operator-sent one always does; an
    /// event only if its rule names its type. A message whose type cannot be read is handed
    /// over, for the consumer to judge (it will call it poison).
    fn wanted(&self, message: &OwnedMessage) -> bool {
        if message.topic() == self.group.redrive_topic {
            return true;
        }
        event_type(message).is_none_or(|event_type| self.group.wants(&event_type))
    }

    async fn dead_letter(
        &self,
        producer: &FutureProducer,
        message: &OwnedMessage,
        reason: &str,
        attempts: u32,
    ) -> Result<(), KafkaAdapterError> {
        let mut headers = message
            .headers()
            .map_or_else(OwnedHeaders::new, carried_headers);
        let (partition, offset) = (
            message.partition().to_string(),
            message.offset().to_string(),
        );
        let attempts = attempts.to_string();
        for (key, value) in [
            (dead_letter_headers::REASON, reason),
            (dead_letter_headers::ATTEMPTS, attempts.as_str()),
            (dead_letter_headers::TOPIC, message.topic()),
            (dead_letter_headers::PARTITION, partition.as_str()),
            (dead_letter_headers::OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::to(&self.group.dead_letter_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(1))
            .await
            .map_err(|(error, _)| self.url.failed("writing a dead letter", error))?;
        tracing::error!(group = %self.group.group_id, reason, %attempts, message_id = %message_id(message), "message dead-lettered");
        Ok(())
    }

    /// Commits past every message of the batch, partition by partition. A synchronous commit
    /// blocks until the broker answers, so it runs on a blocking thread: on an unreachable
    /// broker it would otherwise hold a Tokio worker (on a current-thread runtime, every task,
    /// the shutdown watch included).
    async fn commit(
        &self,
        consumer: &Arc<StreamConsumer>,
        batch: &[OwnedMessage],
    ) -> Result<(), KafkaAdapterError> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for message in batch {
            let entry = next
                .entry((message.topic(), message.partition()))
                .or_insert(0);
            *entry = (*entry).max(message.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| self.url.failed("committing offsets", e))?;
        }
        let consumer = Arc::clone(consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
            .await
            .map_err(|e| self.url.failed("committing offsets", e))?
            .map_err(|e| self.url.failed("committing offsets", e))
    }
}

pub(crate) fn dead_letter_producer(url: &KafkaUrl) -> Result<FutureProducer, KafkaAdapterError> {
    url.client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("delivery.timeout.ms", "10000")
        .create()
        .map_err(|e| url.failed("creating a producer", e))
}

/// The headers a dead letter copies from its message: all but an earlier dead-lettering's
/// (`dead_letter_*`, `original_*`), which a redriven message still carries and which `header`,
/// taking the first match, would otherwise report instead of this dead-lettering's.
fn carried_headers(original: &OwnedHeaders) -> OwnedHeaders {
    original
        .iter()
        .filter(|header| {
            !header.key.starts_with("dead_letter_") && !header.key.starts_with("original_")
        })
        .fold(OwnedHeaders::new(), |headers, header| {
            headers.insert(header)
        })
}

/// A header's value as text.
pub(crate) fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    message.headers()?.iter().find_map(|header| {
        (header.key == name)
            .then(|| {
                header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .flatten()
    })
}

/// The event type: the publisher's header, or the body's `detail-type`.
fn event_type(message: &OwnedMessage) -> Option<String> {
    header(message, headers::EVENT_TYPE).or_else(|| {
        let body: serde_json::Value = serde_json::from_slice(message.payload()?).ok()?;
        body.get("detail-type")?.as_str().map(str::to_owned)
    })
}

pub(crate) fn message_id(message: &OwnedMessage) -> String {
    header(message, headers::MESSAGE_ID)
        .or_else(|| header(message, headers::EVENT_ID))
        .unwrap_or_else(|| {
            format!(
                "{}/{}@{}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        })
}

/// The message as the consumers see it; `attempt` counts this process's deliveries of it.
fn raw_message(message: &OwnedMessage, attempt: u32) -> RawMessage {
    RawMessage {
        message_id: message_id(message),
        body: message
            .payload()
            .and_then(|payload| String::from_utf8(payload.to_vec()).ok()),
        delivery_count: attempt,
        transport_trace: traceparent_header(header(message, headers::TRACE).as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_drops_the_headers_of_an_earlier_dead_lettering() {
        let redriven = [
            ("event_type", "activity.created"),
            (dead_letter_headers::REASON, "poison"),
            (dead_letter_headers::ATTEMPTS, "1"),
            (dead_letter_headers::TOPIC, "old.events"),
            (dead_letter_headers::PARTITION, "3"),
            (dead_letter_headers::OFFSET, "42"),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        });
        let kept: Vec<String> = carried_headers(&redriven)
            .iter()
            .map(|header| header.key.to_owned())
            .collect();
        assert_eq!(kept, ["event_type"]);
    }
}
