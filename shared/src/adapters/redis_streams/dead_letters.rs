//! The operator's view of the consumer streams, for the `/_local/` endpoints: backlogs, the
//! dead-lettered entries (listed with `XRANGE`, which consumes nothing), redrive to the
//! consumer's stream, and sending a raw entry to a stream (to try a poison message).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};
use serde::Serialize;

use super::connection::{RedisStreamsError, RedisUrl};
use super::topology::{ConsumerStream, StreamTopology};

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreamDepth {
    /// Entries not yet acknowledged: waiting, or delivered and awaiting their verdict.
    pub backlog: usize,
    pub dead_lettered: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// `poison` (the consumer's verdict) or `delivery_limit`.
    pub reason: Option<String>,
    pub delivery_count: Option<u32>,
}

pub struct StreamDeadLetters {
    url: RedisUrl,
    topology: StreamTopology,
}

impl StreamDeadLetters {
    pub fn new(url: RedisUrl, topology: StreamTopology) -> Self {
        Self { url, topology }
    }

    pub fn stream(&self, logical_id: &str) -> Option<&ConsumerStream> {
        self.topology.stream(logical_id)
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisStreamsError> {
        self.url.connect(RESPONSE_TIMEOUT).await
    }

    /// Every consumer stream's depth, by logical id.
    pub async fn depths(&self) -> Result<Vec<(String, StreamDepth)>, RedisStreamsError> {
        let mut connection = self.connect().await?;
        let mut depths = Vec::new();
        for stream in &self.topology.streams {
            let (backlog, dead_lettered): (usize, usize) = redis::pipe()
                .cmd("XLEN")
                .arg(&stream.stream)
                .cmd("XLEN")
                .arg(&stream.dead_letter_stream)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.url.failed("reading a stream's length", e))?;
            depths.push((
                stream.logical_id.clone(),
                StreamDepth {
                    backlog,
                    dead_lettered,
                },
            ));
        }
        Ok(depths)
    }

    /// The oldest `max` dead-lettered entries of a consumer stream, left in place.
    pub async fn peek(
        &self,
        stream: &ConsumerStream,
        max: usize,
    ) -> Result<Vec<DeadLetter>, RedisStreamsError> {
        let mut connection = self.connect().await?;
        Ok(self
            .oldest_dead_letters(&mut connection, stream, max)
            .await?
            .iter()
            .map(|entry| DeadLetter {
                message_id: entry.get("message_id").unwrap_or_default(),
                body: entry
                    .get::<Vec<u8>>("body")
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default(),
                reason: entry.get("reason"),
                delivery_count: entry.get("delivery_count"),
            })
            .collect())
    }

    async fn oldest_dead_letters(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &ConsumerStream,
        max: usize,
    ) -> Result<Vec<StreamId>, RedisStreamsError> {
        let range: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream.dead_letter_stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(connection)
            .await
            .map_err(|e| self.url.failed("reading dead letters", e))?;
        Ok(range.ids)
    }

    /// Moves the entries dead-lettered so far back to the consumer stream; returns how many.
    /// Each move (`XADD` to the stream, `XDEL` from the dead-letter stream) is one transaction,
    /// so an interruption neither loses nor duplicates an entry. Only what was there when the
    /// redrive began is moved: an entry that is still poison comes back within milliseconds,
    /// and moving it again would never end.
    pub async fn redrive(&self, stream: &ConsumerStream) -> Result<usize, RedisStreamsError> {
        let mut connection = self.connect().await?;
        let newest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&stream.dead_letter_stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.url.failed("reading dead letters", e))?;
        let Some(last) = newest.ids.first().map(|entry| entry.id.clone()) else {
            return Ok(0);
        };
        let mut from = "-".to_owned();
        let mut moved = 0;
        loop {
            let letters: StreamRangeReply = redis::cmd("XRANGE")
                .arg(&stream.dead_letter_stream)
                .arg(&from)
                .arg(&last)
                .arg("COUNT")
                .arg(100)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.url.failed("reading dead letters", e))?;
            let Some(newest_read) = letters.ids.last() else {
                return Ok(moved);
            };
            from = format!("({}", newest_read.id);
            for letter in &letters.ids {
                let message_id: String = letter.get("message_id").unwrap_or_default();
                // Bytes, not a String: a body that is not UTF-8 goes back exactly as it came.
                let body: Option<Vec<u8>> = letter.get("body");
                let mut pipe = redis::pipe();
                let add = pipe
                    .atomic()
                    .cmd("XADD")
                    .arg(&stream.stream)
                    .arg("*")
                    .arg("message_id")
                    .arg(&message_id);
                if let Some(body) = &body {
                    add.arg("body").arg(body.as_slice());
                }
                add.ignore()
                    .cmd("XDEL")
                    .arg(&stream.dead_letter_stream)
                    .arg(&letter.id)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|e| self.url.failed("redriving a dead letter", e))?;
                moved += 1;
            }
        }
    }

    /// Writes a raw body straight to a consumer stream; returns its message id.
    pub async fn send(
        &self,
        stream: &ConsumerStream,
        body: &str,
    ) -> Result<String, RedisStreamsError> {
        let mut connection = self.connect().await?;
        let message_id = ulid::Ulid::new().to_string();
        redis::cmd("XADD")
            .arg(&stream.stream)
            .arg("*")
            .arg("message_id")
            .arg(&message_id)
            .arg("body")
            .arg(body)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| self.url.failed("sending to a stream", e))?;
        Ok(message_id)
    }
}
