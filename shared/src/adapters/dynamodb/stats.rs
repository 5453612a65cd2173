//! `StatsStore` on the table. A stats item holds one user's totals for one period as flat numbers
//! (`activities`, `minutes`, …, and `<type>_activities`, `<type>_minutes`, … per activity type), so
//! that `ADD` can change them without a prior read and without creating nested maps first. A
//! processed-event marker per (consumer, event id) makes every write apply once: the markers
//! and the `ADD`s are one transaction, and a marker that exists cancels it.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use tracing::Instrument;

use super::items::{self, Item, n, s};
use super::{DynamoDbStore, Reason, apply_error, store_error};
use crate::adapters::aws_call;
use crate::application::{ApplyError, ApplyOutcome, StatsStore, StoreError};
use crate::domain::{ActivityType, EventId, PeriodKey, StatsDelta, Totals, UserId, UserStats};

const FIELDS: [&str; 4] = ["activities", "minutes", "distance_m", "calories"];

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
fn stats_updates(table: &str, delta: &StatsDelta) -> Result<Vec<TransactWriteItem>, ApplyError> {
    let mut per_period: BTreeMap<PeriodKey, Vec<(String, i64)>> = BTreeMap::new();
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
        if adds.is_empty() {
            continue;
        }
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(items::stats_key(&delta.user_id, period)))
            .update_expression(format!(
                "SET #entity = :entity, #user = :user, #period = :period ADD {}",
                adds.join(", ")
            ))
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
        let mut transaction = Vec::new();
        for event_id in event_ids {
            transaction.push(
                self.marker_put(consumer, *event_id)
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
            transaction.extend(stats_updates(&self.table, delta).map_err(Refused::Other)?);
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
        Err(if !applied.is_empty() {
            Refused::AlreadyApplied(applied)
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
            Err(Refused::Other(error)) => Err(error),
        }
    }

    async fn get(&self, user_id: &UserId, period: PeriodKey) -> Result<UserStats, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::stats_key(user_id, period)))
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
