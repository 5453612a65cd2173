//! One client span per AWS call, named and described as OpenTelemetry's conventions for the AWS
//! SDK say (`rpc.system = aws-api`, `rpc.service`, `rpc.method`, and the table, bus or queue), so a
//! trace shows which DynamoDB, EventBridge, SQS or Secrets Manager operation a request (or an
//! operator's tool: a dead-letter redrive, a rebuild, a replay) waited on. Every `send()` in the
//! workspace is wrapped in one (`.instrument(aws_call::dynamodb("Query", &self.table))`): the SDK's
//! own spans are at debug level and do not name the table. Public for the local stack's operator
//! endpoints (`activelog-local`), which make SQS calls of their own.

use tracing::Span;

/// A DynamoDB call on `table`.
#[cfg(feature = "aws-dynamodb")]
pub fn dynamodb(operation: &'static str, table: &str) -> Span {
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
pub fn eventbridge(operation: &'static str, event_bus: &str) -> Span {
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

/// An EventBridge call on the archive `archive_arn` about the replay `replay_name` (the operator's
/// `StartReplay` and `DescribeReplay`): a client call, not a publish, named by what an operator
/// looks a replay up by. EventBridge replays have no OpenTelemetry attributes of their own.
#[cfg(feature = "aws-eventbridge")]
pub fn eventbridge_replay(operation: &'static str, archive_arn: &str, replay_name: &str) -> Span {
    tracing::info_span!(
        "aws call",
        "otel.name" = %format!("EventBridge.{operation}"),
        "otel.kind" = "client",
        "rpc.system" = "aws-api",
        "rpc.service" = "EventBridge",
        "rpc.method" = operation,
        "aws.eventbridge.archive_arn" = archive_arn,
        "aws.eventbridge.replay_name" = replay_name,
    )
}

/// An SQS call on the queue at `queue_url`.
#[cfg(feature = "aws-sqs")]
pub fn sqs(operation: &'static str, queue_url: &str) -> Span {
    sqs_span(operation, Some(queue_url), None)
}

/// An SQS call that names its queue by name, not URL (`GetQueueUrl`).
#[cfg(feature = "aws-sqs")]
pub fn sqs_by_name(operation: &'static str, queue_name: &str) -> Span {
    sqs_span(operation, None, Some(queue_name))
}

/// One callsite for both: a field that is `None` is left out of the span.
#[cfg(feature = "aws-sqs")]
fn sqs_span(operation: &'static str, queue_url: Option<&str>, queue_name: Option<&str>) -> Span {
    tracing::info_span!(
        "aws call",
        "otel.name" = %format!("SQS.{operation}"),
        "otel.kind" = "client",
        "rpc.system" = "aws-api",
        "rpc.service" = "SQS",
        "rpc.method" = operation,
        "messaging.system" = "aws_sqs",
        "aws.sqs.queue.url" = queue_url,
        "messaging.destination.name" = queue_name,
    )
}

/// A Secrets Manager call on the secret `secret_id` (its ARN, as the template passes it, or name).
#[cfg(feature = "aws-secretsmanager")]
pub fn secrets_manager(operation: &'static str, secret_id: &str) -> Span {
    tracing::info_span!(
        "aws call",
        "otel.name" = %format!("SecretsManager.{operation}"),
        "otel.kind" = "client",
        "rpc.system" = "aws-api",
        "rpc.service" = "SecretsManager",
        "rpc.method" = operation,
        "aws.secretsmanager.secret.arn" = secret_id,
    )
}
