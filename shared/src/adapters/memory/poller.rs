//! Drives a consumer from an in-memory queue the way a Lambda SQS event source mapping does:
//! receive a batch, invoke the handler with an SQS-shaped event, delete the messages the handler
//! did not report in `batchItemFailures`, and leave the rest to their visibility timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::sync::watch;

use super::queue::{MemoryQueue, ReceivedMessage};

/// A consumer of SQS batches: the same function a Lambda SQS trigger invokes.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse;
}

/// The indices of the messages a batch response lets the event source delete, as Lambda reads
/// it: every message not reported as failed — unless a reported identifier is empty or names no
/// message of the batch, which Lambda treats as a failure of the whole batch (delete nothing).
pub fn deletable_messages(message_ids: &[&str], response: &SqsBatchResponse) -> Vec<usize> {
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    if failed
        .iter()
        .any(|id| id.is_empty() || !message_ids.contains(id))
    {
        return Vec::new();
    }
    (0..message_ids.len())
        .filter(|&i| !failed.contains(&message_ids[i]))
        .collect()
}

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

    pub fn with_idle_interval(mut self, interval: StdDuration) -> Self {
        self.idle_interval = interval;
        self
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
        let event = Self::sqs_event(self.queue.name(), &messages);
        let response = self.handler.handle_batch(event).await;
        let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        let deletable = deletable_messages(&ids, &response);
        for &index in &deletable {
            self.queue.delete(&messages[index].receipt_handle);
        }
        if deletable.len() < messages.len() {
            tracing::warn!(queue = %self.queue.name(), failed = messages.len() - deletable.len(), received = messages.len(), "batch had failures; they return after the visibility timeout");
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::BatchItemFailure;

    fn response(failed: &[&str]) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = (*id).to_owned();
            response.batch_item_failures.push(failure);
        }
        response
    }

    #[test]
    fn only_unreported_messages_are_deleted() {
        let ids = ["a", "b", "c"];
        assert_eq!(deletable_messages(&ids, &response(&[])), vec![0, 1, 2]);
        assert_eq!(deletable_messages(&ids, &response(&["b"])), vec![0, 2]);
    }

    #[test]
    fn an_unknown_or_empty_identifier_fails_the_whole_batch_as_in_lambda() {
        let ids = ["a", "b"];
        assert!(deletable_messages(&ids, &response(&["zzz"])).is_empty());
        assert!(deletable_messages(&ids, &response(&["a", ""])).is_empty());
    }
}
