//! The one error every use case answers with (activities, statistics, achievements), in words a
//! caller can act on. The HTTP edge maps each variant to one problem type in one place
//! (`http::problem`).

use crate::domain::{ValidationErrors, Version};

use super::ports::StoreError;

/// Why a use case did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    #[error("activity not found")]
    NotFound,
    /// `If-Match` named a version that is no longer current.
    #[error("activity is at version {current}, not the expected one")]
    PreconditionFailed { current: Version },
    /// Concurrent writers kept changing the activity; the client may retry.
    #[error("activity was changed concurrently")]
    Conflict,
    /// The `Idempotency-Key` was used before with a different request body.
    #[error("idempotency key was used with a different request")]
    IdempotencyKeyReused,
    #[error("invalid cursor")]
    InvalidCursor,
    /// A dependency failed in a way that may pass if retried.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a misconfiguration. Logged, never shown to clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for UseCaseError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound,
            StoreError::VersionConflict | StoreError::AlreadyExists => Self::Conflict,
            StoreError::IdempotencyKeyTaken => Self::Conflict,
            StoreError::InvalidPosition => Self::InvalidCursor,
            StoreError::Unavailable(reason) => Self::Unavailable(reason),
            StoreError::TransactionConflict => {
                Self::Unavailable(StoreError::TransactionConflict.to_string())
            }
            StoreError::Failed(reason) => Self::Internal(reason),
        }
    }
}
