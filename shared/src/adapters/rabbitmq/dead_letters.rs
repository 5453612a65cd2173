//! The operator's view of the broker queues, for the `/_local/` endpoints: depths, the
//! dead-lettered messages (listed without being consumed), redrive (all of them, or one by its
//! message id) to the consumer's queue, and sending a raw message to a queue (to try a poison
//! message).

use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use serde::Serialize;

use super::connection::{BrokerUrl, RabbitMqError};
use super::topology::{ConsumerQueue, Topology};
use crate::adapters::dead_letter_search::found_within_a_few_looks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Messages ready for the consumer (not those delivered and awaiting their verdict).
    pub visible: u32,
    pub dead_lettered: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// Why the broker dead-lettered it (`rejected`, `delivery_limit`...), from `x-death`.
    pub reason: Option<String>,
}

pub struct DeadLetters {
    url: BrokerUrl,
    topology: Topology,
}

impl DeadLetters {
    pub fn new(url: BrokerUrl, topology: Topology) -> Self {
        Self { url, topology }
    }

    pub fn queue(&self, logical_id: &str) -> Option<&ConsumerQueue> {
        self.topology.queue(logical_id)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn count(&self, channel: &Channel, queue: &str) -> Result<u32, RabbitMqError> {
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.url.failed("reading a queue's depth", e))?;
        Ok(declared.message_count())
    }

    /// The next dead letter of `queue`, fetched unacknowledged (it stays the broker's until
    /// acknowledged; a channel's close hands it back).
    async fn next_dead_letter(
        &self,
        channel: &Channel,
        queue: &ConsumerQueue,
    ) -> Result<Option<BasicGetMessage>, RabbitMqError> {
        channel
            .basic_get(
                queue.dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(|e| self.url.failed("reading dead letters", e))
    }

    /// Every consumer queue's depth, by logical id.
    pub async fn depths(&self) -> Result<Vec<(String, QueueDepth)>, RabbitMqError> {
        let (connection, channel) = self.url.channel().await?;
        let mut depths = Vec::new();
        for queue in &self.topology.queues {
            depths.push((
                queue.logical_id.clone(),
                QueueDepth {
                    visible: self.count(&channel, &queue.queue).await?,
                    dead_lettered: self.count(&channel, &queue.dead_letter_queue).await?,
                },
            ));
        }
        let _ = connection.close(200, "done".into()).await;
        Ok(depths)
    }

    /// Up to `max` dead-lettered messages of a consumer queue, left in place: they are fetched
    /// unacknowledged and the channel's close returns them.
    pub async fn peek(
        &self,
        queue: &ConsumerQueue,
        max: usize,
    ) -> Result<Vec<DeadLetter>, RabbitMqError> {
        let (connection, channel) = self.url.channel().await?;
        let mut letters = Vec::new();
        while letters.len() < max {
            let Some(message) = self.next_dead_letter(&channel, queue).await? else {
                break;
            };
            letters.push(DeadLetter {
                message_id: message
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                body: String::from_utf8_lossy(&message.delivery.data).into_owned(),
                reason: death_reason(&message.delivery.properties),
            });
        }
        let _ = connection.close(200, "listed".into()).await;
        Ok(letters)
    }

    /// Moves every dead-lettered message of a consumer queue back to it; returns how many.
    pub async fn redrive(&self, queue: &ConsumerQueue) -> Result<usize, RabbitMqError> {
        let (connection, channel) = self.confirming_channel().await?;
        let mut moved = 0;
        while let Some(message) = self.next_dead_letter(&channel, queue).await? {
            self.move_back(&channel, queue, message).await?;
            moved += 1;
        }
        let _ = connection.close(200, "redriven".into()).await;
        Ok(moved)
    }

    /// Moves the one dead letter of a consumer queue whose AMQP message id (the id `peek` lists)
    /// is `message_id` back to it, the oldest if it was dead-lettered more than once; `false` if
    /// there is none. A queue addresses no message by id, so the dead letters ahead of it are
    /// fetched unacknowledged on the way, like `peek` does, and the channel's close hands them
    /// back: the dead-letter queue is classic, which puts a returned message back in its place,
    /// so the others keep their order (and, being only read, their `x-death`). A listing holds
    /// the messages it read the same way while it runs (the console lists whenever the depth
    /// moves), so a message not seen is looked for again, a few times, before it is called
    /// unknown (`dead_letter_search`).
    pub async fn redrive_one(
        &self,
        queue: &ConsumerQueue,
        message_id: &str,
    ) -> Result<bool, RabbitMqError> {
        found_within_a_few_looks(|| self.find_and_move_back(queue, message_id)).await
    }

    async fn find_and_move_back(
        &self,
        queue: &ConsumerQueue,
        message_id: &str,
    ) -> Result<bool, RabbitMqError> {
        let (connection, channel) = self.confirming_channel().await?;
        let mut found = false;
        while let Some(message) = self.next_dead_letter(&channel, queue).await? {
            let id = message.delivery.properties.message_id().as_ref();
            if id.is_some_and(|id| id.as_str() == message_id) {
                self.move_back(&channel, queue, message).await?;
                found = true;
                break;
            }
        }
        let _ = connection.close(200, "redriven".into()).await;
        Ok(found)
    }

    async fn confirming_channel(&self) -> Result<(lapin::Connection, Channel), RabbitMqError> {
        let (connection, channel) = self.url.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.url.failed("enabling publisher confirms", e))?;
        Ok((connection, channel))
    }

    /// Republishes a dead letter to its consumer queue, as it was (body and properties), and
    /// acknowledges it on the dead-letter queue only after the broker confirmed the republish:
    /// an interruption may duplicate it (the consumers absorb it) but never lose it.
    async fn move_back(
        &self,
        channel: &Channel,
        queue: &ConsumerQueue,
        message: BasicGetMessage,
    ) -> Result<(), RabbitMqError> {
        self.republish(
            channel,
            &queue.queue,
            &message.delivery.data,
            message.delivery.properties.clone(),
        )
        .await?;
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| self.url.failed("removing a redriven dead letter", e))?;
        Ok(())
    }

    /// Sends a raw body straight to a consumer queue; returns its message id.
    pub async fn send(&self, queue: &ConsumerQueue, body: &str) -> Result<String, RabbitMqError> {
        let (connection, channel) = self.confirming_channel().await?;
        let message_id = ulid::Ulid::new().to_string();
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(message_id.as_str()))
            .with_delivery_mode(2);
        self.republish(&channel, &queue.queue, body.as_bytes(), properties)
            .await?;
        let _ = connection.close(200, "sent".into()).await;
        Ok(message_id)
    }

    async fn republish(
        &self,
        channel: &Channel,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), RabbitMqError> {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|e| self.url.failed("publishing to a queue", e))?
            .await
            .map_err(|e| self.url.failed("waiting for a confirm", e))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            other => Err(RabbitMqError::Broker {
                url: self.url.to_string(),
                doing: format!("publishing to queue {queue}"),
                reason: format!("not confirmed: {other:?}"),
            }),
        }
    }
}

/// The `reason` of the latest `x-death` entry.
fn death_reason(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    match latest.inner().get("reason")? {
        AMQPValue::LongString(reason) => Some(reason.to_string()),
        AMQPValue::ShortString(reason) => Some(reason.to_string()),
        _ => None,
    }
}
