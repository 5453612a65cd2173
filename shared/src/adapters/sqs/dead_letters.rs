//! Dead-letter queue tooling: see what is in a DLQ without taking it away, and send it (all of
//! it, or one message by its id) back to the source queue once the cause is fixed.
//!
//! Redrive prefers `StartMessageMoveTask` (SQS moves the messages itself, asynchronously, keeping
//! their attributes). Endpoints that do not implement it (moto server, older emulators) get the
//! portable fallback: receive from the DLQ, send to the source queue, delete from the DLQ — in
//! that order, so a crash in between duplicates a message (harmless: consumers deduplicate)
//! but never loses one.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::operation::start_message_move_task::StartMessageMoveTaskError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use tracing::Instrument;

use crate::adapters::aws_call;
use crate::adapters::aws_error::{classify, error_code};
use crate::adapters::dead_letter_search::found_within_a_few_looks;

/// How long a listed message stays hidden while a listing pages through the queue; it is made
/// visible again as soon as the listing is done.
const PEEK_VISIBILITY_SECONDS: i32 = 30;

/// How long a message being moved by the fallback stays hidden from other readers of the DLQ.
const MOVE_VISIBILITY_SECONDS: i32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("queue {queue_url}: {message}")]
    Sqs { queue_url: String, message: String },
}

/// A message in a dead-letter queue, as far as an operator needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// How often it was received in total (source queue and DLQ), when SQS says.
    pub receive_count: Option<u32>,
    /// When it was first sent (epoch milliseconds), when SQS says.
    pub sent_timestamp: Option<i64>,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveOutcome {
    /// SQS is moving the messages asynchronously (`StartMessageMoveTask`).
    MoveTaskStarted { task_handle: String },
    /// The endpoint has no move tasks; this many messages were moved by receive/send/delete.
    Moved { count: usize },
}

/// The message attribute EventBridge puts on an event it could not deliver: the target's ARN.
pub const TARGET_ARN_ATTRIBUTE: &str = "TARGET_ARN";

/// What a redrive of the EventBridge rules' dead-letter queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRedrive {
    /// Events sent to the queue their rule targets.
    pub redriven: usize,
    /// Schedule ticks that could not start the relay, removed: the next tick covers them.
    pub settled: usize,
    /// Messages with no known target, left in the queue.
    pub left: usize,
}

/// One dead-letter queue and its client.
pub struct DeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl DeadLetterQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    fn error<E>(&self, error: &SdkError<E, HttpResponse>) -> DeadLetterError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        DeadLetterError::Sqs {
            queue_url: self.queue_url.clone(),
            message: format!("{:?}", classify(error)),
        }
    }

    async fn receive(&self, visibility_seconds: i32) -> Result<Vec<Message>, DeadLetterError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_seconds)
            // Short polls sample a subset of servers; a short wait sees the whole queue.
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .instrument(aws_call::sqs("ReceiveMessage", &self.queue_url))
            .await
            .map_err(|e| self.error(&e))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Up to `max` messages, without consuming them: each is hidden only while the listing runs
    /// and made visible again at once (its receive count does go up by one).
    pub async fn peek(&self, max: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut seen: Vec<Message> = Vec::new();
        while seen.len() < max {
            let batch = self.receive(PEEK_VISIBILITY_SECONDS).await?;
            if batch.is_empty() {
                break;
            }
            seen.extend(batch);
        }
        self.release(&seen).await?;
        seen.truncate(max);
        Ok(seen.iter().map(dead_letter).collect())
    }

    /// Makes received messages visible again at once, for the next reader.
    async fn release(&self, messages: &[Message]) -> Result<(), DeadLetterError> {
        for chunk in messages.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(index.to_string())
                        .set_receipt_handle(m.receipt_handle.clone())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .instrument(aws_call::sqs(
                    "ChangeMessageVisibilityBatch",
                    &self.queue_url,
                ))
                .await
                .map_err(|e| self.error(&e))?;
        }
        Ok(())
    }

    /// Sends the one message whose id (the id `peek` lists) is `message_id` back to
    /// `source_queue_url`, with its body and message attributes, and deletes it from the DLQ;
    /// `false` if the DLQ holds no such message. SQS addresses a message only by the receipt
    /// handle of a receive (a move task takes the whole queue), so the DLQ is received until it
    /// turns up; the others received on the way are made visible again at once, in place, not
    /// hidden for a visibility timeout (their receive count goes up by one, as a listing's
    /// does). Sent first, deleted after: a crash in between duplicates it, never loses it.
    ///
    /// Another reader of the DLQ (a listing: the console lists whenever the DLQ's depth moves)
    /// hides what it received while it runs, so a message not seen is looked for again, a few
    /// times, before it is called unknown (`dead_letter_search`).
    pub async fn redrive_one(
        &self,
        source_queue_url: &str,
        message_id: &str,
    ) -> Result<bool, DeadLetterError> {
        found_within_a_few_looks(|| self.find_and_send_back(source_queue_url, message_id)).await
    }

    async fn find_and_send_back(
        &self,
        source_queue_url: &str,
        message_id: &str,
    ) -> Result<bool, DeadLetterError> {
        let mut passed: Vec<Message> = Vec::new();
        let found = loop {
            let batch = self.receive(MOVE_VISIBILITY_SECONDS).await?;
            if batch.is_empty() {
                break None;
            }
            let (named, others): (Vec<Message>, Vec<Message>) = batch
                .into_iter()
                .partition(|m| m.message_id() == Some(message_id));
            passed.extend(others);
            if let Some(message) = named.into_iter().next() {
                break Some(message);
            }
        };
        let moved = match &found {
            Some(message) => self
                .send_back(source_queue_url, message)
                .await
                .map(|()| true),
            None => Ok(false),
        };
        if !matches!(moved, Ok(true))
            && let Some(message) = found
        {
            passed.push(message);
        }
        self.release(&passed).await?;
        moved
    }

    async fn send_back(
        &self,
        source_queue_url: &str,
        message: &Message,
    ) -> Result<(), DeadLetterError> {
        self.client
            .send_message()
            .queue_url(source_queue_url)
            .message_body(message.body().unwrap_or_default())
            .set_message_attributes(message.message_attributes.clone())
            .send()
            .instrument(aws_call::sqs("SendMessage", source_queue_url))
            .await
            .map_err(|e| self.error(&e))?;
        self.delete(message).await
    }

    /// Sends every message back to `source_queue_url` (the queue whose redrive policy names this
    /// DLQ).
    pub async fn redrive(&self, source_queue_url: &str) -> Result<RedriveOutcome, DeadLetterError> {
        let dlq_arn = self.arn(&self.queue_url).await?;
        let source_arn = self.arn(source_queue_url).await?;
        let started = self
            .client
            .start_message_move_task()
            .source_arn(&dlq_arn)
            .destination_arn(&source_arn)
            // One attempt: an endpoint without move tasks answers the same every time.
            .customize()
            .config_override(
                aws_sdk_sqs::config::Config::builder().retry_config(RetryConfig::disabled()),
            )
            .send()
            // The dead-letter queue is the move's source.
            .instrument(aws_call::sqs("StartMessageMoveTask", &self.queue_url))
            .await;
        match started {
            Ok(output) => Ok(RedriveOutcome::MoveTaskStarted {
                task_handle: output.task_handle.unwrap_or_default(),
            }),
            Err(error) if move_tasks_unsupported(&error) => {
                tracing::info!(queue = %self.queue_url, "endpoint has no StartMessageMoveTask; moving messages by receive/send/delete");
                self.move_messages(source_queue_url).await
            }
            Err(error) => Err(self.error(&error)),
        }
    }

    async fn move_messages(
        &self,
        source_queue_url: &str,
    ) -> Result<RedriveOutcome, DeadLetterError> {
        let mut count = 0;
        loop {
            let batch = self.receive(MOVE_VISIBILITY_SECONDS).await?;
            if batch.is_empty() {
                return Ok(RedriveOutcome::Moved { count });
            }
            let sends: Vec<SendMessageBatchRequestEntry> = batch
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(m.body().unwrap_or_default())
                        .set_message_attributes(m.message_attributes.clone())
                        .build()
                        .ok()
                })
                .collect();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(source_queue_url)
                .set_entries(Some(sends))
                .send()
                .instrument(aws_call::sqs("SendMessageBatch", source_queue_url))
                .await
                .map_err(|e| self.error(&e))?;
            // Delete only what the source queue accepted; the rest stays in the DLQ.
            let deletes: Vec<DeleteMessageBatchRequestEntry> = sent
                .successful()
                .iter()
                .filter_map(|ok| {
                    let index: usize = ok.id().parse().ok()?;
                    DeleteMessageBatchRequestEntry::builder()
                        .id(ok.id())
                        .set_receipt_handle(batch.get(index)?.receipt_handle.clone())
                        .build()
                        .ok()
                })
                .collect();
            if !sent.failed().is_empty() {
                tracing::warn!(
                    failed = sent.failed().len(),
                    "some dead letters were not accepted by the source queue; they stay in the DLQ"
                );
            }
            if deletes.is_empty() {
                return Ok(RedriveOutcome::Moved { count });
            }
            count += deletes.len();
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(deletes))
                .send()
                .instrument(aws_call::sqs("DeleteMessageBatch", &self.queue_url))
                .await
                .map_err(|e| self.error(&e))?;
        }
    }

    /// Redrives the EventBridge rules' dead-letter queue. SQS cannot (`StartMessageMoveTask`
    /// moves only messages that came from another SQS queue), but EventBridge tags each
    /// undeliverable event with the target it failed to reach (`TARGET_ARN`): an event whose
    /// target is a queue is sent to that queue (the consumers deduplicate on `event_id`, so a
    /// retry that reached it meanwhile is harmless); a schedule tick that could not start the relay
    /// is removed (the next tick does its work); anything else is left in place, hidden for a
    /// minute, for a person to look at. Send first, delete after: a crash duplicates, never loses.
    pub async fn redrive_to_targets(&self) -> Result<TargetRedrive, DeadLetterError> {
        let mut outcome = TargetRedrive::default();
        let mut urls: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        loop {
            let batch = self.receive(MOVE_VISIBILITY_SECONDS).await?;
            if batch.is_empty() {
                return Ok(outcome);
            }
            for message in &batch {
                let target = message
                    .message_attributes()
                    .and_then(|a| a.get(TARGET_ARN_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default();
                let parts: Vec<&str> = target.split(':').collect();
                match parts[..] {
                    ["arn", _, "sqs", _, account, name] => {
                        let url = match urls.get(target) {
                            Some(url) => url.clone(),
                            None => {
                                let url = self
                                    .client
                                    .get_queue_url()
                                    .queue_name(name)
                                    .queue_owner_aws_account_id(account)
                                    .send()
                                    .instrument(aws_call::sqs_by_name("GetQueueUrl", name))
                                    .await
                                    .map_err(|e| self.error(&e))?
                                    .queue_url
                                    .unwrap_or_default();
                                urls.insert(target.to_owned(), url.clone());
                                url
                            }
                        };
                        self.client
                            .send_message()
                            .queue_url(&url)
                            .message_body(message.body().unwrap_or_default())
                            .send()
                            .instrument(aws_call::sqs("SendMessage", &url))
                            .await
                            .map_err(|e| self.error(&e))?;
                        self.delete(message).await?;
                        outcome.redriven += 1;
                    }
                    ["arn", _, "lambda", ..] => {
                        self.delete(message).await?;
                        outcome.settled += 1;
                    }
                    _ => {
                        tracing::warn!(
                            message_id = message.message_id().unwrap_or_default(),
                            target,
                            "dead letter names no queue or function target; left in place"
                        );
                        outcome.left += 1;
                    }
                }
            }
        }
    }

    async fn delete(&self, message: &Message) -> Result<(), DeadLetterError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .set_receipt_handle(message.receipt_handle.clone())
            .send()
            .instrument(aws_call::sqs("DeleteMessage", &self.queue_url))
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    async fn arn(&self, queue_url: &str) -> Result<String, DeadLetterError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .instrument(aws_call::sqs("GetQueueAttributes", queue_url))
            .await
            .map_err(|e| self.error(&e))?;
        output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| DeadLetterError::Sqs {
                queue_url: queue_url.to_owned(),
                message: "no QueueArn attribute".into(),
            })
    }
}

/// Whether the endpoint lacks `StartMessageMoveTask` (as opposed to refusing this call): an
/// unknown-operation code, 501, or a server error that carries no error code at all (moto
/// answers an unimplemented action with a bare HTML 500).
fn move_tasks_unsupported(error: &SdkError<StartMessageMoveTaskError, HttpResponse>) -> bool {
    const UNKNOWN_OPERATION: &[&str] = &[
        "UnknownOperationException",
        "InvalidAction",
        "NotImplemented",
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
    ];
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            error_code(error).is_some_and(|c| UNKNOWN_OPERATION.contains(&c))
                || status == 501
                || (status >= 500 && error_code(error).is_none_or(|c| c.parse::<u16>().is_ok()))
        }
        _ => false,
    }
}

fn dead_letter(message: &Message) -> DeadLetter {
    let attribute = |name: MessageSystemAttributeName| {
        message
            .attributes()
            .and_then(|a| a.get(&name))
            .map(String::as_str)
    };
    DeadLetter {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        body: message.body().unwrap_or_default().to_owned(),
        receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|v| v.parse().ok()),
        sent_timestamp: attribute(MessageSystemAttributeName::SentTimestamp)
            .and_then(|v| v.parse().ok()),
    }
}
