//! The DynamoDB adapter: activities, outbox records, idempotency records, statistics and
//! processed-event markers, all in one table (single-table design, see `docs/data-model.md`).
//!
//! It also implements `AchievementStore` (progress and awards in the user's partition).
//!
//! One table because the writes that must be atomic span item types: an activity and its outbox
//! record (and its idempotency record) are one `TransactWriteItems`; a batch of processed-event
//! markers and the statistics they add up to are another. Conditions inside those transactions
//! carry the domain's rules (no overwrite, expected version, apply once), and a cancelled
//! transaction is read item by item (`CancellationReasons`) to tell the use case which rule was
//! broken, so a broken rule is a domain answer (conflict, not found, duplicate), never a 500.

mod achievements;
mod activities;
mod items;
mod scan;
mod stats;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::CancellationReason;
use tracing::Instrument;

use crate::adapters::aws_call;
use crate::adapters::aws_error::{AwsFailure, classify};
use crate::adapters::system::SystemClock;
use crate::application::{ApplyError, Clock, StoreError};
use crate::domain::{ProjectionVersion, UserId};

pub use items::{MARKER_RETENTION, OUTBOX_SHARDS, attributes, indexes};

/// The table and the client that reaches it. Implements `ActivityStore`, `Outbox` and
/// `StatsStore`; cheap to clone (the client is a handle).
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    /// Stamps `expires_at` on processed-event markers.
    clock: Arc<dyn Clock>,
    /// The statistics projection version this store reads and writes (keys, fence, revision
    /// and the stats consumer's markers); v1 unless configured.
    stats_version: ProjectionVersion,
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            clock: Arc::new(SystemClock),
            stats_version: ProjectionVersion::FIRST,
        }
    }

    /// The same table, reading and writing statistics projection version `version` (every
    /// other item type is the same whatever the version).
    pub fn with_stats_version(mut self, version: ProjectionVersion) -> Self {
        self.stats_version = version;
        self
    }

    pub fn stats_version(&self) -> ProjectionVersion {
        self.stats_version
    }

    /// The same store with another clock (tests that control `expires_at`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Every item of the user's partition whose sort key starts with `prefix`, all pages, read
    /// consistently: what a reader that must see the latest writes (a rebuild, the achievements
    /// consumer) works from.
    async fn user_items(
        &self,
        user_id: &UserId,
        prefix: &str,
    ) -> Result<Vec<items::Item>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :user AND begins_with(SK, :prefix)")
                .expression_attribute_values(":user", items::s(items::user_pk(user_id)))
                .expression_attribute_values(":prefix", items::s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .instrument(aws_call::dynamodb("Query", &self.table))
                .await
                .map_err(|e| store_error(&e))?;
            found.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }
}

/// What one item of a cancelled transaction reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// The item's own condition was false.
    ConditionFailed,
    /// Another transaction or write touched the item at the same time.
    Conflict,
    /// Throttled, or a capacity limit: passes by itself.
    Throttled,
    /// The item was fine; another item cancelled the transaction.
    Fine,
    /// Anything else (validation, size limits): will not pass by itself.
    Other,
}

impl Reason {
    fn of(reason: &CancellationReason) -> Self {
        match reason.code() {
            None | Some("None") => Self::Fine,
            Some("ConditionalCheckFailed") => Self::ConditionFailed,
            Some("TransactionConflict") => Self::Conflict,
            Some("ThrottlingError" | "ProvisionedThroughputExceeded") => Self::Throttled,
            Some(_) => Self::Other,
        }
    }
}

/// A store failure from an SDK error that is not a condition the caller asked for.
fn store_error<E>(
    error: &aws_sdk_dynamodb::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match classify(error) {
        AwsFailure::Transient(message) => StoreError::Unavailable(message),
        AwsFailure::Permanent(message) => StoreError::Failed(message),
    }
}

fn apply_error<E>(
    error: &aws_sdk_dynamodb::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> ApplyError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match classify(error) {
        AwsFailure::Transient(message) => ApplyError::Unavailable(message),
        AwsFailure::Permanent(message) => ApplyError::Failed(message),
    }
}

/// The store error for a cancelled transaction no item condition explains.
fn unexplained_cancellation(reasons: &[Reason], message: &str) -> StoreError {
    if reasons.contains(&Reason::Conflict) {
        StoreError::TransactionConflict
    } else if reasons.contains(&Reason::Throttled) {
        StoreError::Unavailable(format!("transaction cancelled: {message}"))
    } else {
        StoreError::Failed(format!("transaction cancelled: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lost race must reach the use cases as itself, so they retry it in-process; throttling
    /// stays `Unavailable` (the SDK retried it already) and anything else is `Failed`.
    #[test]
    fn a_cancellation_says_whether_it_was_a_race() {
        assert_eq!(
            unexplained_cancellation(&[Reason::Fine, Reason::Conflict], "m"),
            StoreError::TransactionConflict
        );
        assert!(matches!(
            unexplained_cancellation(&[Reason::Throttled, Reason::Fine], "m"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            unexplained_cancellation(&[Reason::Other], "m"),
            StoreError::Failed(_)
        ));
    }
}
