//! `StatsStore` on the table. A stats item holds one user's totals for one period as flat numbers
//! (`activities`, `minutes`, …, and `<type>_activities`, `<type>_minutes`, … per activity type), so
//! that `ADD` can change them without a prior read and without creating nested maps first. A
//! processed-event marker per (consumer, event id) makes every write apply once: the markers
//! and the `ADD`s are one transaction, and a marker that exists cancels it.
//!
//! The user's all-time item also carries the projection's `projection_rev` (every write adds 1)
//! and, once a rebuild ran, its `rebuild_fence`: every consumer write touches the all-time item,
//! bumping the revision and conditioned on the oldest event being at or after the fence. That is
//! the cut-over of `application::rebuild`; `StatsProjectionStore` (the rebuild's side) is at the
//! end of this file.
//!
//! Everything here is scoped to the store's projection version (`with_stats_version`): the
//! items' sort keys (`STATS#…` for v1, `STATS@v2#…` for v2), hence the revision and fence on
//! that version's all-time item, and the stats consumer's markers (`update-stats` for v1,
//! `update-stats@v2` for v2). Two versions in one table are two projections that share nothing.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use time::OffsetDateTime;

use tracing::Instrument;

use super::items::{self, Item, n, s};
use super::{DynamoDbStore, Reason, apply_error, store_error, unexplained_cancellation};
use crate::adapters::aws_call;
use crate::application::{
    ApplyError, ApplyOutcome, CorrectionOutcome, StatsProjection, StatsProjectionStore, StatsStore,
    StoreError,
};
use crate::domain::{
    ActivityType, EventId, PeriodKey, ProjectionVersion, StatsCorrection, StatsDelta, Totals,
    UserId, UserStats,
};

const FIELDS: [&str; 4] = ["activities", "minutes", "distance_m", "calories"];
/// On the all-time item: bumped by every write to the user's statistics.
const REVISION: &str = "projection_rev";
/// On the all-time item: events that occurred before it (epoch nanoseconds) add nothing.
const FENCE: &str = "rebuild_fence";

fn nanos(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos()
}

fn values(totals: &Totals) -> [i64; 4] {
    [
        totals.activities,
        totals.minutes,
        totals.distance_m,
        totals.calories,
    ]
}

fn build_error(error: impl std::fmt::Display) -> ApplyError {
    ApplyError::Failed(format!("invalid request: {error}"))
}

/// The `ADD` updates one delta makes: one item per period.
fn stats_updates(
    table: &str,
    version: ProjectionVersion,
    delta: &StatsDelta,
) -> Result<Vec<TransactWriteItem>, ApplyError> {
    let mut per_period: BTreeMap<PeriodKey, Vec<(String, i64)>> = BTreeMap::new();
    // The all-time item is written even by a delta that leaves it unchanged (an update that
    // moves an activity's date only): it carries the revision and the fence.
    per_period.insert(PeriodKey::AllTime, Vec::new());
    for change in delta.changes() {
        let additions = per_period.entry(change.period).or_default();
        for (field, value) in FIELDS.iter().zip(values(&change.totals)) {
            additions.push(((*field).to_owned(), value));
            additions.push((format!("{}_{field}", change.activity_type.as_str()), value));
        }
    }
    let mut updates = Vec::new();
    for (period, additions) in per_period {
        let mut summed: BTreeMap<String, i64> = BTreeMap::new();
        for (attribute, value) in additions {
            *summed.entry(attribute).or_default() += value;
        }
        let mut names = HashMap::from([
            ("#entity".to_owned(), items::attributes::ENTITY.to_owned()),
            ("#user".to_owned(), "user_id".to_owned()),
            ("#period".to_owned(), "period".to_owned()),
        ]);
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":entity".to_owned(), s("stats")),
            (":user".to_owned(), s(delta.user_id.as_str())),
            (":period".to_owned(), s(period.to_string())),
        ]);
        let mut adds = Vec::new();
        for (index, (attribute, value)) in summed.into_iter().filter(|(_, v)| *v != 0).enumerate() {
            names.insert(format!("#a{index}"), attribute);
            values.insert(format!(":a{index}"), n(value));
            adds.push(format!("#a{index} :a{index}"));
        }
        let mut condition = None;
        if period == PeriodKey::AllTime {
            names.insert("#rev".into(), REVISION.into());
            values.insert(":one".into(), n(1));
            adds.push("#rev :one".into());
            if let Some(earliest) = delta.earliest_occurred_at {
                names.insert("#fence".into(), FENCE.into());
                values.insert(":earliest".into(), n(nanos(earliest)));
                condition = Some("attribute_not_exists(#fence) OR #fence <= :earliest".to_owned());
            }
        } else if adds.is_empty() {
            continue;
        }
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(items::stats_key(&delta.user_id, period, version)))
            .update_expression(format!(
                "SET #entity = :entity, #user = :user, #period = :period ADD {}",
                adds.join(", ")
            ))
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        updates.push(TransactWriteItem::builder().update(update).build());
    }
    Ok(updates)
}

/// Why a marker-and-stats transaction did not happen.
enum Refused {
    /// These events' markers exist: they were applied before.
    AlreadyApplied(Vec<EventId>),
    Other(ApplyError),
}

impl DynamoDbStore {
    fn marker_put(
        &self,
        consumer: &str,
        event_id: EventId,
    ) -> Result<TransactWriteItem, ApplyError> {
        let put = items::marker_put(&self.table, consumer, event_id, self.clock.now())
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Markers first (so reason `i` belongs to `event_ids[i]`), then the stats updates.
    async fn apply(
        &self,
        consumer: &str,
        event_ids: &[EventId],
        deltas: &[StatsDelta],
    ) -> Result<(), Refused> {
        let consumer = items::stats_marker_consumer(consumer, self.stats_version);
        let mut transaction = Vec::new();
        for event_id in event_ids {
            transaction.push(
                self.marker_put(&consumer, *event_id)
                    .map_err(Refused::Other)?,
            );
        }
        // A transaction may touch an item once: deltas of the same user become one delta.
        let mut per_user: BTreeMap<&UserId, StatsDelta> = BTreeMap::new();
        for delta in deltas {
            per_user
                .entry(&delta.user_id)
                .or_insert_with(|| StatsDelta::empty(delta.user_id.clone()))
                .merge(delta);
        }
        for delta in per_user.values() {
            transaction.extend(
                stats_updates(&self.table, self.stats_version, delta).map_err(Refused::Other)?,
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction))
            .send()
            .instrument(aws_call::dynamodb("TransactWriteItems", &self.table))
            .await;
        let Err(error) = result else { return Ok(()) };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            error.as_service_error()
        else {
            return Err(Refused::Other(apply_error(&error)));
        };
        let reasons: Vec<Reason> = cancel
            .cancellation_reasons()
            .iter()
            .map(Reason::of)
            .collect();
        let applied: Vec<EventId> = event_ids
            .iter()
            .zip(&reasons)
            .filter(|(_, reason)| **reason == Reason::ConditionFailed)
            .map(|(id, _)| *id)
            .collect();
        let message = cancel.message().unwrap_or_default().to_owned();
        let fenced = reasons
            .iter()
            .skip(event_ids.len())
            .any(|reason| *reason == Reason::ConditionFailed);
        Err(if !applied.is_empty() {
            Refused::AlreadyApplied(applied)
        } else if fenced {
            Refused::Other(ApplyError::CoveredByRebuild)
        } else if reasons.contains(&Reason::Conflict) {
            Refused::Other(ApplyError::Conflict)
        } else if reasons.contains(&Reason::Throttled) {
            Refused::Other(ApplyError::Unavailable(message))
        } else {
            Refused::Other(ApplyError::Failed(format!(
                "transaction cancelled: {message}"
            )))
        })
    }
}

#[async_trait]
impl StatsStore for DynamoDbStore {
    async fn apply_batch(
        &self,
        consumer: &str,
        event_ids: &[EventId],
        deltas: &[StatsDelta],
    ) -> Result<(), ApplyError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        self.apply(consumer, event_ids, deltas)
            .await
            .map_err(|refused| match refused {
                Refused::AlreadyApplied(ids) => ApplyError::AlreadyApplied(ids),
                Refused::Other(error) => error,
            })
    }

    async fn apply_once(
        &self,
        consumer: &str,
        event_id: EventId,
        delta: &StatsDelta,
    ) -> Result<ApplyOutcome, ApplyError> {
        match self
            .apply(consumer, &[event_id], std::slice::from_ref(delta))
            .await
        {
            Ok(()) => Ok(ApplyOutcome::Applied),
            Err(Refused::AlreadyApplied(_)) => Ok(ApplyOutcome::Duplicate),
            // Counted by a rebuild: only the marker is written, so a redelivery stays a duplicate.
            Err(Refused::Other(ApplyError::CoveredByRebuild)) => {
                self.apply(consumer, &[event_id], &[])
                    .await
                    .or_else(|refused| match refused {
                        Refused::AlreadyApplied(_) => Ok(()),
                        Refused::Other(error) => Err(error),
                    })?;
                Ok(ApplyOutcome::Duplicate)
            }
            Err(Refused::Other(error)) => Err(error),
        }
    }

    async fn get(&self, user_id: &UserId, period: PeriodKey) -> Result<UserStats, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::stats_key(user_id, period, self.stats_version)))
            .send()
            .instrument(aws_call::dynamodb("GetItem", &self.table))
            .await
            .map_err(|e| store_error(&e))?;
        Ok(output
            .item
            .map(|item| stats_from_item(period, &item))
            .unwrap_or_else(|| UserStats::empty(period)))
    }
}

fn number(item: &Item, attribute: &str) -> i64 {
    match item.get(attribute) {
        Some(AttributeValue::N(raw)) => raw.parse().unwrap_or(0),
        _ => 0,
    }
}

fn totals(item: &Item, prefix: &str) -> Totals {
    let [activities, minutes, distance_m, calories] =
        FIELDS.map(|field| number(item, &format!("{prefix}{field}")));
    Totals {
        activities,
        minutes,
        distance_m,
        calories,
    }
}

fn stats_from_item(period: PeriodKey, item: &Item) -> UserStats {
    let by_type = ActivityType::ALL
        .into_iter()
        .map(|t| (t, totals(item, &format!("{}_", t.as_str()))))
        .filter(|(_, totals)| !totals.is_zero())
        .collect();
    UserStats {
        period,
        totals: totals(item, ""),
        by_type,
    }
}

/// The `ADD`s of one correction: the totals and each type's totals, as the consumer names them.
fn correction_adds(correction: &StatsCorrection) -> Vec<(String, i64)> {
    let mut adds = Vec::new();
    for (field, value) in FIELDS.iter().zip(values(&correction.totals)) {
        adds.push(((*field).to_owned(), value));
    }
    for (activity_type, totals) in &correction.by_type {
        for (field, value) in FIELDS.iter().zip(values(totals)) {
            adds.push((format!("{}_{field}", activity_type.as_str()), value));
        }
    }
    adds.retain(|(_, value)| *value != 0);
    adds
}

/// Items one transaction may hold.
const TRANSACTION_ITEMS: usize = 100;

impl DynamoDbStore {
    /// One correction's update; on the all-time item also the fence, the revision bump and the
    /// condition: the revision read before, and a stored fence not past the new one.
    fn correction_update(
        &self,
        user_id: &UserId,
        period: PeriodKey,
        adds: &[(String, i64)],
        all_time: Option<(u64, OffsetDateTime)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = HashMap::from([
            ("#entity".to_owned(), items::attributes::ENTITY.to_owned()),
            ("#user".to_owned(), "user_id".to_owned()),
            ("#period".to_owned(), "period".to_owned()),
        ]);
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":entity".to_owned(), s("stats")),
            (":user".to_owned(), s(user_id.as_str())),
            (":period".to_owned(), s(period.to_string())),
        ]);
        let mut sets = vec!["#entity = :entity, #user = :user, #period = :period".to_owned()];
        let mut add_terms = Vec::new();
        for (index, (attribute, value)) in adds.iter().enumerate() {
            names.insert(format!("#a{index}"), attribute.clone());
            values.insert(format!(":a{index}"), n(*value));
            add_terms.push(format!("#a{index} :a{index}"));
        }
        let mut condition = None;
        if let Some((expected, fence)) = all_time {
            names.insert("#rev".into(), REVISION.into());
            names.insert("#fence".into(), FENCE.into());
            values.insert(":one".into(), n(1));
            values.insert(":fence".into(), n(nanos(fence)));
            sets.push("#fence = :fence".into());
            add_terms.push("#rev :one".into());
            let revision = if expected == 0 {
                "attribute_not_exists(#rev)".to_owned()
            } else {
                values.insert(":expected".into(), n(expected));
                "#rev = :expected".to_owned()
            };
            // The fence only moves forward: two rebuilds on clocks that differ must not lower
            // it and let events the first one counted be added again.
            condition = Some(format!(
                "({revision}) AND (attribute_not_exists(#fence) OR #fence <= :fence)"
            ));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !add_terms.is_empty() {
            expression.push_str(&format!(" ADD {}", add_terms.join(", ")));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::stats_key(user_id, period, self.stats_version)))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::Failed(format!("invalid request: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl StatsProjectionStore for DynamoDbStore {
    /// The all-time item (revision, fence) is read first, on its own, with a consistent
    /// `GetItem`; only then are the period items queried. A consistent `Query` is read-committed,
    /// not a snapshot, and `STATS#all` sorts after every `STATS#<date>` key: read in the same
    /// `Query`, it could show a revision bumped by a consumer transaction whose week and month
    /// items the `Query` had read from before it, and the correction would then add that event a
    /// second time. Read first, any write after it moves the revision and the conditional
    /// correction is refused. The `Query`'s later copy of `STATS#all` is skipped.
    async fn projection(&self, user_id: &UserId) -> Result<StatsProjection, StoreError> {
        let mut projection = StatsProjection::default();
        let all_time = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::stats_key(
                user_id,
                PeriodKey::AllTime,
                self.stats_version,
            )))
            .consistent_read(true)
            .send()
            .instrument(aws_call::dynamodb("GetItem", &self.table))
            .await
            .map_err(|e| store_error(&e))?;
        if let Some(item) = all_time.item {
            projection.revision = u64::try_from(number(&item, REVISION)).unwrap_or(0);
            projection.fence = match item.get(FENCE) {
                Some(AttributeValue::N(raw)) => raw
                    .parse::<i128>()
                    .ok()
                    .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()),
                _ => None,
            };
            projection.periods.insert(
                PeriodKey::AllTime,
                stats_from_item(PeriodKey::AllTime, &item),
            );
        }
        let prefix = items::stats_prefix(self.stats_version);
        for item in self.user_items(user_id, &prefix).await? {
            let Some(AttributeValue::S(sk)) = item.get(items::attributes::SK) else {
                continue;
            };
            let Some(period) = sk
                .strip_prefix(prefix.as_str())
                .and_then(|raw| PeriodKey::parse(raw).ok())
            else {
                continue;
            };
            if period == PeriodKey::AllTime {
                // Read above, before the periods: this later copy must not replace it.
                continue;
            }
            projection
                .periods
                .insert(period, stats_from_item(period, &item));
        }
        Ok(projection)
    }

    /// The all-time item (fence, revision bump, the condition) and up to 99 other periods are one
    /// transaction: a user whose corrections fit is corrected atomically. A user with more
    /// periods to correct (years of weekly and monthly items) gets the rest in further
    /// transactions after the conditional one; those are `ADD`s, which commute with the
    /// consumers' own, and carry a request token so that the SDK's retries apply them once.
    async fn correct(
        &self,
        user_id: &UserId,
        expected_revision: u64,
        fence: OffsetDateTime,
        corrections: &[StatsCorrection],
    ) -> Result<CorrectionOutcome, StoreError> {
        let mut items = vec![
            self.correction_update(
                user_id,
                PeriodKey::AllTime,
                &corrections
                    .iter()
                    .find(|c| c.period == PeriodKey::AllTime)
                    .map(correction_adds)
                    .unwrap_or_default(),
                Some((expected_revision, fence)),
            )?,
        ];
        for correction in corrections
            .iter()
            .filter(|c| c.period != PeriodKey::AllTime)
        {
            items.push(self.correction_update(
                user_id,
                correction.period,
                &correction_adds(correction),
                None,
            )?);
        }
        let token_base = format!("{}-{}", expected_revision, nanos(fence));
        for (index, chunk) in items.chunks(TRANSACTION_ITEMS).enumerate() {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(chunk.to_vec()))
                .client_request_token(request_token(user_id, &token_base, index))
                .send()
                .instrument(aws_call::dynamodb("TransactWriteItems", &self.table))
                .await;
            let Err(error) = result else { continue };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                error.as_service_error()
            else {
                return Err(store_error(&error));
            };
            let reasons: Vec<Reason> = cancel
                .cancellation_reasons()
                .iter()
                .map(Reason::of)
                .collect();
            if index == 0 && reasons.first() == Some(&Reason::ConditionFailed) {
                return Ok(CorrectionOutcome::RevisionMoved);
            }
            return Err(unexplained_cancellation(
                &reasons,
                cancel.message().unwrap_or_default(),
            ));
        }
        Ok(CorrectionOutcome::Corrected)
    }
}

/// A `ClientRequestToken` (at most 36 characters) unique to one part of one correction.
fn request_token(user_id: &UserId, base: &str, part: usize) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{user_id}|{base}|{part}").as_bytes());
    digest
        .iter()
        .take(18)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
