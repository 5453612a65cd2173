//! A consumer's Redis stream as an event source. It reads with `XREADGROUP ... BLOCK` as a named
//! consumer of the stream's group, hands what arrived to the consumer as one batch, and settles
//! each entry only after its verdict, all of a batch in one `MULTI`:
//!
//! - applied and duplicates: `XACK` and `XDEL` (the entry leaves the stream: see the publisher
//!   on trimming);
//! - poison: copied to the dead-letter stream with the reason, then `XACK` + `XDEL`, at once;
//! - retryable: left pending. Redis has no negative acknowledgement: an entry left pending longer
//!   than the visibility timeout is taken over with `XAUTOCLAIM` (by this consumer or any other
//!   of the group), which counts a delivery. Once an entry's delivery count passes the delivery
//!   limit it goes to the dead-letter stream instead of to the consumer again.
//!
//! Redis keeps no connection-bound deliveries: when a subscriber's connection drops or its
//! process dies, what it held stays pending in the group and comes back by `XAUTOCLAIM` after
//! the visibility timeout. The subscriber reconnects with backoff; what was applied but not yet
//! acknowledged comes back and is absorbed by the consumers' processed-event markers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::adapters::broker_session::{Ended, run_sessions};
use crate::consumer::{BatchHandler, RawMessage, Verdict};

use super::connection::{RedisStreamsError, RedisUrl};
use super::topology::{ConsumerStream, StreamTopology, declare_group};

#[derive(Debug, Clone)]
pub struct StreamSubscriberSettings {
    /// Entries per batch handed to the consumer.
    pub batch_size: usize,
    /// How long one read waits for new entries before the subscriber looks for idle ones.
    pub block: Duration,
    /// How long a delivered entry may stay unacknowledged before another delivery takes it over
    /// (the SQS queues' visibility timeout). It is also the pause before a retry.
    pub visibility_timeout: Duration,
    /// First and longest pause between reconnection attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for StreamSubscriberSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            block: Duration::from_secs(1),
            visibility_timeout: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

pub struct RedisStreamsSubscriber {
    url: RedisUrl,
    stream: ConsumerStream,
    delivery_limit: u32,
    /// This subscriber's name in the group: unique, so that two processes never share a name
    /// (and a restarted one claims its predecessor's entries by the visibility timeout).
    consumer: String,
    handler: Arc<dyn BatchHandler>,
    settings: StreamSubscriberSettings,
}

/// One entry as read, with its delivery count.
struct Entry {
    id: String,
    message_id: String,
    /// The body as stored, byte for byte: what a dead letter carries, so that a body the
    /// handler cannot read (missing, not UTF-8) reaches the dead-letter stream unchanged.
    raw_body: Option<Vec<u8>>,
    delivery_count: u32,
}

impl Entry {
    fn from_stream_id(entry: &StreamId, delivery_count: u32) -> Self {
        Self {
            message_id: entry
                .get::<String>("message_id")
                .unwrap_or_else(|| entry.id.clone()),
            raw_body: entry.get::<Vec<u8>>("body"),
            id: entry.id.clone(),
            delivery_count,
        }
    }
}

impl RedisStreamsSubscriber {
    /// A subscriber for the stream of `logical_id` (e.g. `StatsQueue`) in `topology`.
    pub fn new(
        url: RedisUrl,
        topology: &StreamTopology,
        logical_id: &str,
        handler: Arc<dyn BatchHandler>,
        settings: StreamSubscriberSettings,
    ) -> Option<Self> {
        let stream = topology.stream(logical_id)?.clone();
        Some(Self {
            url,
            consumer: format!("{}-{}", stream.group, ulid::Ulid::new()),
            stream,
            delivery_limit: topology.delivery_limit,
            handler,
            settings,
        })
    }

    pub fn stream(&self) -> &ConsumerStream {
        &self.stream
    }

    /// Reads until `shutdown` turns true, reconnecting whenever the connection drops. A batch
    /// in progress is finished and settled before it stops.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        run_sessions(
            &self.stream.stream,
            self.settings.reconnect_min,
            self.settings.reconnect_max,
            shutdown,
            |shutdown| self.consume(shutdown),
        )
        .await;
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> Ended<RedisStreamsError> {
        let mut connection = match self
            .url
            .connect(self.settings.block + Duration::from_secs(5))
            .await
        {
            Ok(connection) => connection,
            Err(error) => return Ended::Failed(error),
        };
        if let Err(error) = declare_group(&mut connection, &self.stream).await {
            return Ended::Failed(self.url.failed("creating the consumer group", error));
        }
        let claim_every = (self.settings.visibility_timeout / 4).max(Duration::from_millis(100));
        let mut next_claim = Instant::now();
        let mut claim_cursor = "0-0".to_owned();
        loop {
            if *shutdown.borrow() {
                return Ended::Shutdown;
            }
            if Instant::now() >= next_claim {
                let (cursor, reclaimed) = match self.reclaim(&mut connection, &claim_cursor).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        return Ended::Dropped(self.url.failed("claiming idle entries", error));
                    }
                };
                // A full page means more may be idle: look again at once.
                if cursor == "0-0" || reclaimed.len() < self.settings.batch_size {
                    next_claim = Instant::now() + claim_every;
                }
                claim_cursor = cursor;
                if !reclaimed.is_empty() {
                    if let Err(error) = self.handle(&mut connection, reclaimed).await {
                        return Ended::Dropped(self.url.failed("settling a batch", error));
                    }
                    continue;
                }
            }
            let read = tokio::select! {
                _ = shutdown.changed() => return Ended::Shutdown,
                read = self.read_new(&mut connection) => read,
            };
            match read {
                Ok(entries) if entries.is_empty() => {}
                Ok(entries) => {
                    if let Err(error) = self.handle(&mut connection, entries).await {
                        return Ended::Dropped(self.url.failed("settling a batch", error));
                    }
                }
                Err(error) => return Ended::Dropped(self.url.failed("reading the stream", error)),
            }
        }
    }

    /// Entries never delivered to the group, waiting up to the block time for some.
    async fn read_new(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> Result<Vec<Entry>, redis::RedisError> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.stream.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.settings.batch_size)
            .arg("BLOCK")
            .arg(u64::try_from(self.settings.block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.stream.stream)
            .arg(">")
            .query_async(connection)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| Entry::from_stream_id(&entry, 1))
            .collect())
    }

    /// Takes over entries pending longer than the visibility timeout (this delivery counts),
    /// scanning the group's pending list from `cursor`; returns the next cursor and the entries
    /// with their delivery counts.
    async fn reclaim(
        &self,
        connection: &mut MultiplexedConnection,
        cursor: &str,
    ) -> Result<(String, Vec<Entry>), redis::RedisError> {
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream.stream)
            .arg(&self.stream.group)
            .arg(&self.consumer)
            .arg(u64::try_from(self.settings.visibility_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg(cursor)
            .arg("COUNT")
            .arg(self.settings.batch_size)
            .query_async(connection)
            .await?;
        // One `XPENDING` per claimed id (pipelined): a range query with `COUNT` = the number
        // claimed can be filled by this consumer's other pending entries in the same range, and
        // a claimed entry left out would get an understated count and never be dead-lettered.
        let mut query = redis::pipe();
        for entry in &claimed.claimed {
            query
                .cmd("XPENDING")
                .arg(&self.stream.stream)
                .arg(&self.stream.group)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1);
        }
        let pending: Vec<StreamPendingCountReply> = if claimed.claimed.is_empty() {
            Vec::new()
        } else {
            query.query_async(connection).await?
        };
        let deliveries: HashMap<String, usize> = pending
            .into_iter()
            .flat_map(|reply| reply.ids)
            .map(|p| (p.id, p.times_delivered))
            .collect();
        let entries = claimed
            .claimed
            .iter()
            .map(|entry| {
                let count = deliveries.get(&entry.id).copied().unwrap_or(2);
                Entry::from_stream_id(entry, u32::try_from(count).unwrap_or(u32::MAX))
            })
            .collect();
        Ok((claimed.next_stream_id, entries))
    }

    /// Hands what is within the delivery limit to the consumer, writes the dead letters (what
    /// passed the limit and what is poison), then settles every entry by its verdict in one
    /// transaction.
    async fn handle(
        &self,
        connection: &mut MultiplexedConnection,
        entries: Vec<Entry>,
    ) -> Result<(), redis::RedisError> {
        let (exhausted, fresh): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|entry| entry.delivery_count > self.delivery_limit);
        let messages: Vec<RawMessage> = fresh
            .iter()
            .map(|entry| RawMessage {
                message_id: entry.message_id.clone(),
                // Not UTF-8 reads as no body: the handler judges it poison.
                body: entry
                    .raw_body
                    .as_ref()
                    .and_then(|bytes| String::from_utf8(bytes.clone()).ok()),
                delivery_count: entry.delivery_count,
                // A stream entry has no headers: the envelope's `traceparent` is the only one.
                transport_trace: None,
            })
            .collect();
        let verdicts = if messages.is_empty() {
            Vec::new()
        } else {
            self.handler.handle_batch(&messages).await
        };
        let mut settle = redis::pipe();
        settle.atomic();
        let mut retried = 0;
        let mut dead: Vec<(&Entry, &str)> = exhausted
            .iter()
            .map(|entry| (entry, "delivery_limit"))
            .collect();
        for (index, entry) in fresh.iter().enumerate() {
            // A missing verdict is a failure: the entry comes back rather than being lost.
            match verdicts.get(index).copied().unwrap_or(Verdict::Retry) {
                Verdict::Applied | Verdict::Duplicate => self.forget(&mut settle, entry),
                Verdict::Poison => dead.push((entry, "poison")),
                Verdict::Retry => retried += 1,
            }
        }
        // Each dead letter is written, and its result checked, before its original is
        // acknowledged and deleted: `MULTI` does not roll back, so an `XADD` failing at `EXEC`
        // (e.g. `WRONGTYPE` on the dead-letter key) would still let the `XACK` and `XDEL` run.
        // A failure here leaves every entry of the batch pending, to come back.
        for (entry, reason) in &dead {
            self.dead_letter(connection, entry, reason).await?;
            self.forget(&mut settle, entry);
        }
        if retried > 0 {
            tracing::warn!(stream = %self.stream.stream, retried, received = fresh.len(), "batch had retryable failures; they come back after the visibility timeout");
        }
        if !exhausted.is_empty() {
            tracing::warn!(stream = %self.stream.stream, dead_lettered = exhausted.len(), "entries passed the delivery limit; moved to the dead-letter stream");
        }
        settle.query_async::<()>(connection).await
    }

    fn forget(&self, settle: &mut redis::Pipeline, entry: &Entry) {
        settle
            .cmd("XACK")
            .arg(&self.stream.stream)
            .arg(&self.stream.group)
            .arg(&entry.id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream.stream)
            .arg(&entry.id)
            .ignore();
    }

    /// Writes the dead letter of `entry` to the dead-letter stream (the original stays).
    async fn dead_letter(
        &self,
        connection: &mut MultiplexedConnection,
        entry: &Entry,
        reason: &str,
    ) -> Result<(), redis::RedisError> {
        let mut add = redis::cmd("XADD");
        add.arg(&self.stream.dead_letter_stream)
            .arg("*")
            .arg("message_id")
            .arg(&entry.message_id);
        // A missing body stays missing; any other is copied as bytes.
        if let Some(body) = &entry.raw_body {
            add.arg("body").arg(body.as_slice());
        }
        add.arg("reason")
            .arg(reason)
            .arg("delivery_count")
            .arg(entry.delivery_count);
        add.query_async::<String>(connection).await.map(drop)
    }
}
