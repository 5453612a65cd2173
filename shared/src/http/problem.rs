//! Errors as RFC 9457 problem details (`application/problem+json`). Every way a request can fail
//! is a [`ProblemType`] with a stable `type` URI, and [`HttpError::problem`] is the one place that
//! decides which failure answers which status: a handler never picks a status code for an error.
//!
//! A 5xx answer never carries internal detail; the error is logged with the request id, which the
//! body's `instance` repeats so a client can quote it.

use serde::Serialize;

use crate::application::UseCaseError;
use crate::domain::{FieldError, ValidationErrors};

use super::entity_tag;

/// The base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://activelog.dev/problems/";

/// Every kind of problem the API answers with. The URIs are part of the contract: clients switch
/// on them, so a variant's slug never changes once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// No authenticated caller: the authorizer's `sub` claim is missing.
    Unauthenticated,
    /// The body is not JSON, has a wrong type, or a field the API does not know.
    MalformedRequest,
    /// A path, query or header parameter is missing or invalid.
    InvalidParameter,
    /// A list cursor is garbled, forged, expired or not the caller's.
    InvalidCursor,
    /// The body parsed, but some fields hold values out of range.
    ValidationFailed,
    /// No such activity for this caller (also when it belongs to someone else).
    NotFound,
    /// `If-Match` named a version that is no longer current.
    PreconditionFailed,
    /// Concurrent writers kept changing the activity; retrying may succeed.
    Conflict,
    /// The `Idempotency-Key` was used before with a different body.
    IdempotencyKeyReused,
    /// The body exceeds [`super::MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// The body is not declared as JSON.
    UnsupportedMediaType,
    /// A dependency is temporarily unavailable; retrying later may succeed.
    ServiceUnavailable,
    /// A bug or misconfiguration; details are in the logs only.
    InternalError,
}

impl ProblemType {
    pub const ALL: [ProblemType; 13] = [
        Self::Unauthenticated,
        Self::MalformedRequest,
        Self::InvalidParameter,
        Self::InvalidCursor,
        Self::ValidationFailed,
        Self::NotFound,
        Self::PreconditionFailed,
        Self::Conflict,
        Self::IdempotencyKeyReused,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ServiceUnavailable,
        Self::InternalError,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::MalformedRequest => "malformed-request",
            Self::InvalidParameter => "invalid-parameter",
            Self::InvalidCursor => "invalid-cursor",
            Self::ValidationFailed => "validation-failed",
            Self::NotFound => "not-found",
            Self::PreconditionFailed => "precondition-failed",
            Self::Conflict => "conflict",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::ServiceUnavailable => "service-unavailable",
            Self::InternalError => "internal-error",
        }
    }

    pub fn uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }

    pub fn status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::MalformedRequest | Self::InvalidParameter | Self::InvalidCursor => 400,
            Self::ValidationFailed | Self::IdempotencyKeyReused => 422,
            Self::NotFound => 404,
            Self::PreconditionFailed => 412,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ServiceUnavailable => 503,
            Self::InternalError => 500,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Unauthenticated => "Authentication required",
            Self::MalformedRequest => "Malformed request",
            Self::InvalidParameter => "Invalid parameter",
            Self::InvalidCursor => "Invalid cursor",
            Self::ValidationFailed => "Validation failed",
            Self::NotFound => "Activity not found",
            Self::PreconditionFailed => "Precondition failed",
            Self::Conflict => "Conflicting concurrent change",
            Self::IdempotencyKeyReused => "Idempotency key reused",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::ServiceUnavailable => "Service unavailable",
            Self::InternalError => "Internal error",
        }
    }
}

/// Why a request failed at the edge or in a use case.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no authenticated caller (missing `sub` claim)")]
    Unauthenticated,
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("content type `{0}` is not JSON")]
    UnsupportedMediaType(String),
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    #[error("invalid parameters: {0}")]
    InvalidParameters(ValidationErrors),
    #[error("invalid body: {0}")]
    InvalidBody(ValidationErrors),
    #[error(transparent)]
    UseCase(#[from] UseCaseError),
}

impl From<FieldError> for HttpError {
    fn from(error: FieldError) -> Self {
        Self::InvalidParameters(error.into())
    }
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The request id: what to quote when asking about this failure.
    pub instance: String,
    /// The offending fields, for validation and parameter problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl HttpError {
    /// The problem type, a client-facing detail and the offending fields: the one mapping.
    pub fn problem(&self) -> (ProblemType, String, Vec<FieldError>) {
        use ProblemType as P;
        let fields = |errors: &ValidationErrors| errors.errors().to_vec();
        match self {
            Self::Unauthenticated => (
                P::Unauthenticated,
                "The request carries no authenticated caller.".into(),
                vec![],
            ),
            Self::PayloadTooLarge { limit, .. } => (
                P::PayloadTooLarge,
                format!("The request body must be at most {limit} bytes."),
                vec![],
            ),
            Self::UnsupportedMediaType(content_type) => (
                P::UnsupportedMediaType,
                format!("Content-Type `{content_type}` is not accepted; send application/json."),
                vec![],
            ),
            Self::MalformedBody(reason) => (P::MalformedRequest, reason.clone(), vec![]),
            Self::InvalidParameters(errors) => (
                P::InvalidParameter,
                format!("Invalid request parameters: {errors}."),
                fields(errors),
            ),
            Self::InvalidBody(errors) | Self::UseCase(UseCaseError::Invalid(errors)) => (
                P::ValidationFailed,
                format!("Some fields are invalid: {errors}."),
                fields(errors),
            ),
            Self::UseCase(UseCaseError::NotFound) => (
                P::NotFound,
                "No activity with this id exists for the caller.".into(),
                vec![],
            ),
            Self::UseCase(UseCaseError::PreconditionFailed { current }) => (
                P::PreconditionFailed,
                format!(
                    "The activity is at version {current}; fetch it again and retry with If-Match: {}.",
                    entity_tag::of(*current)
                ),
                vec![],
            ),
            Self::UseCase(UseCaseError::Conflict) => (
                P::Conflict,
                "The activity was changed concurrently; retry the request.".into(),
                vec![],
            ),
            Self::UseCase(UseCaseError::IdempotencyKeyReused) => (
                P::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request body.".into(),
                vec![],
            ),
            Self::UseCase(UseCaseError::InvalidCursor) => (
                P::InvalidCursor,
                "The cursor is not valid for this caller and these filters; start again without it."
                    .into(),
                vec![],
            ),
            Self::UseCase(UseCaseError::Unavailable(_)) => (
                P::ServiceUnavailable,
                "A dependency is temporarily unavailable; retry later.".into(),
                vec![],
            ),
            Self::UseCase(UseCaseError::Internal(_)) => (
                P::InternalError,
                "An unexpected error occurred; quote the instance when reporting it.".into(),
                vec![],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_statuses_are_errors() {
        let mut slugs: Vec<&str> = ProblemType::ALL.iter().map(|p| p.slug()).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
        assert!(ProblemType::ALL.iter().all(|p| p.status() >= 400));
    }

    #[test]
    fn internal_detail_never_reaches_the_client() {
        let error = HttpError::UseCase(UseCaseError::Internal("table secret-table missing".into()));
        let (problem_type, detail, _) = error.problem();
        assert_eq!(problem_type, ProblemType::InternalError);
        assert!(!detail.contains("secret-table"));
        let error = HttpError::UseCase(UseCaseError::Unavailable("throttled on secret".into()));
        assert!(!error.problem().1.contains("secret"));
    }
}
