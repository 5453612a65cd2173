//! `EventPublisher` over Redis Streams. One `MULTI`/`EXEC` per publish writes every record to the
//! stream of each consumer its rules name (`XADD`, fields `message_id` = `event_id`,
//! `event_type` and `body`, the EventBridge-shaped event the consumers read on every transport).
//! A publish counts once `EXEC` answered; when it fails, or its answer is lost, every record of
//! the call is reported failed and stays in the outbox for the relay. A connection that failed is
//! reopened on the next publish, so a server restart costs a delay, never an event.
//!
//! **No trace header.** A stream entry has fields, not headers: the trace position travels only
//! in the envelope's `traceparent`, which the consumers read on every transport.
//!
//! **No de-duplication at publish.** A relay that publishes an event the request path already
//! published (an answer lost after `EXEC`) writes it again; the consumers' processed-event
//! markers absorb it, as they absorb every redelivery. A de-dup key per event would cost a write
//! and a Lua script per event and still need those markers for redeliveries.
//!
//! **No length cap.** Entries are deleted as their consumer acknowledges them (`XACK` + `XDEL`
//! in the subscriber), so a stream holds exactly its consumer's backlog. `XADD MAXLEN ~` was
//! rejected: it trims by count whether or not the entries were consumed, so a consumer that is
//! down long enough would silently lose events. A backlog that grows until Redis reaches
//! `maxmemory` makes `XADD` fail instead: the events then wait in the outbox, nothing is lost.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::adapters::memory::eventbridge_event_text;
use crate::application::{EventPublisher, FailedEntry, OutboxRecord, PublishError, PublishReport};

use super::connection::{RedisStreamsError, RedisUrl};
use super::topology::{StreamTopology, declare_group};

/// How long `EXEC` may take; past it the call counts as failed (the records stay in the outbox).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisStreamsPublisher {
    url: RedisUrl,
    topology: StreamTopology,
    /// `None` after a failure, reopened on the next publish.
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl RedisStreamsPublisher {
    /// Connects and creates the consumer groups, so that no event is written before its group
    /// exists. An unreachable server is an error here, so that a process fails at start-up.
    pub async fn connect(
        url: RedisUrl,
        topology: StreamTopology,
    ) -> Result<Self, RedisStreamsError> {
        let connection = open(&url, &topology).await?;
        Ok(Self {
            url,
            topology,
            connection: Mutex::new(Some(connection)),
        })
    }

    pub fn topology(&self) -> &StreamTopology {
        &self.topology
    }
}

async fn open(
    url: &RedisUrl,
    topology: &StreamTopology,
) -> Result<MultiplexedConnection, RedisStreamsError> {
    let mut connection = url.connect(RESPONSE_TIMEOUT).await?;
    for stream in &topology.streams {
        declare_group(&mut connection, stream)
            .await
            .map_err(|e| url.failed("creating a consumer group", e))?;
    }
    Ok(connection)
}

#[async_trait]
impl EventPublisher for RedisStreamsPublisher {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut writes = 0;
        for record in records {
            let event_id = record.event_id.to_string();
            let body = eventbridge_event_text(record, &event_id);
            for stream in self.topology.streams_for(record.event_type.as_str()) {
                pipe.cmd("XADD")
                    .arg(&stream.stream)
                    .arg("*")
                    .arg("message_id")
                    .arg(&event_id)
                    .arg("event_type")
                    .arg(record.event_type.as_str())
                    .arg("body")
                    .arg(&body)
                    .ignore();
                writes += 1;
            }
        }
        if writes == 0 {
            // No rule wants these events, as EventBridge accepts an event no rule matches.
            return Ok(PublishReport::default());
        }
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            let opened = open(&self.url, &self.topology)
                .await
                .map_err(|e| PublishError::Unavailable(e.to_string()))?;
            tracing::info!(server = %self.url, "publisher connected again");
            *connection = Some(opened);
        }
        let Some(link) = connection.as_mut() else {
            return Err(PublishError::Unavailable("no connection".into()));
        };
        match pipe.query_async::<()>(link).await {
            Ok(()) => Ok(PublishReport::default()),
            Err(error) => {
                tracing::warn!(server = %self.url, %error, records = records.len(), "publish to Redis failed; the events stay in the outbox");
                *connection = None;
                Ok(PublishReport {
                    failed: records
                        .iter()
                        .map(|record| FailedEntry {
                            event_id: record.event_id,
                            error_code: "Unavailable".into(),
                            error_message: error.to_string(),
                        })
                        .collect(),
                })
            }
        }
    }
}
