//! `EventPublisher` over RabbitMQ. A publish counts only once the broker confirms it (publisher
//! confirms): persistent messages to the durable topic exchange, routing key = event type,
//! `mandatory` so that an event no queue is bound to comes back instead of vanishing, message
//! id = `event_id` and headers for event type, version, correlation id and the W3C `traceparent`
//! of the span that wrote the event (the AMQP header a tracing consumer reads). Whatever is not
//! confirmed is reported as failed and stays in the outbox for the relay; a dropped connection is
//! reopened on the next publish, so a broker restart costs a delay, never an event.

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::Mutex;

use crate::adapters::memory::eventbridge_event_text;
use crate::application::{EventPublisher, FailedEntry, OutboxRecord, PublishError, PublishReport};
use crate::domain::TraceParent;

use super::connection::{BrokerUrl, RabbitMqError};
use super::topology::Topology;

/// AMQP delivery mode of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

/// How long a confirm may take; past it the event counts as unconfirmed (it stays in the outbox
/// and a duplicate publish later is absorbed by the consumers).
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct RabbitMqPublisher {
    url: BrokerUrl,
    topology: Topology,
    /// The open connection and its confirm-mode channel; `None` after a failure, reopened on
    /// the next publish. Publishes are serialised on it, which keeps confirms in order.
    link: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitMqPublisher {
    /// Connects, declares the topology and puts a channel in confirm mode. An unreachable
    /// broker is an error here, so that a process fails at start-up rather than later.
    pub async fn connect(url: BrokerUrl, topology: Topology) -> Result<Self, RabbitMqError> {
        let link = open(&url, &topology).await?;
        Ok(Self {
            url,
            topology,
            link: Mutex::new(Some(link)),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn properties(record: &OutboxRecord, detail: &serde_json::Value) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(
            "event_type".into(),
            AMQPValue::LongString(LongString::from(record.event_type.as_str())),
        );
        if let Some(version) = detail
            .get("event_version")
            .and_then(serde_json::Value::as_i64)
        {
            headers.insert("event_version".into(), AMQPValue::LongLongInt(version));
        }
        let mut properties = BasicProperties::default()
            .with_message_id(ShortString::from(record.event_id.to_string()))
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT)
            .with_type(ShortString::from(record.event_type.as_str()))
            .with_app_id("activelog".into())
            .with_timestamp(u64::try_from(record.occurred_at.unix_timestamp()).unwrap_or(0));
        if let Some(correlation_id) = detail.get("correlation_id").and_then(|c| c.as_str()) {
            headers.insert(
                "correlation_id".into(),
                AMQPValue::LongString(LongString::from(correlation_id)),
            );
            properties = properties.with_correlation_id(ShortString::from(correlation_id));
        }
        if let Some(trace) = record.trace_parent() {
            headers.insert(
                TraceParent::HEADER.into(),
                AMQPValue::LongString(LongString::from(trace.to_string())),
            );
        }
        properties.with_headers(headers)
    }

    fn failure(record: &OutboxRecord, code: &str, message: String) -> FailedEntry {
        FailedEntry {
            event_id: record.event_id,
            error_code: code.to_owned(),
            error_message: message,
        }
    }
}

async fn open(
    url: &BrokerUrl,
    topology: &Topology,
) -> Result<(Connection, Channel), RabbitMqError> {
    let (connection, channel) = url.channel().await?;
    topology.declare(url, &channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| url.failed("enabling publisher confirms", e))?;
    Ok((connection, channel))
}

#[async_trait]
impl EventPublisher for RabbitMqPublisher {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        let mut link = self.link.lock().await;
        if link.is_none() {
            let opened = open(&self.url, &self.topology)
                .await
                .map_err(|e| PublishError::Unavailable(e.to_string()))?;
            tracing::info!(broker = %self.url, "publisher connected again");
            *link = Some(opened);
        }
        let Some((_, channel)) = link.as_ref() else {
            return Err(PublishError::Unavailable("no channel".into()));
        };
        let mut report = PublishReport::default();
        let mut pending = Vec::new();
        let mut broken = false;
        for record in records {
            let detail: serde_json::Value =
                serde_json::from_str(&record.detail).unwrap_or(serde_json::Value::Null);
            let body = eventbridge_event_text(record, &record.event_id.to_string());
            let sent = channel
                .basic_publish(
                    self.topology.exchange.as_str().into(),
                    record.event_type.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body.as_bytes(),
                    Self::properties(record, &detail),
                )
                .await;
            match sent {
                Ok(confirm) => pending.push((record, confirm)),
                Err(error) => {
                    broken = true;
                    report
                        .failed
                        .push(Self::failure(record, "Unavailable", error.to_string()));
                }
            }
        }
        for (record, confirm) in pending {
            let Ok(confirmed) = tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await else {
                broken = true;
                report.failed.push(Self::failure(
                    record,
                    "Timeout",
                    format!("no confirm within {CONFIRM_TIMEOUT:?}"),
                ));
                continue;
            };
            match confirmed {
                Ok(Confirmation::Ack(None)) => {}
                Ok(Confirmation::Ack(Some(_returned))) => {
                    if self.topology.routes(record.event_type.as_str()) {
                        // A rule wants this event but no queue took it: the topology is gone
                        // (a queue deleted by hand). Keep it in the outbox.
                        report.failed.push(Self::failure(
                            record,
                            "NoRoute",
                            "returned unroutable although a rule routes this event type".into(),
                        ));
                    } else {
                        // No rule wants it, as EventBridge accepts an event no rule matches.
                        tracing::debug!(event_id = %record.event_id, event_type = %record.event_type, "no consumer subscribes to this event type");
                    }
                }
                Ok(Confirmation::Nack(_)) => report.failed.push(Self::failure(
                    record,
                    "Nack",
                    "the broker refused the message".into(),
                )),
                Ok(Confirmation::NotRequested) => report.failed.push(Self::failure(
                    record,
                    "NotConfirmed",
                    "the channel is not in confirm mode".into(),
                )),
                Err(error) => {
                    broken = true;
                    report
                        .failed
                        .push(Self::failure(record, "Unavailable", error.to_string()));
                }
            }
        }
        if broken {
            tracing::warn!(broker = %self.url, failed = report.failed.len(), "connection to the broker lost; unconfirmed events stay in the outbox");
            *link = None;
        }
        Ok(report)
    }
}
