//! The table's item types: their keys and how domain values become attributes and back. Every
//! key format lives here, so `docs/data-model.md` has one place to agree with.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::application::{IdempotencyKey, IdempotencyRecord, OutboxRecord, StoreError};
use crate::domain::{Activity, ActivityId, EventId, PeriodKey, ProjectionVersion, UserId};

pub type Item = HashMap<String, AttributeValue>;

/// Attribute names the table's keys, indexes and TTL use (the names in `template.yaml`).
pub mod attributes {
    pub const PK: &str = "PK";
    pub const SK: &str = "SK";
    pub const GSI1PK: &str = "GSI1PK";
    pub const GSI1SK: &str = "GSI1SK";
    pub const GSI2PK: &str = "GSI2PK";
    pub const GSI2SK: &str = "GSI2SK";
    /// The TTL attribute: epoch seconds after which DynamoDB deletes the item.
    pub const EXPIRES_AT: &str = "expires_at";
    /// Which item type an item is, for someone reading the table by hand.
    pub const ENTITY: &str = "entity";
}

/// The table's global secondary indexes.
pub mod indexes {
    /// A user's activities by `activity_date`, then id.
    pub const GSI1: &str = "GSI1";
    /// Pending outbox records by `occurred_at` (sparse: only outbox items carry its keys), in
    /// [`super::OUTBOX_SHARDS`] partitions.
    pub const GSI2: &str = "GSI2";
}

use attributes::*;

/// How long a processed-event marker is kept: longer than any way an event can come back — a
/// replay from the bus archive (at most 30 days, `EventArchiveRetentionDays`) whose message then
/// waits in a queue and its dead-letter queue (at most 14 days, and a fallback redrive sends it
/// anew) — so no redelivery can outlive the marker that makes it a duplicate. The template
/// consistency test checks the template's bounds against this.
pub const MARKER_RETENTION: Duration = Duration::days(45);

/// How many GSI2 partitions the outbox is spread over. Every change writes the outbox index twice
/// (the record's put, then its delete once published), and one index partition takes at most
/// 1,000 writes per second: one partition capped the whole system near 500 changes per second,
/// and a throttled index throttles the table's writes too. Ten partitions lift that to 5,000
/// changes per second, which is also what a table's default on-demand quota (40,000 write units
/// per second) allows at 8 write units per change; the arithmetic is in `docs/data-model.md`.
/// The relay reads every partition. Lowering it would strand the records of the partitions no
/// longer read, so raise it only (the relay then reads the new ones too).
pub const OUTBOX_SHARDS: u32 = 10;

const OUTBOX_PARTITION_PREFIX: &str = "OUTBOX#";
const OUTBOX_SK: &str = "OUTBOX";
const MARKER_SK: &str = "PROCESSED";
const ACTIVITY_PREFIX: &str = "ACTIVITY#";

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A DynamoDB number. Takes any integer that widens losslessly to `i128` (DynamoDB numbers hold
/// 38 digits), so no caller needs a cast that could wrap, e.g. a `u64` version above `i64::MAX`.
pub(super) fn n(value: impl Into<i128>) -> AttributeValue {
    AttributeValue::N(value.into().to_string())
}

pub(super) fn user_pk(user_id: &UserId) -> String {
    format!("USER#{user_id}")
}

pub(super) fn activity_key(user_id: &UserId, id: ActivityId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(user_pk(user_id))),
        (SK.to_owned(), s(format!("{ACTIVITY_PREFIX}{id}"))),
    ])
}

/// The sort key of a user's activities in GSI1: `<activity_date>#<id>`. Dates are ISO 8601 and ids
/// ULIDs, so the string order is date order, then creation order.
fn activity_date_key(activity: &Activity) -> String {
    format!("{}#{}", activity.activity_date, activity.id)
}

pub(super) fn activity_item(activity: &Activity) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(activity)
        .map_err(|e| StoreError::Failed(format!("activity to item: {e}")))?;
    item.extend(activity_key(&activity.user_id, activity.id));
    item.insert(GSI1PK.to_owned(), s(user_pk(&activity.user_id)));
    item.insert(GSI1SK.to_owned(), s(activity_date_key(activity)));
    item.insert(ENTITY.to_owned(), s("activity"));
    Ok(item)
}

pub(super) fn activity_from_item(item: Item) -> Result<Activity, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Failed(format!("stored activity is unreadable: {e}")))
}

/// A listing position: the four key attributes of the last item a page returned (the shape of a
/// GSI1 `LastEvaluatedKey`), checked to belong to the caller's partition before it is used.
pub(super) fn position_of(item: &Item) -> serde_json::Value {
    let mut position = serde_json::Map::new();
    for name in [PK, SK, GSI1PK, GSI1SK] {
        if let Some(AttributeValue::S(value)) = item.get(name) {
            position.insert(name.to_owned(), serde_json::Value::String(value.clone()));
        }
    }
    serde_json::Value::Object(position)
}

/// The `ExclusiveStartKey` for a position, or `None` when the position is not one of this user's
/// activity keys (a forged or foreign position must not read another partition).
pub(super) fn start_key(user_id: &UserId, position: &serde_json::Value) -> Option<Item> {
    let object = position.as_object()?;
    if object.len() != 4 {
        return None;
    }
    let text = |name: &str| object.get(name).and_then(serde_json::Value::as_str);
    let (pk, sk, gsi1pk, gsi1sk) = (text(PK)?, text(SK)?, text(GSI1PK)?, text(GSI1SK)?);
    let partition = user_pk(user_id);
    let id = sk.strip_prefix(ACTIVITY_PREFIX)?;
    ActivityId::parse(id).ok()?;
    let (date, date_id) = gsi1sk.split_once('#')?;
    let valid = pk == partition && gsi1pk == partition && date_id == id && date.len() == 10;
    valid.then(|| {
        HashMap::from([
            (PK.to_owned(), s(pk)),
            (SK.to_owned(), s(sk)),
            (GSI1PK.to_owned(), s(gsi1pk)),
            (GSI1SK.to_owned(), s(gsi1sk)),
        ])
    })
}

/// GSI1 sort-key bounds for an `activity_date` range. `$` sorts right after `#`, so
/// `<to>$` is above every `<to>#<id>`.
pub(super) fn date_lower_bound(date: impl std::fmt::Display) -> String {
    format!("{date}#")
}

pub(super) fn date_upper_bound(date: impl std::fmt::Display) -> String {
    format!("{date}$")
}

/// A UTC timestamp in one fixed width, so string order is time order (RFC 3339 with a variable
/// number of fraction digits is not).
const SORTABLE_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

pub(super) fn sortable_time(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(SORTABLE_TIME)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

pub(super) fn outbox_key(event_id: EventId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(format!("OUTBOX#{event_id}"))),
        (SK.to_owned(), s(OUTBOX_SK)),
    ])
}

pub(super) fn outbox_item(record: &OutboxRecord) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(record)
        .map_err(|e| StoreError::Failed(format!("outbox record to item: {e}")))?;
    item.extend(outbox_index_key(record));
    item.insert(ENTITY.to_owned(), s("outbox"));
    Ok(item)
}

/// The GSI2 partition of outbox shard `shard`: `OUTBOX#0` … `OUTBOX#9`.
pub(super) fn outbox_partition(shard: u32) -> String {
    format!("{OUTBOX_PARTITION_PREFIX}{shard}")
}

/// The shard an event's outbox record lives in: a hash of its id (FNV-1a), so writers spread
/// evenly without coordinating and the same record always has the same index key.
pub(super) fn outbox_shard(event_id: EventId) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in event_id.to_string().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % OUTBOX_SHARDS
}

/// An outbox record's position in the pending-records index: `<occurred_at>#<event_id>`, the
/// same order in every shard, so pages of several shards merge into one oldest-first list.
pub(super) fn outbox_sort_key(record: &OutboxRecord) -> String {
    format!("{}#{}", sortable_time(record.occurred_at), record.event_id)
}

/// An outbox record's table and GSI2 keys.
fn outbox_index_key(record: &OutboxRecord) -> Item {
    let mut key = outbox_key(record.event_id);
    key.insert(
        GSI2PK.to_owned(),
        s(outbox_partition(outbox_shard(record.event_id))),
    );
    key.insert(GSI2SK.to_owned(), s(outbox_sort_key(record)));
    key
}

pub(super) fn outbox_from_item(item: Item) -> Result<OutboxRecord, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Failed(format!("stored outbox record is unreadable: {e}")))
}

pub(super) fn idempotency_key(user_id: &UserId, key: &IdempotencyKey) -> Item {
    HashMap::from([
        (PK.to_owned(), s(user_pk(user_id))),
        (SK.to_owned(), s(format!("IDEMPOTENCY#{}", key.as_str()))),
    ])
}

/// The stored shape of an idempotency record: `expires_at` in epoch seconds, as TTL requires.
#[derive(Serialize, Deserialize)]
struct IdempotencyItem {
    user_id: UserId,
    key: IdempotencyKey,
    request_fingerprint: String,
    activity: Activity,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::timestamp")]
    expires_at: OffsetDateTime,
}

pub(super) fn idempotency_item(record: &IdempotencyRecord) -> Result<Item, StoreError> {
    let stored = IdempotencyItem {
        user_id: record.user_id.clone(),
        key: record.key.clone(),
        request_fingerprint: record.request_fingerprint.clone(),
        activity: record.activity.clone(),
        created_at: record.created_at,
        expires_at: record.expires_at,
    };
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(&stored)
        .map_err(|e| StoreError::Failed(format!("idempotency record to item: {e}")))?;
    item.extend(idempotency_key(&record.user_id, &record.key));
    item.insert(ENTITY.to_owned(), s("idempotency"));
    Ok(item)
}

pub(super) fn idempotency_from_item(item: Item) -> Result<IdempotencyRecord, StoreError> {
    let stored: IdempotencyItem = serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Failed(format!("stored idempotency record is unreadable: {e}")))?;
    Ok(IdempotencyRecord {
        user_id: stored.user_id,
        key: stored.key,
        request_fingerprint: stored.request_fingerprint,
        activity: stored.activity,
        created_at: stored.created_at,
        expires_at: stored.expires_at,
    })
}

/// The sort-key prefix of a user's statistics items in one projection version: `STATS#` for v1
/// (the keys from before versions existed, unchanged), `STATS@v<N>#` from v2 on. Two prefixes
/// that are not prefixes of each other, so a version's `begins_with` query (a rebuild's read, a
/// retirement's delete) never meets another version's items.
pub(super) fn stats_prefix(version: ProjectionVersion) -> String {
    if version.is_first() {
        "STATS#".to_owned()
    } else {
        format!("STATS@{version}#")
    }
}

pub(super) fn stats_key(user_id: &UserId, period: PeriodKey, version: ProjectionVersion) -> Item {
    HashMap::from([
        (PK.to_owned(), s(user_pk(user_id))),
        (
            SK.to_owned(),
            s(format!("{}{period}", stats_prefix(version))),
        ),
    ])
}

/// The name a stats consumer's processed-event markers are kept under in one projection version:
/// the consumer's own name for v1 (unchanged), `<consumer>@v<N>` from v2 on, so the consumer of
/// v2 applies every event once to v2 even though v1's consumer already marked it.
pub(super) fn stats_marker_consumer(consumer: &str, version: ProjectionVersion) -> String {
    if version.is_first() {
        consumer.to_owned()
    } else {
        format!("{consumer}@{version}")
    }
}

/// The `Put` that records `event_id` as processed by `consumer`, refused when it was before: the
/// first item of every exactly-once write.
pub(super) fn marker_put(
    table: &str,
    consumer: &str,
    event_id: EventId,
    now: OffsetDateTime,
) -> Result<aws_sdk_dynamodb::types::Put, aws_sdk_dynamodb::error::BuildError> {
    aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(marker_item(consumer, event_id, now)))
        .condition_expression("attribute_not_exists(PK)")
        .build()
}

pub(super) fn marker_item(consumer: &str, event_id: EventId, now: OffsetDateTime) -> Item {
    HashMap::from([
        (PK.to_owned(), s(format!("PROCESSED#{consumer}#{event_id}"))),
        (SK.to_owned(), s(MARKER_SK)),
        (ENTITY.to_owned(), s("processed-event")),
        (
            EXPIRES_AT.to_owned(),
            n((now + MARKER_RETENTION).unix_timestamp()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort_key(item: &Item) -> &str {
        match item.get(SK) {
            Some(AttributeValue::S(sk)) => sk,
            other => panic!("no string sort key: {other:?}"),
        }
    }

    /// Version 1 keeps the keys from before versions existed, so nothing stored moves; v2 and on
    /// live under a prefix of their own that v1's prefix does not match (nor the other way).
    #[test]
    fn stats_keys_of_v1_are_unchanged_and_later_versions_have_their_own_prefix() {
        let user = UserId::parse("alice").unwrap();
        let v1 = ProjectionVersion::FIRST;
        let v2 = ProjectionVersion::new(2).unwrap();
        let week = PeriodKey::Week {
            year: 2026,
            week: 48,
        };
        let key = stats_key(&user, PeriodKey::AllTime, v1);
        assert_eq!(key.get(PK), Some(&s("USER#alice")));
        assert_eq!(sort_key(&key), "STATS#all");
        assert_eq!(sort_key(&stats_key(&user, week, v1)), "STATS#2026-W48");
        assert_eq!(sort_key(&stats_key(&user, week, v2)), "STATS@v2#2026-W48");
        assert_eq!(
            stats_key(&user, week, v2).get(PK),
            Some(&s("USER#alice")),
            "same partition: a user's versions are read and corrected alike"
        );
        assert!(!stats_prefix(v2).starts_with(&stats_prefix(v1)));
        assert!(!stats_prefix(v1).starts_with(&stats_prefix(v2)));
        assert_eq!(stats_marker_consumer("update-stats", v1), "update-stats");
        assert_eq!(stats_marker_consumer("update-stats", v2), "update-stats@v2");
    }
}
