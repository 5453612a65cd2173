//! Builds a process's adapters once, at start-up, from its settings. Lambda keeps what is built
//! here for every invocation of the execution environment, so nothing here runs per request.
//!
//! - [`entry_points`]: one entry point per Lambda function (`activity_service`, `stats_updater`, …):
//!   in-memory adapters when `ACTIVELOG_ADAPTERS=memory`, AWS ones otherwise. Needs the
//!   `aws-dynamodb` feature (and `aws-eventbridge` for the functions that publish): a function
//!   binary must be able to run on AWS.
//! - [`in_memory`]: the whole system in one process on in-memory adapters ([`InMemoryStack`]), for
//!   the local stack, the tests and memory-mode functions.
//! - [`aws`]: the SDK configuration and the AWS adapters a function needs (features `aws-*`).

#[cfg(feature = "aws-sdk")]
pub mod aws;
#[cfg(feature = "aws-dynamodb")]
pub mod entry_points;
pub mod in_memory;

#[cfg(feature = "aws-dynamodb")]
pub use entry_points::{achievement_queries, activity_queries, stats_queries, stats_updater};
#[cfg(all(feature = "aws-dynamodb", feature = "aws-eventbridge"))]
pub use entry_points::{achievement_recorder, activity_service, outbox_relay};
pub use in_memory::{InMemoryStack, QueueOptions, RoutedQueues, load_seed};

use crate::configuration::ConfigError;

/// Why a process could not start: a setting, the seed file, or the event routing.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("seed file {path}: {reason}")]
    Seed { path: String, reason: String },
    #[error("event routing: {0}")]
    Routing(String),
    #[error("cursor keys: {0}")]
    CursorKeys(String),
}

/// What a reading function does: read one activity by id, or also list (which needs cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    ById,
    Listing,
}
