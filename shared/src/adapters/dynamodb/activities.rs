//! `ActivityStore` and `Outbox` on the table. Every change is one `TransactWriteItems`: the
//! activity (conditioned on the rule the use case relies on) plus its outbox record, plus the
//! idempotency record on a create with a key.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use time::OffsetDateTime;

use tracing::Instrument;

use super::items::{self, Item, attributes::*, indexes::GSI2, n, s};
use super::{DynamoDbStore, Reason, store_error, unexplained_cancellation};
use crate::adapters::aws_call;
use crate::application::{
    ActivityPage, ActivityStore, IdempotencyKey, IdempotencyRecord, LIST_READ_BUDGET, ListQuery,
    Outbox, OutboxRecord, PagePosition, StoreError,
};
use crate::domain::{Activity, ActivityId, EventId, UserId, Version};

/// With a type filter, a Query page reads at least this many items, so that a rare type does not
/// cost one round trip per item.
const FILTERED_PAGE: usize = 50;

/// Where each item sits in a change's transaction, to read `CancellationReasons` by position.
const ACTIVITY_ITEM: usize = 0;
const OUTBOX_ITEM: usize = 1;
const IDEMPOTENCY_ITEM: usize = 2;

fn build_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("invalid request: {error}"))
}

fn to_i32(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Why a change's transaction was cancelled, per item, with the old activity when the service
/// returned it (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).
struct Cancelled {
    reasons: Vec<Reason>,
    /// Whether the activity existed when its condition failed.
    activity_existed: bool,
    message: String,
}

impl Cancelled {
    /// Whether this change's own outbox record is already in the table. Its event id was made for
    /// this one call, so only an earlier attempt of the same call can have written it: the
    /// transaction committed, and only its answer was lost (an attempt that timed out, a 500 after
    /// the commit) before the SDK tried again. That is a success, not the conflict, "already
    /// exists" or "not found" the other items' conditions now report.
    fn committed_before(&self) -> bool {
        self.reasons.get(OUTBOX_ITEM) == Some(&Reason::ConditionFailed)
    }
}

fn cancelled(
    error: &SdkError<
        TransactWriteItemsError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Option<Cancelled> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
        error.as_service_error()
    else {
        return None;
    };
    let raw = cancel.cancellation_reasons();
    Some(Cancelled {
        reasons: raw.iter().map(Reason::of).collect(),
        activity_existed: raw
            .get(ACTIVITY_ITEM)
            .and_then(|r| r.item())
            .is_some_and(|item| !item.is_empty()),
        message: cancel.message().unwrap_or_default().to_owned(),
    })
}

impl DynamoDbStore {
    fn put(&self, item: Item, condition: &str) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(build_error)
    }

    /// The outbox record of a change: a new item, never an overwrite (event ids are unique).
    pub(super) fn outbox_put(
        &self,
        record: &OutboxRecord,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = self.put(items::outbox_item(record)?, "attribute_not_exists(PK)")?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs an update or delete transaction whose first item is conditioned on the stored version.
    async fn write_versioned(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .instrument(aws_call::dynamodb("TransactWriteItems", &self.table))
            .await;
        let Err(error) = result else { return Ok(()) };
        match cancelled(&error) {
            Some(c) if c.committed_before() => {
                tracing::info!("transaction had committed on an earlier attempt; answered as done");
                Ok(())
            }
            Some(c) if c.reasons.get(ACTIVITY_ITEM) == Some(&Reason::ConditionFailed) => {
                if c.activity_existed {
                    Err(StoreError::VersionConflict)
                } else {
                    Err(StoreError::NotFound)
                }
            }
            Some(c) => Err(unexplained_cancellation(&c.reasons, &c.message)),
            None => Err(store_error(&error)),
        }
    }

    fn version_condition_values(
        expected: Version,
    ) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        HashMap::from([(":expected".to_owned(), n(expected.get()))])
    }
}

/// The stored version must still be the one the change was computed from.
const VERSION_CONDITION: &str = "attribute_exists(PK) AND #version = :expected";

#[async_trait]
impl ActivityStore for DynamoDbStore {
    async fn create(
        &self,
        activity: &Activity,
        outbox: &OutboxRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let activity_put = self.put(items::activity_item(activity)?, "attribute_not_exists(PK)")?;
        let mut transaction = vec![
            TransactWriteItem::builder().put(activity_put).build(),
            self.outbox_put(outbox)?,
        ];
        if let Some(record) = idempotency {
            // An expired record no longer holds its key, even before TTL has deleted it.
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(items::idempotency_item(record)?))
                .condition_expression("attribute_not_exists(PK) OR #expires_at <= :now")
                .expression_attribute_names("#expires_at", EXPIRES_AT)
                .expression_attribute_values(":now", n(record.created_at.unix_timestamp()))
                .build()
                .map_err(build_error)?;
            transaction.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction))
            .send()
            .instrument(aws_call::dynamodb("TransactWriteItems", &self.table))
            .await;
        let Err(error) = result else { return Ok(()) };
        match cancelled(&error) {
            Some(c) if c.committed_before() => {
                tracing::info!("transaction had committed on an earlier attempt; answered as done");
                Ok(())
            }
            Some(c) if c.reasons.get(IDEMPOTENCY_ITEM) == Some(&Reason::ConditionFailed) => {
                Err(StoreError::IdempotencyKeyTaken)
            }
            Some(c) if c.reasons.get(ACTIVITY_ITEM) == Some(&Reason::ConditionFailed) => {
                Err(StoreError::AlreadyExists)
            }
            Some(c) => Err(unexplained_cancellation(&c.reasons, &c.message)),
            None => Err(store_error(&error)),
        }
    }

    async fn get(&self, user_id: &UserId, id: ActivityId) -> Result<Option<Activity>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::activity_key(user_id, id)))
            // A client reading its own write (create then GET, GET before a conditional update)
            // must see it.
            .consistent_read(true)
            .send()
            .instrument(aws_call::dynamodb("GetItem", &self.table))
            .await
            .map_err(|e| store_error(&e))?;
        output.item.map(items::activity_from_item).transpose()
    }

    async fn list(&self, user_id: &UserId, query: &ListQuery) -> Result<ActivityPage, StoreError> {
        let mut start = match &query.after {
            Some(PagePosition(position)) => {
                Some(items::start_key(user_id, position).ok_or(StoreError::InvalidPosition)?)
            }
            None => None,
        };
        let mut key_condition = "GSI1PK = :user".to_owned();
        let mut values = HashMap::from([(":user".to_owned(), s(items::user_pk(user_id)))]);
        match (query.from, query.to) {
            (Some(from), Some(to)) => {
                key_condition.push_str(" AND GSI1SK BETWEEN :from AND :to");
                values.insert(":from".into(), s(items::date_lower_bound(from)));
                values.insert(":to".into(), s(items::date_upper_bound(to)));
            }
            (Some(from), None) => {
                key_condition.push_str(" AND GSI1SK >= :from");
                values.insert(":from".into(), s(items::date_lower_bound(from)));
            }
            (None, Some(to)) => {
                key_condition.push_str(" AND GSI1SK <= :to");
                values.insert(":to".into(), s(items::date_upper_bound(to)));
            }
            (None, None) => {}
        }
        let mut names = HashMap::new();
        let filter = query.activity_type.map(|activity_type| {
            names.insert("#type".to_owned(), "type".to_owned());
            values.insert(":type".into(), s(activity_type.as_str()));
            "#type = :type".to_owned()
        });
        // One item more than the page, to know whether a next page exists without handing out
        // a cursor to an empty page.
        let wanted = query.limit + 1;
        let mut found: Vec<Item> = Vec::new();
        // Items read so far, matching the filter or not (`ScannedCount`), and where the read
        // stopped when the budget ran out before the page filled.
        let mut read = 0usize;
        let mut stopped_at: Option<Item> = None;
        loop {
            let remaining = wanted - found.len();
            let page_size = if filter.is_some() {
                remaining.max(FILTERED_PAGE)
            } else {
                remaining
            };
            // `Limit` counts items read before the filter, so this bounds the request's reads.
            let page_size = page_size.min(LIST_READ_BUDGET - read);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(super::indexes::GSI1)
                .key_condition_expression(&key_condition)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit(to_i32(page_size))
                .set_exclusive_start_key(start.take())
                .send()
                .instrument(aws_call::dynamodb("Query", &self.table))
                .await
                .map_err(|e| store_error(&e))?;
            read += usize::try_from(output.scanned_count).unwrap_or(page_size);
            found.extend(output.items.unwrap_or_default());
            // A filter can leave a page short or empty: keep reading until the page is full, the
            // partition is exhausted, or the read budget is spent.
            match output.last_evaluated_key {
                Some(key) if found.len() < wanted && read >= LIST_READ_BUDGET => {
                    stopped_at = Some(key);
                    break;
                }
                Some(key) if found.len() < wanted => start = Some(key),
                _ => break,
            }
        }
        let more = found.len() > query.limit;
        found.truncate(query.limit);
        let next = match (found.last(), stopped_at) {
            (Some(last), _) if more => Some(PagePosition(items::position_of(last))),
            // A short (or empty) page: the client continues after the last item read. The
            // key holds the table and index keys, exactly what a position holds.
            (_, Some(key)) => Some(PagePosition(items::position_of(&key))),
            _ => None,
        };
        let items = found
            .into_iter()
            .map(|item| items::activity_from_item(item).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ActivityPage { items, next })
    }

    async fn update(
        &self,
        activity: &Activity,
        expected: Version,
        outbox: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(items::activity_item(activity)?))
            .condition_expression(VERSION_CONDITION)
            .expression_attribute_names("#version", "version")
            .set_expression_attribute_values(Some(Self::version_condition_values(expected)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        self.write_versioned(vec![
            TransactWriteItem::builder().put(put).build(),
            self.outbox_put(outbox)?,
        ])
        .await
    }

    async fn delete(&self, activity: &Activity, outbox: &OutboxRecord) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(items::activity_key(&activity.user_id, activity.id)))
            .condition_expression(VERSION_CONDITION)
            .expression_attribute_names("#version", "version")
            .set_expression_attribute_values(Some(Self::version_condition_values(activity.version)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        self.write_versioned(vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.outbox_put(outbox)?,
        ])
        .await
    }

    async fn find_idempotency(
        &self,
        user_id: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::idempotency_key(user_id, key)))
            .consistent_read(true)
            .send()
            .instrument(aws_call::dynamodb("GetItem", &self.table))
            .await
            .map_err(|e| store_error(&e))?;
        output.item.map(items::idempotency_from_item).transpose()
    }
}

#[async_trait]
impl Outbox for DynamoDbStore {
    async fn pending(
        &self,
        older_than: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.pending_from(older_than, None, limit).await
    }

    async fn pending_after(
        &self,
        older_than: OffsetDateTime,
        after: &OutboxRecord,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.pending_from(older_than, Some(items::outbox_sort_key(after)), limit)
            .await
    }

    /// One `DeleteItem` per record (the relay's IAM policy grants exactly that), concurrently.
    async fn acknowledge(&self, event_ids: &[EventId]) -> Result<(), StoreError> {
        let mut deletes = tokio::task::JoinSet::new();
        for event_id in event_ids {
            let request = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(items::outbox_key(*event_id)));
            let call = aws_call::dynamodb("DeleteItem", &self.table);
            deletes.spawn(
                async move { request.send().await.map_err(|e| store_error(&e)) }.instrument(call),
            );
        }
        let mut first_error = None;
        while let Some(joined) = deletes.join_next().await {
            let result = joined.map_err(|e| StoreError::Failed(format!("delete task: {e}")))?;
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl DynamoDbStore {
    /// The pending outbox records, oldest first, after the index position `after` (exclusive):
    /// every shard of GSI2 is read and the pages merged, so the order is the same as with one
    /// partition.
    ///
    /// The shards are read one after another, on one connection. The relay is a sweeper that
    /// runs once a minute, where a pass's latency does not matter and its connections do: read at
    /// once, the ten queries opened ten connections, ten TLS handshakes at every cold start and in
    /// every pass that finds its idle connections closed. One after another they open one, in the
    /// same wall time on the cold-start harness's loopback (docs/benchmarks.md, "Fifth session").
    async fn pending_from(
        &self,
        older_than: OffsetDateTime,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let before = items::sortable_time(older_than);
        if limit == 0 || after.as_ref().is_some_and(|after| *after >= before) {
            return Ok(Vec::new());
        }
        let mut records: Vec<(String, OutboxRecord)> = Vec::new();
        for shard in 0..items::OUTBOX_SHARDS {
            let partition = items::outbox_partition(shard);
            records.extend(
                self.pending_in_shard(&partition, after.as_deref(), &before, limit)
                    .await?,
            );
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.truncate(limit);
        Ok(records.into_iter().map(|(_, record)| record).collect())
    }

    /// Up to `limit` records of one outbox shard (one GSI2 partition) with
    /// `after < GSI2SK < before`, oldest first, with their sort keys. `BETWEEN` is inclusive, so
    /// the record at `after` itself is skipped; none sits at `before` (a sort key is a time
    /// followed by `#<event_id>`, longer than `before`).
    async fn pending_in_shard(
        &self,
        partition: &str,
        after: Option<&str>,
        before: &str,
        limit: usize,
    ) -> Result<Vec<(String, OutboxRecord)>, StoreError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        while records.len() < limit {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI2)
                .expression_attribute_values(":outbox", s(partition))
                .expression_attribute_values(":before", s(before))
                .scan_index_forward(true)
                .limit(to_i32(limit - records.len() + usize::from(after.is_some())))
                .set_exclusive_start_key(start.take());
            let query = match after {
                Some(after) => query
                    .key_condition_expression(
                        "GSI2PK = :outbox AND GSI2SK BETWEEN :after AND :before",
                    )
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("GSI2PK = :outbox AND GSI2SK < :before"),
            };
            let output = query
                .send()
                .instrument(aws_call::dynamodb("Query", &self.table))
                .await
                .map_err(|e| store_error(&e))?;
            for item in output.items.unwrap_or_default() {
                let record = items::outbox_from_item(item)?;
                let key = items::outbox_sort_key(&record);
                if after != Some(key.as_str()) {
                    records.push((key, record));
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        records.truncate(limit);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    #[test]
    fn a_version_beyond_i64_is_written_as_it_is_not_wrapped() {
        let values = DynamoDbStore::version_condition_values(Version::new(u64::MAX));
        assert_eq!(
            values[":expected"],
            AttributeValue::N("18446744073709551615".into())
        );
    }
}
