//! What an event source drives: a consumer of SQS-shaped batches, and how the source reads the
//! consumer's partial-batch answer. The in-memory poller and the SQS poller (adapters) both call
//! this, as a Lambda event source mapping calls a function; the consumers here implement it and
//! know nothing of the source.

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};

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
