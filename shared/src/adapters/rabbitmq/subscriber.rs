//! A RabbitMQ queue as an event source. Consumes with a bounded prefetch, gathers what has
//! arrived into a batch, hands it to the consumer, and settles each message only after its
//! verdict: applied and duplicates are acknowledged; poison is rejected without requeue, which
//! dead-letters it at once to the consumer's dead-letter queue without holding up the rest;
//! retryable failures are requeued after a pause, and the quorum queue's delivery limit
//! dead-letters one that never succeeds.
//!
//! When the connection or channel drops, the subscriber reconnects with exponential backoff. The
//! broker requeues whatever was delivered but not acknowledged, so nothing is lost; what was
//! applied but not yet acknowledged comes back and is absorbed by the consumers' processed-event
//! markers, so nothing is applied twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::watch;

use crate::adapters::broker_session::{Ended, run_sessions};
use crate::consumer::{BatchHandler, RawMessage, Verdict, traceparent_header};
use crate::domain::TraceParent;

use super::connection::{BrokerUrl, RabbitMqError};
use super::topology::{ConsumerQueue, Topology};

#[derive(Debug, Clone)]
pub struct SubscriberSettings {
    /// Unacknowledged messages the broker may push to this consumer: the bound on what a crash
    /// hands back, and on memory.
    pub prefetch: u16,
    /// Messages per batch handed to the consumer (at most `prefetch`).
    pub batch_size: usize,
    /// How long to wait for more messages once the first of a batch arrived.
    pub batch_window: Duration,
    /// Pause before retryable messages are requeued, so a failing dependency is not hammered.
    pub retry_delay: Duration,
    /// First and longest pause between reconnection attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            prefetch: 20,
            batch_size: 10,
            batch_window: Duration::from_millis(20),
            retry_delay: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

pub struct RabbitMqSubscriber {
    url: BrokerUrl,
    topology: Topology,
    queue: ConsumerQueue,
    handler: Arc<dyn BatchHandler>,
    settings: SubscriberSettings,
}

impl RabbitMqSubscriber {
    /// A subscriber for the queue of `logical_id` (e.g. `StatsQueue`) in `topology`.
    pub fn new(
        url: BrokerUrl,
        topology: Topology,
        logical_id: &str,
        handler: Arc<dyn BatchHandler>,
        settings: SubscriberSettings,
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

    pub fn queue(&self) -> &ConsumerQueue {
        &self.queue
    }

    /// Consumes until `shutdown` turns true, reconnecting whenever the connection drops. A batch
    /// in progress is finished and settled before it stops.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        run_sessions(
            &self.queue.queue,
            self.settings.reconnect_min,
            self.settings.reconnect_max,
            shutdown,
            |shutdown| self.consume(shutdown),
        )
        .await;
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> Ended<RabbitMqError> {
        let (connection, channel) = match self.url.channel().await {
            Ok(link) => link,
            Err(error) => return Ended::Failed(error),
        };
        if let Err(error) = self.topology.declare(&self.url, &channel).await {
            return Ended::Failed(error);
        }
        if let Err(error) = channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
        {
            return Ended::Failed(self.url.failed("setting the prefetch", error));
        }
        let mut deliveries = match channel
            .basic_consume(
                self.queue.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        {
            Ok(consumer) => consumer,
            Err(error) => return Ended::Failed(self.url.failed("starting to consume", error)),
        };
        tracing::info!(queue = %self.queue.queue, broker = %self.url, prefetch = self.settings.prefetch, "consuming");
        let dropped = |error: lapin::Error| Ended::Dropped(self.url.failed("consuming", error));
        let cancelled = || {
            Ended::Dropped(RabbitMqError::Broker {
                url: self.url.to_string(),
                doing: "consuming".into(),
                reason: "the broker cancelled the consumer".into(),
            })
        };
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => {
                    let _ = connection.close(200, "shutdown".into()).await;
                    return Ended::Shutdown;
                }
                next = deliveries.next() => next,
            };
            let mut batch = match first {
                Some(Ok(delivery)) => vec![delivery],
                Some(Err(error)) => return dropped(error),
                None => return cancelled(),
            };
            let window = tokio::time::sleep(self.settings.batch_window);
            tokio::pin!(window);
            while batch.len() < self.settings.batch_size {
                tokio::select! {
                    _ = &mut window => break,
                    next = deliveries.next() => match next {
                        Some(Ok(delivery)) => batch.push(delivery),
                        // Unacknowledged deliveries go back to the queue with the channel.
                        Some(Err(error)) => return dropped(error),
                        None => return cancelled(),
                    },
                }
            }
            if let Err(error) = self.handle(&batch).await {
                return dropped(error);
            }
        }
    }

    /// Hands a batch to the consumer and settles every message by its verdict.
    async fn handle(&self, batch: &[Delivery]) -> Result<(), lapin::Error> {
        let messages: Vec<RawMessage> = batch.iter().map(raw_message).collect();
        let verdicts = self.handler.handle_batch(&messages).await;
        let mut retry = Vec::new();
        for (index, delivery) in batch.iter().enumerate() {
            // A missing verdict is a failure: the message comes back rather than being lost.
            match verdicts.get(index).copied().unwrap_or(Verdict::Retry) {
                Verdict::Applied | Verdict::Duplicate => {
                    delivery
                        .ack(lapin::options::BasicAckOptions::default())
                        .await?;
                }
                Verdict::Poison => {
                    delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await?;
                }
                Verdict::Retry => retry.push(delivery),
            }
        }
        if !retry.is_empty() {
            tracing::warn!(queue = %self.queue.queue, retry = retry.len(), received = batch.len(), "batch had retryable failures; requeued after a pause");
            tokio::time::sleep(self.settings.retry_delay).await;
            for delivery in retry {
                delivery
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// The delivery as the consumers see it. Quorum queues count earlier deliveries in
/// `x-delivery-count`; without it, the `redelivered` flag says whether there was one.
fn raw_message(delivery: &Delivery) -> RawMessage {
    let earlier = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count").cloned())
        .and_then(|count| match count {
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongUInt(n) => Some(n),
            AMQPValue::ShortInt(n) => u32::try_from(n).ok(),
            _ => None,
        })
        .unwrap_or(u32::from(delivery.redelivered));
    RawMessage {
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_else(|| format!("delivery-{}", delivery.delivery_tag)),
        body: String::from_utf8(delivery.data.clone()).ok(),
        delivery_count: earlier.saturating_add(1),
        transport_trace: traceparent_header(
            delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|headers| match headers.inner().get(TraceParent::HEADER) {
                    Some(AMQPValue::LongString(text)) => Some(text.to_string()),
                    _ => None,
                })
                .as_deref(),
        ),
    }
}
