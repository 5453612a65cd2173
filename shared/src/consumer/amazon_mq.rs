//! The Amazon MQ for RabbitMQ shape of the seam: Lambda's event source mapping reads a broker
//! queue and invokes a consumer with `rmqMessagesByQueue` (base64 bodies). That trigger has no
//! partial batch response — the invocation succeeds or fails as a whole — so here:
//!
//! - every message applied or a duplicate: the invocation succeeds and Lambda acknowledges the
//!   batch;
//! - any message retryable or poison: the invocation fails ([`BatchFailed`]) and Lambda returns
//!   the whole batch to the queue. The messages that were applied come back too and are absorbed
//!   by the processed-event markers (nothing is applied twice); a poison message keeps failing
//!   until the quorum queue's delivery limit dead-letters it to the consumer's dead-letter queue,
//!   after which the rest of its batch goes through.
//!
//! The queue must be the quorum queue with a delivery limit and dead-letter exchange that the
//! RabbitMQ adapter declares (`adapters::rabbitmq`); without a limit, a poison message would
//! come back forever.

use base64::Engine;

use super::event_source::{RawMessage, Verdict, traceparent_header};
use crate::domain::TraceParent;
use aws_lambda_events::rabbitmq::{RabbitMqEvent, RabbitMqMessage};

/// The invocation failed on purpose so that Lambda hands the batch back to the broker.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{retryable} message(s) to retry and {poison} poison message(s) in a batch of {batch}: the whole batch goes back to the broker (applied messages come back as duplicates; poison reaches the dead-letter queue at the delivery limit)"
)]
pub struct BatchFailed {
    pub batch: usize,
    pub retryable: usize,
    pub poison: usize,
}

/// The messages of an Amazon MQ event, queue by queue in name order. A body that is not base64
/// of UTF-8 text is read as missing, which the edge names poison.
pub fn raw_messages(event: &RabbitMqEvent) -> Vec<RawMessage> {
    let mut queues: Vec<(&String, &Vec<RabbitMqMessage>)> =
        event.messages_by_queue.iter().collect();
    queues.sort_by_key(|(queue, _)| *queue);
    queues
        .into_iter()
        .flat_map(|(queue, messages)| {
            messages
                .iter()
                .enumerate()
                .map(move |(index, message)| raw_message(queue, index, message))
        })
        .collect()
}

fn raw_message(queue: &str, index: usize, message: &RabbitMqMessage) -> RawMessage {
    let properties = &message.basic_properties;
    let body = message.data.as_deref().and_then(|data| {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    });
    // Quorum queues count earlier deliveries in `x-delivery-count`; otherwise only the
    // `redelivered` flag says whether this is a first delivery.
    let earlier = properties
        .headers
        .get("x-delivery-count")
        .and_then(serde_json::Value::as_u64)
        .and_then(|count| u32::try_from(count).ok())
        .unwrap_or(u32::from(message.redelivered));
    RawMessage {
        message_id: properties
            .message_id
            .clone()
            .unwrap_or_else(|| format!("{queue}#{index}")),
        body,
        delivery_count: earlier.saturating_add(1),
        transport_trace: traceparent_header(
            text_header(properties.headers.get(TraceParent::HEADER)).as_deref(),
        ),
    }
}

/// A text header's value: Lambda writes an AMQP long string as `{"bytes": [...]}`. A byte
/// outside 0–255 makes the header unreadable (no position), never a truncated one.
fn text_header(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(object) => {
            let bytes: Option<Vec<u8>> = object
                .get("bytes")?
                .as_array()?
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8(bytes?).ok()
        }
        _ => None,
    }
}

/// What the invocation answers for these verdicts.
pub fn settle(verdicts: &[Verdict]) -> Result<(), BatchFailed> {
    let retryable = verdicts.iter().filter(|v| **v == Verdict::Retry).count();
    let poison = verdicts.iter().filter(|v| **v == Verdict::Poison).count();
    if retryable + poison == 0 {
        Ok(())
    } else {
        Err(BatchFailed {
            batch: verdicts.len(),
            retryable,
            poison,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> RabbitMqEvent {
        serde_json::from_value(json).unwrap()
    }

    fn message(
        id: Option<&str>,
        data: &str,
        redelivered: bool,
        headers: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({
            "basicProperties": {
                "contentType": "application/json", "contentEncoding": null, "headers": headers,
                "deliveryMode": 2, "priority": 0, "correlationId": null, "replyTo": null,
                "expiration": null, "messageId": id, "timestamp": null, "type": null,
                "userId": null, "appId": null, "clusterId": null, "bodySize": 2
            },
            "redelivered": redelivered,
            "data": data
        })
    }

    #[test]
    fn messages_are_read_queue_by_queue_with_decoded_bodies_and_delivery_counts() {
        let event = event(serde_json::json!({
            "eventSource": "aws:rmq",
            "eventSourceArn": "arn:aws:mq:eu-west-1:123456789012:broker:b:b-1",
            "rmqMessagesByQueue": {
                "stats::/": [
                    message(Some("e-1"), "e30=", false, serde_json::json!({})),
                    message(None, "not base64!", true, serde_json::json!({})),
                ],
                "achievements::/": [
                    message(Some("e-2"), "e30=", true, serde_json::json!({"x-delivery-count": 3})),
                ]
            }
        }));
        let raw = raw_messages(&event);
        assert_eq!(raw.len(), 3);
        assert_eq!(raw[0].message_id, "e-2", "queues in name order");
        assert_eq!(raw[0].delivery_count, 4);
        assert_eq!(raw[1].body.as_deref(), Some("{}"));
        assert_eq!(raw[1].delivery_count, 1);
        assert_eq!(raw[2].message_id, "stats::/#1");
        assert_eq!(raw[2].body, None, "undecodable data reads as missing");
        assert_eq!(raw[2].delivery_count, 2);
    }

    #[test]
    fn any_retry_or_poison_fails_the_whole_invocation() {
        assert_eq!(settle(&[Verdict::Applied, Verdict::Duplicate]), Ok(()));
        assert_eq!(
            settle(&[Verdict::Applied, Verdict::Poison, Verdict::Retry]),
            Err(BatchFailed {
                batch: 3,
                retryable: 1,
                poison: 1
            })
        );
    }
}
