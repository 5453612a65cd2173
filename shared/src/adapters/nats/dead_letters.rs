//! The operator's view of the JetStream consumers, for the `/_local/` endpoints: backlogs, the
//! dead-lettered messages (read by sequence, which consumes nothing), redrive (all of them, or
//! one by its message id) to the consumer's direct subject, and sending a raw message to a
//! consumer (to try a poison message).

use async_nats::jetstream::Context;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use serde::Serialize;

use super::connection::{NatsError, NatsUrl};
use super::topology::{ConsumerSubjects, NatsTopology};
use crate::domain::TraceParent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConsumerDepth {
    /// Messages not yet acknowledged: waiting, or delivered and awaiting their verdict.
    pub backlog: u64,
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

pub struct NatsDeadLetters {
    url: NatsUrl,
    topology: NatsTopology,
}

/// How many dead letters one listing or redrive reads at most.
const MOST: usize = 10_000;

impl NatsDeadLetters {
    pub fn new(url: NatsUrl, topology: NatsTopology) -> Self {
        Self { url, topology }
    }

    pub fn queue(&self, logical_id: &str) -> Option<&ConsumerSubjects> {
        self.topology.queue(logical_id)
    }

    async fn open(&self) -> Result<(Context, Stream), NatsError> {
        let (_client, context) = self.url.connect().await?;
        self.topology.declare(&self.url, &context).await?;
        let dead_letters = context
            .get_stream(&self.topology.dead_letter_stream)
            .await
            .map_err(|e| self.url.failed("opening the dead-letter stream", e))?;
        Ok((context, dead_letters))
    }

    /// The dead letters of `queue`, oldest first, up to `max`, left in place. Only "no message
    /// found" ends the subject: any other error (a timeout, a dropped connection) is returned,
    /// so that `depths` never undercounts and `redrive` never reports a partial move as done.
    async fn stored(
        &self,
        dead_letters: &Stream,
        queue: &ConsumerSubjects,
        max: usize,
    ) -> Result<Vec<StreamMessage>, NatsError> {
        let mut letters = Vec::new();
        let mut next = 1;
        while letters.len() < max {
            let letter = match dead_letters
                .get_first_raw_message_by_subject(&queue.dead_letter_subject, next)
                .await
            {
                Ok(letter) => letter,
                Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(error) => return Err(self.url.failed("reading dead letters", error)),
            };
            next = letter.sequence + 1;
            letters.push(letter);
        }
        Ok(letters)
    }

    /// Every consumer queue's depth, by logical id.
    pub async fn depths(&self) -> Result<Vec<(String, ConsumerDepth)>, NatsError> {
        let (context, dead_letters) = self.open().await?;
        let events = context
            .get_stream(&self.topology.stream)
            .await
            .map_err(|e| self.url.failed("opening the events stream", e))?;
        let mut depths = Vec::new();
        for queue in &self.topology.queues {
            let mut backlog = 0;
            for durable in &queue.consumers {
                let info = events
                    .consumer_info(&durable.durable_name)
                    .await
                    .map_err(|e| self.url.failed("reading a consumer", e))?;
                backlog += info.num_pending + info.num_ack_pending as u64;
            }
            let dead_lettered = self.stored(&dead_letters, queue, MOST).await?.len();
            depths.push((
                queue.logical_id.clone(),
                ConsumerDepth {
                    backlog,
                    dead_lettered,
                },
            ));
        }
        Ok(depths)
    }

    pub async fn peek(
        &self,
        queue: &ConsumerSubjects,
        max: usize,
    ) -> Result<Vec<DeadLetter>, NatsError> {
        let (_context, dead_letters) = self.open().await?;
        Ok(self
            .stored(&dead_letters, queue, max)
            .await?
            .iter()
            .map(|letter| {
                let header = |name: &str| {
                    letter
                        .headers
                        .get(name)
                        .map(|value| value.as_str().to_owned())
                };
                DeadLetter {
                    message_id: header("Activelog-Message-Id").unwrap_or_default(),
                    body: String::from_utf8_lossy(&letter.payload).into_owned(),
                    reason: header("Activelog-Reason"),
                    delivery_count: header("Activelog-Delivery-Count")
                        .and_then(|count| count.parse().ok()),
                }
            })
            .collect())
    }

    /// Moves every dead letter of `queue` back to it (its direct subject, so no other consumer
    /// sees it again); returns how many.
    pub async fn redrive(&self, queue: &ConsumerSubjects) -> Result<usize, NatsError> {
        let (context, dead_letters) = self.open().await?;
        let mut moved = 0;
        for letter in self.stored(&dead_letters, queue, MOST).await? {
            if self
                .move_back(&context, &dead_letters, queue, &letter)
                .await?
            {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Moves the one dead letter of `queue` whose message id (`Activelog-Message-Id`, the id
    /// `peek` lists) is `message_id` back to it, the oldest if it was dead-lettered more than
    /// once; `false` if there is none. The dead-letter stream addresses a message by its
    /// sequence, so the others are neither read by a consumer nor touched.
    pub async fn redrive_one(
        &self,
        queue: &ConsumerSubjects,
        message_id: &str,
    ) -> Result<bool, NatsError> {
        let (context, dead_letters) = self.open().await?;
        let found = self
            .stored(&dead_letters, queue, MOST)
            .await?
            .into_iter()
            .find(|letter| {
                letter
                    .headers
                    .get("Activelog-Message-Id")
                    .is_some_and(|id| id.as_str() == message_id)
            });
        let Some(letter) = found else {
            return Ok(false);
        };
        self.move_back(&context, &dead_letters, queue, &letter)
            .await
    }

    /// Republishes one dead letter to its queue's direct subject and then deletes it by its
    /// sequence. It is removed only after its republish was acknowledged, and the republish's
    /// `Nats-Msg-Id` is derived from the dead letter's sequence: an interrupted redrive that
    /// runs again is dropped by the server within the duplicate window, and absorbed by the
    /// consumers after it. Two redrives of the same dead letter at once (a double click, two
    /// operators) both read it and republish it under that same id, so the server keeps one
    /// message; only one of them deletes it, and the other answers `false`, as if it had read the
    /// dead letters a moment later.
    async fn move_back(
        &self,
        context: &Context,
        dead_letters: &Stream,
        queue: &ConsumerSubjects,
        letter: &StreamMessage,
    ) -> Result<bool, NatsError> {
        let mut message = PublishMessage::build()
            .payload(letter.payload.clone())
            .message_id(format!("redrive-{}-{}", queue.logical_id, letter.sequence));
        // The consumer's headers back as they came (its message id, the trace context it was
        // published with), not the dead letter's own (reason, delivery count).
        for name in ["Activelog-Message-Id", TraceParent::HEADER] {
            if let Some(value) = letter.headers.get(name) {
                message = message.header(name, value.as_str());
            }
        }
        self.publish(context, &queue.direct_subject, message)
            .await?;
        let error = match dead_letters.delete_message(letter.sequence).await {
            Ok(deleted) => return Ok(deleted),
            Err(error) => error,
        };
        // The server answers the delete of a message deleted meanwhile with a generic "delete
        // failed" whose reason is only text: whether the message is still there says which.
        match dead_letters.get_raw_message(letter.sequence).await {
            Err(gone) if gone.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
            _ => Err(self.url.failed("removing a redriven dead letter", error)),
        }
    }

    /// Publishes a raw body to `queue`'s direct subject; returns its message id.
    pub async fn send(&self, queue: &ConsumerSubjects, body: &str) -> Result<String, NatsError> {
        let (context, _dead_letters) = self.open().await?;
        let message_id = ulid::Ulid::new().to_string();
        let message = PublishMessage::build()
            .payload(body.to_owned().into())
            .message_id(&message_id);
        self.publish(&context, &queue.direct_subject, message)
            .await?;
        Ok(message_id)
    }

    async fn publish(
        &self,
        context: &Context,
        subject: &str,
        message: PublishMessage,
    ) -> Result<(), NatsError> {
        context
            .send_publish(subject.to_owned(), message)
            .await
            .map_err(|e| self.url.failed("publishing to a consumer", e))?
            .await
            .map_err(|e| self.url.failed("publishing to a consumer", e))?;
        Ok(())
    }
}
