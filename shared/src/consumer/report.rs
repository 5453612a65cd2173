//! The one place that decides what becomes of a message: success, duplicate, poison or retryable,
//! how each is logged, what the batch response says and which metrics a batch emits.

use crate::application::{ApplyError, StoreError};
use crate::telemetry::{self, Metric};

use super::SqsBatchResponse;
use super::event_source::Verdict;
use super::message::Poison;

/// Why a message was not processed.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum MessageFailure {
    /// The message can never be processed; it goes to the dead-letter queue.
    #[error("poison message: {0}")]
    Poison(#[from] Poison),
    /// The message is fine but a dependency failed; it is delivered again later.
    #[error("retryable failure: {0}")]
    Retryable(String),
}

impl From<ApplyError> for MessageFailure {
    fn from(error: ApplyError) -> Self {
        Self::Retryable(error.to_string())
    }
}

impl From<StoreError> for MessageFailure {
    fn from(error: StoreError) -> Self {
        Self::Retryable(error.to_string())
    }
}

impl MessageFailure {
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::Poison(_))
    }
}

/// What became of one message.
#[derive(Debug, PartialEq)]
pub enum MessageOutcome {
    /// Done (including events the consumer has nothing to do for).
    Processed,
    /// Done before: a redelivery or a duplicate publish; nothing changed.
    Duplicate,
    Failed(MessageFailure),
}

#[derive(Debug, PartialEq)]
pub struct FailedMessage {
    /// The message's position in the batch.
    pub index: usize,
    pub message_id: String,
    pub failure: MessageFailure,
}

/// The outcome of a batch, for the response and the metrics.
#[derive(Debug, Default, PartialEq)]
pub struct BatchReport {
    pub processed: usize,
    pub duplicates: usize,
    pub failures: Vec<FailedMessage>,
    /// Every recorded message's verdict by batch position, for the event source to settle.
    verdicts: Vec<(usize, Verdict)>,
}

impl BatchReport {
    /// Records one message's outcome and logs it; call it inside the message's span so the log
    /// line carries the message, event and correlation ids.
    pub fn record(&mut self, index: usize, message_id: &str, outcome: MessageOutcome) {
        let verdict = match &outcome {
            MessageOutcome::Processed => Verdict::Applied,
            MessageOutcome::Duplicate => Verdict::Duplicate,
            MessageOutcome::Failed(MessageFailure::Poison(_)) => Verdict::Poison,
            MessageOutcome::Failed(MessageFailure::Retryable(_)) => Verdict::Retry,
        };
        self.verdicts.push((index, verdict));
        match outcome {
            MessageOutcome::Processed => {
                tracing::debug!("message processed");
                self.processed += 1;
            }
            MessageOutcome::Duplicate => {
                tracing::info!("message was processed before; nothing changed");
                self.duplicates += 1;
            }
            MessageOutcome::Failed(failure) => {
                match &failure {
                    MessageFailure::Poison(reason) => tracing::error!(
                        message_id,
                        %reason,
                        "poison message: it fails on every delivery and goes to the dead-letter queue (at once, or after the delivery limit where the transport cannot tell)"
                    ),
                    MessageFailure::Retryable(reason) => tracing::warn!(
                        message_id,
                        %reason,
                        "message failed; it will be delivered again later"
                    ),
                }
                self.failures.push(FailedMessage {
                    index,
                    message_id: message_id.to_owned(),
                    failure,
                });
            }
        }
    }

    pub fn poison(&self) -> usize {
        self.failures
            .iter()
            .filter(|f| f.failure.is_poison())
            .count()
    }

    /// One verdict per message of a batch of `len`, in batch order. A message nothing was
    /// recorded for is to be retried: the safe side, since it was not applied.
    pub fn verdicts(&self, len: usize) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Retry; len];
        for &(index, verdict) in &self.verdicts {
            if let Some(slot) = verdicts.get_mut(index) {
                *slot = verdict;
            }
        }
        verdicts
    }

    /// The partial-batch response: every failed message, in batch order.
    pub fn response(&self) -> SqsBatchResponse {
        let mut failures: Vec<&FailedMessage> = self.failures.iter().collect();
        failures.sort_by_key(|f| f.index);
        let mut response = SqsBatchResponse::default();
        for failure in failures {
            response.add_failure(failure.message_id.clone());
        }
        response
    }

    /// One EMF line per count, so dashboards and alarms need no log parsing.
    pub fn emit_metrics(&self, function: &str) {
        telemetry::emit_metrics(
            function,
            &[
                Metric::count("MessagesProcessed", self.processed as u64),
                Metric::count("MessagesDuplicate", self.duplicates as u64),
                Metric::count("MessagesFailed", self.failures.len() as u64),
                Metric::count("MessagesPoison", self.poison() as u64),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_lists_failures_in_batch_order() {
        let mut report = BatchReport::default();
        report.record(
            2,
            "m-3",
            MessageOutcome::Failed(MessageFailure::Retryable("x".into())),
        );
        report.record(0, "m-1", MessageOutcome::Processed);
        report.record(1, "m-2", MessageOutcome::Failed(Poison::MissingBody.into()));
        let ids: Vec<String> = report
            .response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(ids, ["m-2", "m-3"]);
        assert_eq!(report.poison(), 1);
        assert_eq!(report.processed, 1);
        assert_eq!(
            report.verdicts(4),
            [
                Verdict::Applied,
                Verdict::Poison,
                Verdict::Retry,
                Verdict::Retry
            ],
            "the unrecorded fourth message is retried"
        );
    }

    #[test]
    fn store_failures_are_retryable_and_never_poison() {
        let failures: [MessageFailure; 3] = [
            ApplyError::Unavailable("throttled".into()).into(),
            ApplyError::Conflict.into(),
            StoreError::Failed("access denied".into()).into(),
        ];
        assert!(failures.iter().all(|f| !f.is_poison()));
    }
}
