//! The operator's view of the dead-letter topics, for the `/_local/` endpoints and the tests:
//! list the dead letters not yet redriven (without consuming them), redrive them to the
//! consumer's redrive topic, and send a raw message there (to try a poison message).
//!
//! A topic is an append-only log, so "redriven" is a position, not a deletion: the operator's own
//! consumer group `<group>.dlq-redrive` commits the offset up to which the dead-letter topic was
//! redriven. Listing shows what lies past that offset; a redrive republishes it, waits until the
//! cluster acknowledged every republished message, and only then commits, so an interruption
//! may redrive a message twice (the consumer absorbs it) but never loses one. The redrive topic
//! is read by that consumer's group only, so a redriven stats event does not reach the other
//! consumers again.
//!
//! One dead letter cannot be redriven by moving that offset: it marks every record before it
//! too. And a topic cannot delete one record, while the committed offset's metadata, which could
//! hold a list, is not kept by every broker (tansu answers `OffsetFetch` without it). So a
//! redrive of one appends a marker to the dead-letter topic itself, naming the redriven record's
//! offset: listing, depth and redrive-all read every record past the redriven offset anyway, and
//! skip the markers and the records they name. The marker is appended only once the republish
//! was acknowledged: an interruption may redrive the record twice, never lose it.
//!
//! Two redrives at once could both read a record before either appended its marker, and both
//! republish it; so a process runs its redrives one at a time (`REDRIVES`), and the second reads
//! the first one's marker. Two processes redriving the same topic at once may still republish a
//! record twice, which its consumer absorbs as a duplicate.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use serde::Serialize;

use super::connection::{CONNECT_TIMEOUT, KafkaAdapterError, KafkaUrl};
use super::publisher::headers;
use super::subscriber::{dead_letter_headers, dead_letter_producer, header, message_id};
use super::topology::{ConsumerGroup, KafkaTopology};

/// The header of a marker record: the offset of the dead letter redriven on its own.
const REDRIVEN_OFFSET: &str = "activelog_redriven_offset";

/// This process's redrives (all, or one), one at a time: see the module's note.
static REDRIVES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long to wait for a message the watermarks say is there.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaDeadLetter {
    pub message_id: String,
    pub body: String,
    /// Why it was dead-lettered (`poison`, `retries exhausted`).
    pub reason: Option<String>,
    /// Deliveries it had before.
    pub attempts: Option<u32>,
}

pub struct KafkaDeadLetters {
    url: KafkaUrl,
    topology: KafkaTopology,
}

/// Dead letters past the redriven offset (not the markers, nor the records they name), and
/// where the topic ends.
struct Pending {
    consumer: Arc<StreamConsumer>,
    messages: Vec<OwnedMessage>,
    end: i64,
}

impl KafkaDeadLetters {
    pub fn new(url: KafkaUrl, topology: KafkaTopology) -> Self {
        Self { url, topology }
    }

    pub fn group(&self, logical_id: &str) -> Option<&ConsumerGroup> {
        self.topology.group(logical_id)
    }

    pub fn topology(&self) -> &KafkaTopology {
        &self.topology
    }

    /// How many dead letters of each consumer wait for a redrive, by logical id.
    pub async fn depths(&self) -> Result<Vec<(String, u64)>, KafkaAdapterError> {
        let mut depths = Vec::new();
        for group in &self.topology.groups {
            // Read, not only the watermarks: the markers of one-by-one redrives are in the range.
            let pending = self.pending(group, usize::MAX).await?;
            depths.push((group.logical_id.clone(), pending.messages.len() as u64));
        }
        Ok(depths)
    }

    /// Up to `max` dead letters of a consumer not redriven yet, left in place.
    pub async fn peek(
        &self,
        group: &ConsumerGroup,
        max: usize,
    ) -> Result<Vec<KafkaDeadLetter>, KafkaAdapterError> {
        let pending = self.pending(group, max).await?;
        Ok(pending
            .messages
            .iter()
            .map(|message| KafkaDeadLetter {
                message_id: message_id(message),
                body: message
                    .payload()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
                reason: header(message, dead_letter_headers::REASON),
                attempts: header(message, dead_letter_headers::ATTEMPTS)
                    .and_then(|a| a.parse().ok()),
            })
            .collect())
    }

    /// Republishes every dead letter of a consumer not redriven yet to its redrive topic, then
    /// marks them redriven; returns how many.
    pub async fn redrive(&self, group: &ConsumerGroup) -> Result<usize, KafkaAdapterError> {
        let _one_at_a_time = REDRIVES.lock().await;
        let pending = self.pending(group, usize::MAX).await?;
        let producer = dead_letter_producer(&self.url)?;
        for message in &pending.messages {
            self.republish(&producer, group, message).await?;
        }
        let mut redriven = TopicPartitionList::new();
        redriven
            .add_partition_offset(&group.dead_letter_topic, 0, Offset::Offset(pending.end))
            .map_err(|e| self.url.failed("marking dead letters redriven", e))?;
        let consumer = Arc::clone(&pending.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&redriven, CommitMode::Sync))
            .await
            .map_err(|e| self.url.failed("marking dead letters redriven", e))?
            .map_err(|e| self.url.failed("marking dead letters redriven", e))?;
        Ok(pending.messages.len())
    }

    /// Republishes the one dead letter of a consumer not redriven yet whose message id (the id
    /// `peek` lists) is `message_id`, the oldest if it was dead-lettered more than once, then
    /// appends the marker that takes it out of the dead letters (see the module's note); `false`
    /// if there is none. The redriven offset does not move, so the others stay as they were.
    pub async fn redrive_one(
        &self,
        group: &ConsumerGroup,
        message_id: &str,
    ) -> Result<bool, KafkaAdapterError> {
        let _one_at_a_time = REDRIVES.lock().await;
        let pending = self.pending(group, usize::MAX).await?;
        let Some(letter) = pending
            .messages
            .iter()
            .find(|letter| super::subscriber::message_id(letter) == message_id)
        else {
            return Ok(false);
        };
        let producer = dead_letter_producer(&self.url)?;
        self.republish(&producer, group, letter).await?;
        let offset = letter.offset().to_string();
        let marker = FutureRecord::<[u8], [u8]>::to(&group.dead_letter_topic)
            .partition(0)
            .headers(OwnedHeaders::new().insert(Header {
                key: REDRIVEN_OFFSET,
                value: Some(offset.as_str()),
            }));
        self.acknowledged(&producer, marker).await?;
        Ok(true)
    }

    /// Republishes a dead letter to its consumer's redrive topic as it was: key, body, headers
    /// (the trace context and message id among them).
    async fn republish(
        &self,
        producer: &FutureProducer,
        group: &ConsumerGroup,
        message: &OwnedMessage,
    ) -> Result<(), KafkaAdapterError> {
        let mut record = FutureRecord::to(&group.redrive_topic);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        if let Some(headers) = message.headers() {
            record = record.headers(headers.clone());
        }
        self.acknowledged(producer, record).await
    }

    /// Sends a raw body straight to a consumer (its redrive topic); returns its message id.
    pub async fn send(
        &self,
        group: &ConsumerGroup,
        body: &str,
    ) -> Result<String, KafkaAdapterError> {
        let producer = dead_letter_producer(&self.url)?;
        let message_id = ulid::Ulid::new().to_string();
        let record = FutureRecord::to(&group.redrive_topic)
            .key(message_id.as_bytes())
            .payload(body.as_bytes())
            .headers(OwnedHeaders::new().insert(Header {
                key: headers::MESSAGE_ID,
                value: Some(message_id.as_str()),
            }));
        self.acknowledged(&producer, record).await?;
        Ok(message_id)
    }

    async fn acknowledged(
        &self,
        producer: &FutureProducer,
        record: FutureRecord<'_, [u8], [u8]>,
    ) -> Result<(), KafkaAdapterError> {
        producer
            .send(record, Duration::from_secs(1))
            .await
            .map(|_| ())
            .map_err(|(error, _)| self.url.failed("publishing to a topic", error))
    }

    /// The operator's consumer of a dead-letter topic (it never joins the group: it assigns the
    /// partition itself and only commits the redriven offset).
    fn operator(&self, group: &ConsumerGroup) -> Result<Arc<StreamConsumer>, KafkaAdapterError> {
        self.url
            .client_config()
            .set("group.id", format!("{}.dlq-redrive", group.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map(Arc::new)
            .map_err(|e| self.url.failed("creating a consumer", e))
    }

    /// Where the not-yet-redriven dead letters start (the redriven offset, or the topic's
    /// beginning) and where the topic ends.
    async fn window(
        &self,
        consumer: &Arc<StreamConsumer>,
        group: &ConsumerGroup,
    ) -> Result<(i64, i64), KafkaAdapterError> {
        // Both calls block for up to CONNECT_TIMEOUT each: on a blocking thread, so that an
        // unreachable broker does not hold a Tokio worker (or, on a current-thread runtime,
        // every task).
        let (consumer, topic, url) = (
            Arc::clone(consumer),
            group.dead_letter_topic.clone(),
            self.url.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let (low, high) = consumer
                .fetch_watermarks(&topic, 0, CONNECT_TIMEOUT)
                .map_err(|e| url.unreachable(&e))?;
            let mut partition = TopicPartitionList::new();
            partition.add_partition(&topic, 0);
            let committed = consumer
                .committed_offsets(partition, CONNECT_TIMEOUT)
                .map_err(|e| url.failed("reading the redriven offset", e))?;
            let redriven = committed
                .elements()
                .first()
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                })
                .unwrap_or(low);
            Ok((redriven.max(low), high))
        })
        .await
        .map_err(|e| self.url.failed("reading the redriven offset", e))?
    }

    async fn pending(
        &self,
        group: &ConsumerGroup,
        max: usize,
    ) -> Result<Pending, KafkaAdapterError> {
        let consumer = self.operator(group)?;
        let (start, end) = self.window(&consumer, group).await?;
        let mut messages = Vec::new();
        if start < end {
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&group.dead_letter_topic, 0, Offset::Offset(start))
                .map_err(|e| self.url.failed("reading dead letters", e))?;
            consumer
                .assign(&assignment)
                .map_err(|e| self.url.failed("reading dead letters", e))?;
            // Every record up to the end, whatever `max`: a marker may follow the records it
            // names.
            loop {
                let message = tokio::time::timeout(READ_TIMEOUT, consumer.recv())
                    .await
                    .map_err(|_| KafkaAdapterError::Unreachable {
                        url: self.url.to_string(),
                        reason: format!("dead letters not readable within {READ_TIMEOUT:?}"),
                    })?
                    .map_err(|e| self.url.failed("reading dead letters", e))?
                    .detach();
                let offset = message.offset();
                messages.push(message);
                if offset + 1 >= end {
                    break;
                }
            }
        }
        let redriven: std::collections::HashSet<i64> = messages
            .iter()
            .filter_map(|message| header(message, REDRIVEN_OFFSET)?.parse().ok())
            .collect();
        messages.retain(|message| {
            header(message, REDRIVEN_OFFSET).is_none() && !redriven.contains(&message.offset())
        });
        messages.truncate(max);
        Ok(Pending {
            consumer,
            messages,
            end,
        })
    }
}
