//! The Amazon MSK / self-managed Apache Kafka shape of the seam: Lambda's Kafka event source
//! mapping reads a topic with its own consumer group and invokes a consumer with `records`
//! grouped by `<topic>-<partition>`, each with a base64 `value` and headers as byte arrays.
//!
//! Kafka event source mappings offer a partial batch response (`ReportBatchItemFailures`, in
//! provisioned poller mode; AWS Lambda guide, "Configuring error handling controls for Kafka
//! event sources"): the function answers `{"batchItemFailures": [{"itemIdentifier":
//! {"partition": "<topic>-<partition>", "offset": <offset>}}]}` and Lambda retries the failed
//! records only, up to `MaximumRetryAttempts`, then hands them to the mapping's on-failure
//! destination. That is what [`settle`] answers:
//!
//! - applied or a duplicate: not reported, Lambda commits past it;
//! - retryable or poison: reported by topic-partition and offset. A retryable record comes back
//!   and is applied once the store is back; a poison record keeps failing until the retry limit
//!   sends it to the on-failure destination (`template-msk.yaml` points it at an SQS queue with
//!   an alarm), the Kafka twin of the dead-letter queue. Records applied before a retry come
//!   back as duplicates only if Lambda resends them, and the processed-event markers absorb
//!   them.
//!
//! Without `ReportBatchItemFailures` on the mapping Lambda would ignore the answer and count a
//! failed record as done, so the template turns it on (and the provisioned mode it needs).

use std::collections::BTreeMap;

use aws_lambda_events::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::event_source::{RawMessage, Verdict, traceparent_header};
use crate::domain::TraceParent;

/// The header the Kafka publisher writes the event id into; used as the message id when present.
pub const EVENT_ID_HEADER: &str = "event_id";

/// Where a record sits: the event's `<topic>-<partition>` key and the record's offset. This is
/// Lambda's identifier of a failed record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KafkaItemIdentifier {
    pub partition: String,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchItemFailure {
    pub item_identifier: KafkaItemIdentifier,
}

/// The partial batch response of a Kafka event source mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchResponse {
    pub batch_item_failures: Vec<KafkaBatchItemFailure>,
}

/// One record of the event as the consumers see it, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMessage {
    pub at: KafkaItemIdentifier,
    pub message: RawMessage,
}

/// The records of a Kafka event, partition by partition in key order and by offset within each
/// (the order Kafka keeps per partition, which is per user here). A value that is not base64 of
/// UTF-8 text is read as missing, which the edge names poison.
pub fn raw_messages(event: &KafkaEvent) -> Vec<KafkaMessage> {
    let partitions: BTreeMap<&String, &Vec<KafkaRecord>> = event.records.iter().collect();
    partitions
        .into_iter()
        .flat_map(|(partition, records)| {
            let mut records: Vec<&KafkaRecord> = records.iter().collect();
            records.sort_by_key(|record| record.offset);
            records.into_iter().map(move |record| KafkaMessage {
                at: KafkaItemIdentifier {
                    partition: partition.clone(),
                    offset: record.offset,
                },
                message: raw_message(partition, record),
            })
        })
        .collect()
}

fn raw_message(partition: &str, record: &KafkaRecord) -> RawMessage {
    let body = record.value.as_deref().and_then(|value| {
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    });
    RawMessage {
        message_id: header(record, EVENT_ID_HEADER)
            .unwrap_or_else(|| format!("{partition}@{}", record.offset)),
        body,
        // Kafka counts no deliveries; Lambda's retries are bounded by the mapping instead.
        delivery_count: 1,
        transport_trace: traceparent_header(header(record, TraceParent::HEADER).as_deref()),
    }
}

/// A header's value as text. Lambda writes header values as arrays of signed bytes.
pub fn header(record: &KafkaRecord, name: &str) -> Option<String> {
    record
        .headers
        .iter()
        .find_map(|headers| headers.get(name))
        .and_then(|bytes| {
            let bytes: Vec<u8> = bytes
                .iter()
                .map(|b| u8::from_ne_bytes(b.to_ne_bytes()))
                .collect();
            String::from_utf8(bytes).ok()
        })
}

/// The partial batch response for these verdicts (one per message, in order): every record not
/// settled is reported.
pub fn settle(messages: &[KafkaMessage], verdicts: &[Verdict]) -> KafkaBatchResponse {
    KafkaBatchResponse {
        batch_item_failures: messages
            .iter()
            .enumerate()
            // A missing verdict is a failure: the record comes back rather than being lost.
            .filter(|(index, _)| !verdicts.get(*index).is_some_and(|v| v.is_settled()))
            .map(|(_, message)| KafkaBatchItemFailure {
                item_identifier: message.at.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, value: &str, headers: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "topic": "t", "partition": 0, "offset": offset, "timestamp": 1_795_000_000_000_i64,
            "timestampType": "CREATE_TIME", "key": "YWxpY2U=", "value": value, "headers": headers
        })
    }

    fn event() -> KafkaEvent {
        serde_json::from_value(serde_json::json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": "arn:aws:kafka:eu-west-1:123456789012:cluster/c/1",
            "bootstrapServers": "b-1:9098",
            "records": {
                "t-1": [record(4, "e30=", serde_json::json!([]))],
                "t-0": [
                    record(9, "not base64!", serde_json::json!([])),
                    // "e-7" as signed bytes
                    record(8, "e30=", serde_json::json!([{"event_id": [101, 45, 55]}])),
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn records_are_read_by_partition_and_offset_with_decoded_values_and_event_ids() {
        let messages = raw_messages(&event());
        let at: Vec<(&str, i64)> = messages
            .iter()
            .map(|m| (m.at.partition.as_str(), m.at.offset))
            .collect();
        assert_eq!(at, [("t-0", 8), ("t-0", 9), ("t-1", 4)]);
        assert_eq!(messages[0].message.message_id, "e-7");
        assert_eq!(messages[0].message.body.as_deref(), Some("{}"));
        assert_eq!(messages[1].message.message_id, "t-0@9");
        assert_eq!(
            messages[1].message.body, None,
            "undecodable value reads as missing"
        );
    }

    #[test]
    fn every_unsettled_record_is_reported_by_partition_and_offset() {
        let messages = raw_messages(&event());
        let response = settle(&messages, &[Verdict::Applied, Verdict::Poison]);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "t-0", "offset": 9}},
                {"itemIdentifier": {"partition": "t-1", "offset": 4}},
            ]}),
            "the poison record and the one without a verdict"
        );
        let all_done = settle(
            &messages,
            &[Verdict::Applied, Verdict::Duplicate, Verdict::Applied],
        );
        assert!(all_done.batch_item_failures.is_empty());
    }

    #[test]
    fn negative_header_bytes_are_read_back_as_utf8() {
        // "é" is 0xC3 0xA9, which Lambda writes as -61, -87.
        let record: KafkaRecord =
            serde_json::from_value(record(1, "", serde_json::json!([{"h": [-61, -87]}]))).unwrap();
        assert_eq!(header(&record, "h").as_deref(), Some("é"));
    }
}
