//! The operator's view of the consumer streams, for the `/_local/` endpoints: backlogs, the
//! dead-lettered entries (listed with `XRANGE`, which consumes nothing), redrive (all of them,
//! or one by its message id) to the consumer's stream, and sending a raw entry to a stream (to
//! try a poison message).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};
use serde::Serialize;

use super::connection::{RedisStreamsError, RedisUrl};
use super::topology::{ConsumerStream, StreamTopology};

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Moves dead-letter entry `ARGV[1]` of stream `KEYS[1]` back to stream `KEYS[2]`: its
/// `message_id` and `body` fields (not the dead letter's `reason` and `delivery_count`), then
/// deletes it. Answers 1, or 0 when there is no such entry.
const MOVE_BACK: &str = r"
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entries == 0 then return 0 end
local fields = entries[1][2]
local add = {'XADD', KEYS[2], '*'}
for i = 1, #fields, 2 do
  if fields[i] == 'message_id' or fields[i] == 'body' then
    table.insert(add, fields[i])
    table.insert(add, fields[i + 1])
  end
end
redis.call(unpack(add))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
";

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
    /// Each is moved on its own by `move_back`. Only what was there when the redrive began is
    /// moved: an entry that is still poison comes back within milliseconds, and moving it again
    /// would never end.
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
            let letters = self.page(&mut connection, stream, &from, &last).await?;
            let Some(newest_read) = letters.last() else {
                return Ok(moved);
            };
            from = format!("({}", newest_read.id);
            for letter in &letters {
                if self.move_back(&mut connection, stream, &letter.id).await? {
                    moved += 1;
                }
            }
        }
    }

    /// Moves the one dead-lettered entry whose `message_id` (the id `peek` lists) is
    /// `message_id` back to the consumer stream, the oldest if it was dead-lettered more than
    /// once; `false` if there is none. The others stay where and as they were.
    pub async fn redrive_one(
        &self,
        stream: &ConsumerStream,
        message_id: &str,
    ) -> Result<bool, RedisStreamsError> {
        let mut connection = self.connect().await?;
        let mut from = "-".to_owned();
        loop {
            let letters = self.page(&mut connection, stream, &from, "+").await?;
            let Some(newest_read) = letters.last() else {
                return Ok(false);
            };
            from = format!("({}", newest_read.id);
            let found = letters
                .iter()
                .find(|letter| letter.get::<String>("message_id").as_deref() == Some(message_id));
            if let Some(letter) = found {
                return self.move_back(&mut connection, stream, &letter.id).await;
            }
        }
    }

    /// The next hundred dead-letter entries from `from` up to `to` (`XRANGE` bounds), oldest
    /// first.
    async fn page(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &ConsumerStream,
        from: &str,
        to: &str,
    ) -> Result<Vec<StreamId>, RedisStreamsError> {
        let letters: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream.dead_letter_stream)
            .arg(from)
            .arg(to)
            .arg("COUNT")
            .arg(100)
            .query_async(connection)
            .await
            .map_err(|e| self.url.failed("reading dead letters", e))?;
        Ok(letters.ids)
    }

    /// Moves the dead-letter entry `entry_id` back to the consumer stream (its `message_id` and
    /// its body, as bytes: a body that is not UTF-8 goes back exactly as it came); `false` if it
    /// is gone. One script, so the read, the `XADD` and the `XDEL` are one step for the server:
    /// an interruption neither loses nor duplicates the entry, and two redrives of the same
    /// entry at once move it once.
    async fn move_back(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &ConsumerStream,
        entry_id: &str,
    ) -> Result<bool, RedisStreamsError> {
        let moved: i64 = redis::cmd("EVAL")
            .arg(MOVE_BACK)
            .arg(2)
            .arg(&stream.dead_letter_stream)
            .arg(&stream.stream)
            .arg(entry_id)
            .query_async(connection)
            .await
            .map_err(|e| self.url.failed("redriving a dead letter", e))?;
        Ok(moved == 1)
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
