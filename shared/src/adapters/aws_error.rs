//! What an AWS SDK error means to the caller: worth trying again later, or not.
//!
//! By the time an adapter sees an error the SDK's retry layer (standard mode, see
//! `startup::aws`) has already retried throttling and transient failures. What is left is still
//! split in two, because the callers decide differently: a transient failure is `Unavailable`
//! (the HTTP edge answers 503, a consumer lets SQS redeliver), anything else is `Failed`
//! (a bug, a missing table, missing permissions) and is never disguised as a retryable one.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An SDK error, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AwsFailure {
    /// Throttling, timeouts, connection failures, 5xx: may pass if tried again.
    Transient(String),
    /// Everything else: will not pass by itself.
    Permanent(String),
}

/// Error codes AWS services use for conditions that pass by themselves.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

pub(crate) fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Classifies an SDK error; the message carries the whole error chain for the logs.
pub(crate) fn classify<E>(error: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or_default()
        ),
        None => DisplayErrorContext(error).to_string(),
    };
    let transient = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(context) => {
            context.err().code().is_some_and(is_transient_code)
                || context.raw().status().is_server_error()
        }
        // A request the SDK could not even build: a bug on our side.
        _ => false,
    };
    if transient {
        AwsFailure::Transient(message)
    } else {
        AwsFailure::Permanent(message)
    }
}

#[cfg(any(feature = "aws-eventbridge", feature = "aws-sqs"))]
/// The error code of a service error, when the service sent one.
pub(crate) fn error_code<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> Option<&str> {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
}
