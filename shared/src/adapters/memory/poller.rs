//! The in-memory queue as an event source: receive a batch the way a Lambda SQS event source
//! mapping does, hand it to the consumer, delete the messages it settled, and leave the rest
//! (retryable or poison) to their visibility timeout and, after `max_receive_count` receives,
//! the dead-letter queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use tokio::sync::watch;

use crate::consumer::{BatchHandler, RawMessage};

use super::queue::{MemoryQueue, ReceivedMessage};

pub struct Poller {
    queue: Arc<MemoryQueue>,
    handler: Arc<dyn BatchHandler>,
    batch_size: usize,
    /// How often an idle poller looks again (for messages whose visibility timeout ran out).
    idle_interval: StdDuration,
}

impl Poller {
    pub fn new(queue: Arc<MemoryQueue>, handler: Arc<dyn BatchHandler>, batch_size: usize) -> Self {
        Self {
            queue,
            handler,
            batch_size,
            idle_interval: StdDuration::from_millis(250),
        }
    }

    /// The SQS event Lambda would pass for these messages.
    pub fn sqs_event(queue_name: &str, messages: &[ReceivedMessage]) -> SqsEvent {
        let records = messages
            .iter()
            .map(|m| {
                let mut message = SqsMessage::default();
                message.message_id = Some(m.message_id.clone());
                message.receipt_handle = Some(m.receipt_handle.clone());
                message.body = Some(m.body.clone());
                message.attributes = HashMap::from([
                    (
                        "ApproximateReceiveCount".to_owned(),
                        m.receive_count.to_string(),
                    ),
                    ("SentTimestamp".to_owned(), millis(m.sent_at).to_string()),
                    (
                        "ApproximateFirstReceiveTimestamp".to_owned(),
                        millis(m.first_received_at).to_string(),
                    ),
                ]);
                message.event_source = Some("aws:sqs".to_owned());
                message.event_source_arn =
                    Some(format!("arn:aws:sqs:local:000000000000:{queue_name}"));
                message.aws_region = Some("local".to_owned());
                message
            })
            .collect();
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    /// Receives and handles one batch; returns how many messages it received.
    pub async fn poll_once(&self) -> usize {
        let messages = self.queue.receive(self.batch_size);
        if messages.is_empty() {
            return 0;
        }
        let batch: Vec<RawMessage> = messages
            .iter()
            .map(|m| RawMessage {
                message_id: m.message_id.clone(),
                body: Some(m.body.clone()),
                delivery_count: m.receive_count,
                // The in-memory queue carries no trace header of its own: the envelope's is all.
                transport_trace: None,
            })
            .collect();
        let verdicts = self.handler.handle_batch(&batch).await;
        let mut failed = 0;
        for (index, message) in messages.iter().enumerate() {
            // A missing verdict is a failure: the message comes back rather than being lost.
            if verdicts.get(index).is_some_and(|v| v.is_settled()) {
                self.queue.delete(&message.receipt_handle);
            } else {
                failed += 1;
            }
        }
        if failed > 0 {
            tracing::warn!(queue = %self.queue.name(), failed, received = messages.len(), "batch had failures; they return after the visibility timeout");
        }
        messages.len()
    }

    /// Polls until `shutdown` turns true. A batch in progress is finished (and its successes
    /// deleted) before the loop ends, so a shutdown never loses or repeats completed work.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            if self.poll_once().await > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = self.queue.wait_for_message() => {}
                _ = tokio::time::sleep(self.idle_interval) => {}
            }
        }
        tracing::info!(queue = %self.queue.name(), "poller stopped");
    }
}

fn millis(at: time::OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000_000
}
