//! An SQS queue as an event source: long-polls a queue, hands each batch to a [`BatchHandler`],
//! then deletes the messages it settled (one `DeleteMessageBatch`). Failed messages are left alone: they come back after their visibility
//! timeout and, after `maxReceiveCount` receives, the queue's redrive policy moves them to the
//! dead-letter queue — exactly what happens behind a Lambda trigger.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use tokio::sync::watch;

use tracing::Instrument;

use crate::adapters::aws_call;
use crate::adapters::aws_error::classify;

/// What a long poll's timeouts allow beyond its wait time: the time to answer once the wait ends.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(3);
use crate::consumer::{BatchHandler, RawMessage, aws_trace_header};

#[derive(Debug, thiserror::Error)]
pub enum SqsPollerError {
    #[error("queue {queue_url}: {message}")]
    Sqs { queue_url: String, message: String },
}

pub struct SqsPoller {
    client: Client,
    queue_url: String,
    handler: Arc<dyn BatchHandler>,
    /// Messages per receive: 1 to 10.
    batch_size: i32,
    /// Long-poll wait: 0 to 20 seconds.
    wait_time: Duration,
    /// Pause after a failed receive, so a broken endpoint is not hammered.
    error_backoff: Duration,
}

impl SqsPoller {
    /// A poller for `queue_url`; checks once that the queue exists (`GetQueueAttributes`), so a
    /// wrong URL is a start-up error rather than a poller that fails forever.
    pub async fn connect(
        client: Client,
        queue_url: impl Into<String>,
        handler: Arc<dyn BatchHandler>,
    ) -> Result<Self, SqsPollerError> {
        let queue_url = queue_url.into();
        client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .instrument(aws_call::sqs("GetQueueAttributes", &queue_url))
            .await
            .map_err(|e| SqsPollerError::Sqs {
                queue_url: queue_url.clone(),
                message: format!("{:?}", classify(&e)),
            })?;
        Ok(Self {
            client,
            queue_url,
            handler,
            batch_size: 10,
            wait_time: Duration::from_secs(20),
            error_backoff: Duration::from_secs(1),
        })
    }

    /// Long-poll wait per receive (clamped to SQS's 0 to 20 seconds).
    pub fn with_wait_time(mut self, wait_time: Duration) -> Self {
        self.wait_time = wait_time.min(Duration::from_secs(20));
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn sqs_error(&self, message: String) -> SqsPollerError {
        SqsPollerError::Sqs {
            queue_url: self.queue_url.clone(),
            message,
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, SqsPollerError> {
        // A long poll outlives the clients' usual 1.5 s attempt / 3 s operation timeouts. Cut
        // off early, the SDK would drop a call the queue is still serving: messages it then
        // hands to that abandoned call are hidden for the visibility timeout and count a
        // receive, and after a few such ghost receives they land in the dead-letter queue
        // unprocessed (the SIGKILL test saw exactly that). So this call's timeouts cover the
        // wait plus the usual margin.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(self.wait_time + LONG_POLL_MARGIN)
            .operation_timeout(self.wait_time + 2 * LONG_POLL_MARGIN)
            .build();
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(i32::try_from(self.wait_time.as_secs()).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .instrument(aws_call::sqs("ReceiveMessage", &self.queue_url))
            .await
            .map_err(|e| self.sqs_error(format!("{:?}", classify(&e))))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Receives (long-polling) and handles one batch; returns how many messages it received.
    pub async fn poll_once(&self) -> Result<usize, SqsPollerError> {
        let messages = self.receive().await?;
        self.handle(messages).await
    }

    async fn handle(&self, messages: Vec<Message>) -> Result<usize, SqsPollerError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let batch: Vec<RawMessage> = messages
            .iter()
            .map(|m| RawMessage {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body.clone(),
                delivery_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1),
                transport_trace: aws_trace_header(
                    m.attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
                        .map(String::as_str),
                ),
            })
            .collect();
        let verdicts = self.handler.handle_batch(&batch).await;
        // A missing verdict is a failure: the message comes back rather than being lost.
        let deletable: Vec<usize> = (0..messages.len())
            .filter(|&i| verdicts.get(i).is_some_and(|v| v.is_settled()))
            .collect();
        let failed = messages.len() - deletable.len();
        let entries: Vec<DeleteMessageBatchRequestEntry> = deletable
            .iter()
            .filter_map(|&index| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .set_receipt_handle(messages[index].receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if !entries.is_empty() {
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .instrument(aws_call::sqs("DeleteMessageBatch", &self.queue_url))
                .await
                .map_err(|e| self.sqs_error(format!("{:?}", classify(&e))))?;
            for failure in output.failed() {
                // Not deleted means delivered again later; the consumer deduplicates.
                tracing::warn!(queue = %self.queue_url, id = %failure.id(), code = %failure.code(), "handled message not deleted; it will be delivered again");
            }
        }
        if failed > 0 {
            tracing::warn!(queue = %self.queue_url, failed, received = messages.len(), "batch had failures; they return after the visibility timeout");
        }
        Ok(messages.len())
    }

    /// Polls until `shutdown` turns true. Only a receive in flight is abandoned on shutdown; a
    /// batch being handled is finished and its successes deleted, so a stop neither loses nor
    /// repeats completed work.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let received = tokio::select! {
                _ = shutdown.changed() => break,
                received = self.receive() => received,
            };
            let outcome = match received {
                Ok(messages) => self.handle(messages).await,
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, "polling failed; trying again shortly");
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(self.error_backoff) => {}
                }
            }
        }
        tracing::info!(queue = %self.queue_url, "poller stopped");
    }
}
