//! The SQS shape of the seam, for the Lambda SQS trigger and the pollers that imitate it: an
//! `SqsEvent` read as [`RawMessage`]s, and Lambda's reading of a partial-batch response.

use super::event_source::{RawMessage, aws_trace_header};
use super::{SqsBatchResponse, SqsEvent, SqsMessage};

/// The messages of an SQS event, in order; the receive count comes from
/// `ApproximateReceiveCount` (1 when SQS did not say).
pub fn raw_messages(event: &SqsEvent) -> Vec<RawMessage> {
    event.records.iter().map(raw_message).collect()
}

fn raw_message(message: &SqsMessage) -> RawMessage {
    RawMessage {
        message_id: message.message_id.clone().unwrap_or_default(),
        body: message.body.clone(),
        delivery_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1),
        transport_trace: aws_trace_header(
            message.attributes.get("AWSTraceHeader").map(String::as_str),
        ),
    }
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
    use std::collections::HashMap;

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

    #[test]
    fn the_receive_count_becomes_the_delivery_count() {
        let mut message = SqsMessage::default();
        message.message_id = Some("m-1".into());
        message.body = Some("{}".into());
        message.attributes = HashMap::from([("ApproximateReceiveCount".into(), "3".into())]);
        let mut event = SqsEvent::default();
        event.records = vec![message, SqsMessage::default()];
        let raw = raw_messages(&event);
        assert_eq!(raw[0].delivery_count, 3);
        assert_eq!(raw[0].message_id, "m-1");
        assert_eq!(raw[1].delivery_count, 1);
        assert_eq!(raw[1].body, None);
        assert_eq!(
            raw[0].transport_trace, None,
            "no AWSTraceHeader, no position"
        );
    }

    #[test]
    fn the_aws_trace_header_becomes_the_transports_position_strictly() {
        let with = |header: &str| {
            let mut message = SqsMessage::default();
            message.attributes = HashMap::from([("AWSTraceHeader".into(), header.into())]);
            let mut event = SqsEvent::default();
            event.records = vec![message];
            raw_messages(&event)[0].transport_trace
        };
        let position =
            with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                .expect("a header with a parent");
        assert_eq!(
            position.to_string(),
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        for unreadable in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Root=1-5759E988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
        ] {
            assert_eq!(with(unreadable), None, "{unreadable}");
        }
    }
}
