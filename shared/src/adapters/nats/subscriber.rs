//! A consumer queue's JetStream pull consumers as an event source. It pulls from each durable
//! consumer of the queue (one per event type of its rule, and its direct subject), gathers what
//! arrived into a batch, hands it to the consumer, and settles each message only after its
//! verdict:
//!
//! - applied and duplicates: acknowledged;
//! - poison: published to the queue's dead-letter subject (with the reason and the delivery
//!   count; its `Nats-Msg-Id` is derived from the stream sequence, so a retried dead-lettering
//!   is stored once), then acknowledged, at once;
//! - retryable: a delayed negative acknowledgement (`-NAK` with a delay), so the server delivers
//!   it again after the pause rather than at once;
//! - a message whose delivery count (from its message info) is past the delivery limit goes to
//!   the dead-letter stream instead of to the consumer.
//!
//! A message not acknowledged within the ack wait (its subscriber's connection dropped or its
//! process died mid-batch) is delivered again by the server. The client reconnects by itself;
//! when the pull stream fails, the subscriber opens it again with backoff. What was applied but
//! not acknowledged comes back and is absorbed by the consumers' processed-event markers.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::message::{AckKind, Message};
use async_nats::jetstream::{Context, consumer};
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use tokio::sync::watch;

use crate::adapters::broker_session::{Ended, run_sessions};
use crate::consumer::{BatchHandler, RawMessage, Verdict, traceparent_header};
use crate::domain::TraceParent;

use super::connection::{NatsError, NatsUrl};
use super::topology::{ConsumerSubjects, NatsTopology};

#[derive(Debug, Clone)]
pub struct NatsSubscriberSettings {
    /// Messages per batch handed to the consumer, and per pull request of each consumer.
    pub batch_size: usize,
    /// How long to wait for more messages once the first of a batch arrived.
    pub batch_window: Duration,
    /// The delay of a negative acknowledgement: how long a retryable message waits before the
    /// server delivers it again.
    pub retry_delay: Duration,
    /// First and longest pause between attempts to open the pull streams again.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for NatsSubscriberSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            batch_window: Duration::from_millis(20),
            retry_delay: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

pub struct NatsSubscriber {
    url: NatsUrl,
    topology: NatsTopology,
    queue: ConsumerSubjects,
    handler: Arc<dyn BatchHandler>,
    settings: NatsSubscriberSettings,
}

type Pulled = Result<Message, consumer::pull::MessagesError>;

impl NatsSubscriber {
    /// A subscriber for the queue of `logical_id` (e.g. `StatsQueue`) in `topology`.
    pub fn new(
        url: NatsUrl,
        topology: NatsTopology,
        logical_id: &str,
        handler: Arc<dyn BatchHandler>,
        settings: NatsSubscriberSettings,
    ) -> Option<Self> {
        let queue = topology.queue(logical_id)?.clone();
        Some(Self {
            url,
            topology,
            queue,
            handler,
            settings,
        })
    }

    pub fn queue(&self) -> &ConsumerSubjects {
        &self.queue
    }

    /// Pulls until `shutdown` turns true, starting again whenever the pull streams fail. A batch
    /// in progress is finished and settled before it stops.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        run_sessions(
            &self.queue.logical_id,
            self.settings.reconnect_min,
            self.settings.reconnect_max,
            shutdown,
            |shutdown| self.consume(shutdown),
        )
        .await;
    }

    /// One pull stream per durable consumer of the queue, merged.
    async fn open(
        &self,
        context: &Context,
    ) -> Result<SelectAll<BoxStream<'static, Pulled>>, NatsError> {
        self.topology.declare(&self.url, context).await?;
        let stream = context
            .get_stream(&self.topology.stream)
            .await
            .map_err(|e| self.url.failed("opening the events stream", e))?;
        let mut merged = SelectAll::new();
        for durable in &self.queue.consumers {
            let consumer: consumer::PullConsumer = stream
                .get_consumer(&durable.durable_name)
                .await
                .map_err(|e| self.url.failed("opening a consumer", e))?;
            // A pull request outlives a dead subscriber on the server until it expires, and a
            // message delivered to it counts as delivered (and comes back only after the ack
            // wait): requests expire with the ack wait, so a dead subscriber's swallow at most
            // one delivery of a message.
            let expires = self.topology.ack_wait.max(Duration::from_secs(1));
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.settings.batch_size)
                .expires(expires)
                .heartbeat(expires / 4)
                .messages()
                .await
                .map_err(|e| self.url.failed("pulling from a consumer", e))?;
            merged.push(messages.boxed());
        }
        Ok(merged)
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> Ended<NatsError> {
        let (_client, context) = match self.url.connect().await {
            Ok(connected) => connected,
            Err(error) => return Ended::Failed(error),
        };
        let mut messages = match self.open(&context).await {
            Ok(messages) => messages,
            Err(error) => return Ended::Failed(error),
        };
        let dropped = |error: consumer::pull::MessagesError| {
            Ended::Dropped(self.url.failed("pulling messages", error))
        };
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => return Ended::Shutdown,
                next = messages.next() => next,
            };
            let mut batch = match first {
                Some(Ok(message)) => vec![message],
                Some(Err(error)) => return dropped(error),
                None => {
                    return Ended::Dropped(
                        self.url
                            .failed("pulling messages", "the pull streams ended"),
                    );
                }
            };
            let window = tokio::time::sleep(self.settings.batch_window);
            tokio::pin!(window);
            while batch.len() < self.settings.batch_size {
                tokio::select! {
                    _ = &mut window => break,
                    next = messages.next() => match next {
                        Some(Ok(message)) => batch.push(message),
                        // What was pulled and not acknowledged comes back after the ack wait.
                        Some(Err(error)) => return dropped(error),
                        None => break,
                    },
                }
            }
            if let Err(error) = self.handle(&context, &batch).await {
                return Ended::Dropped(error);
            }
        }
    }

    /// Dead-letters what passed the delivery limit, hands the rest to the consumer and settles
    /// every message by its verdict.
    async fn handle(&self, context: &Context, batch: &[Message]) -> Result<(), NatsError> {
        let (exhausted, fresh): (Vec<&Message>, Vec<&Message>) = batch
            .iter()
            .partition(|message| delivery_count(message) > self.topology.delivery_limit);
        for message in &exhausted {
            self.dead_letter(context, message, "delivery_limit").await?;
        }
        if !exhausted.is_empty() {
            tracing::warn!(queue = %self.queue.logical_id, dead_lettered = exhausted.len(), "messages passed the delivery limit; moved to the dead-letter stream");
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let messages: Vec<RawMessage> = fresh.iter().map(|m| raw_message(m)).collect();
        let verdicts = self.handler.handle_batch(&messages).await;
        let mut retried = 0;
        for (index, message) in fresh.iter().enumerate() {
            // A missing verdict is a failure: the message comes back rather than being lost.
            let settled = match verdicts.get(index).copied().unwrap_or(Verdict::Retry) {
                Verdict::Applied | Verdict::Duplicate => message.ack().await,
                Verdict::Poison => {
                    self.dead_letter(context, message, "poison").await?;
                    continue;
                }
                Verdict::Retry => {
                    retried += 1;
                    message
                        .ack_with(AckKind::Nak(Some(self.settings.retry_delay)))
                        .await
                }
            };
            settled.map_err(|e| self.url.failed("acknowledging a message", e))?;
        }
        if retried > 0 {
            tracing::warn!(queue = %self.queue.logical_id, retried, received = fresh.len(), "batch had retryable failures; negatively acknowledged with a delay");
        }
        Ok(())
    }

    /// Stores the message in the dead-letter stream, then acknowledges it.
    async fn dead_letter(
        &self,
        context: &Context,
        message: &Message,
        reason: &str,
    ) -> Result<(), NatsError> {
        // The dead letter's `Nats-Msg-Id` is derived from the sequence: a made-up one (0) would
        // give every such letter the same id and the server would drop all but the first within
        // the duplicate window, while their originals were still acknowledged.
        let sequence = message
            .info()
            .map_err(|e| self.url.failed("reading a message's stream sequence", e))?
            .stream_sequence;
        let mut letter = PublishMessage::build()
            .payload(message.payload.clone())
            .message_id(format!("{}-{sequence}", self.queue.logical_id))
            .header("Activelog-Reason", reason)
            .header(
                "Activelog-Message-Id",
                raw_message(message).message_id.as_str(),
            )
            .header(
                "Activelog-Delivery-Count",
                delivery_count(message).to_string().as_str(),
            );
        // Kept for the redrive, which hands it back: the redriven message's consumer span then
        // links to the span that published the event, as on the first delivery.
        if let Some(trace) = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(TraceParent::HEADER))
        {
            letter = letter.header(TraceParent::HEADER, trace.as_str());
        }
        context
            .send_publish(self.queue.dead_letter_subject.clone(), letter)
            .await
            .map_err(|e| self.url.failed("dead-lettering a message", e))?
            .await
            .map_err(|e| self.url.failed("dead-lettering a message", e))?;
        message
            .ack()
            .await
            .map_err(|e| self.url.failed("acknowledging a dead-lettered message", e))
    }
}

/// Deliveries of this message so far, this one included.
fn delivery_count(message: &Message) -> u32 {
    message
        .info()
        .ok()
        .and_then(|info| u32::try_from(info.delivered).ok())
        .unwrap_or(1)
}

/// The message as the consumers see it.
fn raw_message(message: &Message) -> RawMessage {
    // A redriven message carries its first id; a published one has its event id as message id.
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|id| id.as_str().to_owned())
    };
    let message_id = header("Activelog-Message-Id")
        .or_else(|| header("Nats-Msg-Id"))
        .or_else(|| {
            message
                .info()
                .ok()
                .map(|info| format!("seq-{}", info.stream_sequence))
        })
        .unwrap_or_default();
    RawMessage {
        message_id,
        body: String::from_utf8(message.payload.to_vec()).ok(),
        delivery_count: delivery_count(message),
        transport_trace: traceparent_header(header(TraceParent::HEADER).as_deref()),
    }
}
