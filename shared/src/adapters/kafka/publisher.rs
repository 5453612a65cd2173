//! `EventPublisher` over Kafka. A publish counts only once the cluster acknowledged the write on
//! every in-sync replica (`acks=all`), from an idempotent producer (the producer's own retries
//! never write a record twice); only then does the use case release the outbox record. Each
//! event goes to the one events topic, keyed by its user id so that a user's events stay in
//! order, with headers for event type, version, correlation id and event id. Whatever is not
//! acknowledged within the delivery timeout is reported as failed and stays in the outbox for the
//! relay; a producer the client declares unusable (a fatal idempotence error, e.g. after a broker
//! lost its producer state) is replaced before the next publish.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::RwLock;

use crate::adapters::memory::eventbridge_event_text;
use crate::application::{EventPublisher, FailedEntry, OutboxRecord, PublishError, PublishReport};

use super::connection::{KafkaAdapterError, KafkaUrl};
use super::topology::KafkaTopology;

/// How long a write may take to be acknowledged, retries included; past it the event counts as
/// unconfirmed (it stays in the outbox, and a late write is absorbed by the consumers as a
/// duplicate).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The headers every published event carries (read by the consumers' filters, operators and
/// Lambda's Kafka event source).
pub mod headers {
    pub const EVENT_TYPE: &str = "event_type";
    pub const EVENT_VERSION: &str = "event_version";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const EVENT_ID: &str = crate::consumer::msk::EVENT_ID_HEADER;
    /// The transport's id of the message: the event id for events, a fresh id for a raw message
    /// an operator sent (the role of an AMQP message id).
    pub const MESSAGE_ID: &str = "message_id";
    /// The W3C `traceparent` of the span that wrote the event.
    pub const TRACE: &str = crate::domain::TraceParent::HEADER;
}

pub struct KafkaPublisher {
    url: KafkaUrl,
    topology: KafkaTopology,
    producer: RwLock<FutureProducer>,
}

impl KafkaPublisher {
    /// Creates the topics that are missing and an idempotent producer. An unreachable cluster is
    /// an error here, so that a process fails at start-up rather than later.
    pub async fn connect(
        url: KafkaUrl,
        topology: KafkaTopology,
    ) -> Result<Self, KafkaAdapterError> {
        topology.create_topics(&url).await?;
        let producer = producer(&url)?;
        Ok(Self {
            url,
            topology,
            producer: RwLock::new(producer),
        })
    }

    pub fn topology(&self) -> &KafkaTopology {
        &self.topology
    }

    /// Replaces the producer when the client says it can no longer be used.
    async fn renew_if_fatal(&self) {
        let fatal = self.producer.read().await.client().fatal_error();
        if let Some((code, reason)) = fatal {
            tracing::warn!(broker = %self.url, ?code, reason, "producer unusable; replacing it");
            match producer(&self.url) {
                Ok(fresh) => *self.producer.write().await = fresh,
                Err(error) => tracing::error!(%error, "cannot replace the producer"),
            }
        }
    }
}

fn producer(url: &KafkaUrl) -> Result<FutureProducer, KafkaAdapterError> {
    url.client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "delivery.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        // Sends from several requests at once are batched for at most this long.
        .set("linger.ms", "1")
        .create()
        .map_err(|e| url.failed("creating a producer", e))
}

/// The event's headers and key (its user id), from the envelope.
fn headers_and_key(record: &OutboxRecord) -> (OwnedHeaders, String) {
    let detail: serde_json::Value =
        serde_json::from_str(&record.detail).unwrap_or(serde_json::Value::Null);
    let text = |name: &str| detail.get(name).and_then(serde_json::Value::as_str);
    let event_id = record.event_id.to_string();
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(record.event_type.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(event_id.as_str()),
        })
        .insert(Header {
            key: headers::MESSAGE_ID,
            value: Some(event_id.as_str()),
        });
    if let Some(version) = detail
        .get("event_version")
        .and_then(serde_json::Value::as_i64)
    {
        headers = headers.insert(Header {
            key: headers::EVENT_VERSION,
            value: Some(version.to_string().as_str()),
        });
    }
    if let Some(correlation_id) = text("correlation_id") {
        headers = headers.insert(Header {
            key: headers::CORRELATION_ID,
            value: Some(correlation_id),
        });
    }
    if let Some(trace) = record.trace_parent() {
        headers = headers.insert(Header {
            key: headers::TRACE,
            value: Some(trace.to_string().as_str()),
        });
    }
    // An envelope without a user id still has a stable key: its aggregate, or its own id.
    let key = text("user_id")
        .or_else(|| text("aggregate_id"))
        .map_or(event_id, str::to_owned);
    (headers, key)
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        self.renew_if_fatal().await;
        let producer = self.producer.read().await.clone();
        let prepared: Vec<(String, OwnedHeaders, String)> = records
            .iter()
            .map(|record| {
                let body = eventbridge_event_text(record, &record.event_id.to_string());
                let (headers, key) = headers_and_key(record);
                (body, headers, key)
            })
            .collect();
        let sends = prepared.iter().map(|(body, headers, key)| {
            producer.send(
                FutureRecord::to(&self.topology.events_topic)
                    .key(key)
                    .payload(body)
                    .headers(headers.clone()),
                // How long a send may wait for room in the client's queue.
                Duration::from_secs(1),
            )
        });
        let delivered = futures_util::future::join_all(sends).await;
        let mut report = PublishReport::default();
        for (record, outcome) in records.iter().zip(delivered) {
            if let Err((error, _)) = outcome {
                report.failed.push(FailedEntry {
                    event_id: record.event_id,
                    error_code: "NotAcknowledged".into(),
                    error_message: error.to_string(),
                });
            }
        }
        if !report.failed.is_empty() {
            tracing::warn!(broker = %self.url, failed = report.failed.len(), "events not acknowledged by the cluster stay in the outbox");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    #[test]
    fn an_event_is_keyed_by_its_user_and_carries_its_headers() {
        let record = OutboxRecord {
            event_id: crate::domain::EventId::from_ulid(ulid::Ulid::from_parts(1, 2)),
            event_type: crate::domain::EventType::ActivityCreated,
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            detail: serde_json::json!({"user_id": "alice", "event_version": 2, "correlation_id": "req-1"})
                .to_string(),
            trace_header: None,
        };
        let (headers, key) = headers_and_key(&record);
        assert_eq!(key, "alice");
        let found: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        let event_id = record.event_id.to_string();
        assert_eq!(
            found,
            [
                ("event_type".to_owned(), "activity.created".to_owned()),
                ("event_id".to_owned(), event_id.clone()),
                ("message_id".to_owned(), event_id),
                ("event_version".to_owned(), "2".to_owned()),
                ("correlation_id".to_owned(), "req-1".to_owned()),
            ]
        );
    }
}
