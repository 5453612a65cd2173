//! One client span per AWS call, named and described as OpenTelemetry's conventions for the AWS
//! SDK say (`rpc.system = aws-api`, `rpc.service`, `rpc.method`, and the table, bus or queue), so a
//! trace shows which DynamoDB, EventBridge or SQS operation a request waited on. The adapters wrap
//! each `send()` in one (`.instrument(aws_call::dynamodb("Query", &self.table))`): the SDK's own
//! spans are at debug level and do not name the table.

use tracing::Span;

/// A DynamoDB call on `table`.
#[cfg(feature = "aws-dynamodb")]
pub(crate) fn dynamodb(operation: &'static str, table: &str) -> Span {
    tracing::info_span!(
        "aws call",
        "otel.name" = %format!("DynamoDB.{operation}"),
        "otel.kind" = "client",
        "rpc.system" = "aws-api",
        "rpc.service" = "DynamoDB",
        "rpc.method" = operation,
        "aws.dynamodb.table_names" = table,
    )
}

/// An EventBridge call on the bus `event_bus`.
#[cfg(feature = "aws-eventbridge")]
pub(crate) fn eventbridge(operation: &'static str, event_bus: &str) -> Span {
    tracing::info_span!(
        "aws call",
        "otel.name" = %format!("EventBridge.{operation}"),
        "otel.kind" = "producer",
        "rpc.system" = "aws-api",
        "rpc.service" = "EventBridge",
        "rpc.method" = operation,
        "messaging.system" = "aws.eventbridge",
        "messaging.destination.name" = event_bus,
    )
}

/// An SQS call on the queue at `queue_url`.
#[cfg(feature = "aws-sqs")]
pub(crate) fn sqs(operation: &'static str, queue_url: &str) -> Span {
    tracing::info_span!(
        "aws call",
        "otel.name" = %format!("SQS.{operation}"),
        "otel.kind" = "client",
        "rpc.system" = "aws-api",
        "rpc.service" = "SQS",
        "rpc.method" = operation,
        "messaging.system" = "aws_sqs",
        "aws.sqs.queue.url" = queue_url,
    )
}
