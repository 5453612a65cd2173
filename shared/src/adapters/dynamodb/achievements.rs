//! `AchievementStore` on the table: a user's progress (flat numbers under `ADD`, like the stats)
//! and one item per award, both in the user's partition under `ACHIEVEMENT#`, so one `Query`
//! reads where a user stands. Counting an event is marker + `ADD` in one transaction (once per
//! event); an award is the award item (never overwritten) + its outbox record in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use tracing::Instrument;

use super::items::{self, Item, attributes::*, n, s};
use super::{DynamoDbStore, Reason, store_error, unexplained_cancellation};
use crate::adapters::aws_call;
use crate::application::{
    AchievementProjectionStore, AchievementStanding, AchievementStore, ApplyOutcome, Award,
    AwardOutcome, CorrectionOutcome, OutboxRecord, ProgressProjection, StoreError,
};
use crate::domain::{EventId, Progress, UserId};

const PREFIX: &str = "ACHIEVEMENT#";
const PROGRESS_SK: &str = "ACHIEVEMENT#PROGRESS";
const AWARD_PREFIX: &str = "ACHIEVEMENT#AWARD#";
/// On the progress item: bumped by every progress write (consumer or rebuild).
const REVISION: &str = "projection_rev";

fn build_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("invalid request: {error}"))
}

fn key(user_id: &UserId, sk: String) -> Item {
    HashMap::from([
        (PK.to_owned(), s(items::user_pk(user_id))),
        (SK.to_owned(), s(sk)),
    ])
}

fn count(item: &Item, attribute: &str) -> u64 {
    match item.get(attribute) {
        Some(AttributeValue::N(raw)) => raw.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The first item whose condition failed in a cancelled transaction, or the error to report.
async fn run(
    store: &DynamoDbStore,
    transaction: Vec<TransactWriteItem>,
) -> Result<Option<usize>, StoreError> {
    let result = store
        .client
        .transact_write_items()
        .set_transact_items(Some(transaction))
        .send()
        .instrument(aws_call::dynamodb("TransactWriteItems", &store.table))
        .await;
    let Err(error) = result else { return Ok(None) };
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
    match reasons.iter().position(|r| *r == Reason::ConditionFailed) {
        Some(index) => Ok(Some(index)),
        None => Err(unexplained_cancellation(
            &reasons,
            cancel.message().unwrap_or_default(),
        )),
    }
}

#[async_trait]
impl AchievementStore for DynamoDbStore {
    async fn record_progress(
        &self,
        consumer: &str,
        event_id: EventId,
        user_id: &UserId,
        added: &Progress,
    ) -> Result<ApplyOutcome, StoreError> {
        let marker = items::marker_put(&self.table, consumer, event_id, self.clock.now())
            .map_err(build_error)?;
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let progress = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_id, PROGRESS_SK.to_owned())))
            .update_expression(
                "SET #entity = :entity ADD activities :activities, minutes :minutes, distance_m :distance, #rev :one",
            )
            .expression_attribute_names("#entity", ENTITY)
            .expression_attribute_names("#rev", REVISION)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":entity", s("achievement-progress"))
            .expression_attribute_values(":activities", n(signed(added.activities)))
            .expression_attribute_values(":minutes", n(signed(added.minutes)))
            .expression_attribute_values(":distance", n(signed(added.distance_m)))
            .build()
            .map_err(build_error)?;
        let transaction = vec![
            TransactWriteItem::builder().put(marker).build(),
            TransactWriteItem::builder().update(progress).build(),
        ];
        match run(self, transaction).await? {
            None => Ok(ApplyOutcome::Applied),
            Some(0) => Ok(ApplyOutcome::Duplicate),
            Some(_) => Err(StoreError::Failed(
                "progress update refused by a condition it does not have".into(),
            )),
        }
    }

    async fn standing(&self, user_id: &UserId) -> Result<AchievementStanding, StoreError> {
        let mut standing = AchievementStanding::default();
        for item in self.user_items(user_id, PREFIX).await? {
            match item.get(SK) {
                Some(AttributeValue::S(sk)) if sk == PROGRESS_SK => {
                    standing.progress = Progress {
                        activities: count(&item, "activities"),
                        minutes: count(&item, "minutes"),
                        distance_m: count(&item, "distance_m"),
                    };
                }
                Some(AttributeValue::S(sk)) if sk.starts_with(AWARD_PREFIX) => {
                    let award: Award =
                        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|e| {
                            StoreError::Failed(format!("stored award is unreadable: {e}"))
                        })?;
                    standing.awards.push(award);
                }
                _ => {}
            }
        }
        standing.awards.sort_by_key(|a| (a.awarded_at, a.milestone));
        Ok(standing)
    }

    async fn award(
        &self,
        award: &Award,
        outbox: &OutboxRecord,
    ) -> Result<AwardOutcome, StoreError> {
        let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(award)
            .map_err(|e| StoreError::Failed(format!("award to item: {e}")))?;
        item.extend(key(
            &award.user_id,
            format!("{AWARD_PREFIX}{}", award.milestone.id()),
        ));
        item.insert(ENTITY.to_owned(), s("award"));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(build_error)?;
        let transaction = vec![
            TransactWriteItem::builder().put(put).build(),
            self.outbox_put(outbox)?,
        ];
        match run(self, transaction).await? {
            None => Ok(AwardOutcome::Awarded),
            Some(0) => Ok(AwardOutcome::AlreadyAwarded),
            Some(_) => Err(StoreError::Failed(
                "event id of the award used twice".into(),
            )),
        }
    }
}

#[async_trait]
impl AchievementProjectionStore for DynamoDbStore {
    /// The revision is read before the standing: a write in between moves the revision past the
    /// one returned, so a correction based on this read is refused, never misapplied.
    async fn progress_projection(
        &self,
        user_id: &UserId,
    ) -> Result<ProgressProjection, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(user_id, PROGRESS_SK.to_owned())))
            .consistent_read(true)
            .send()
            .instrument(aws_call::dynamodb("GetItem", &self.table))
            .await
            .map_err(|e| store_error(&e))?;
        let revision = output
            .item
            .as_ref()
            .map(|item| count(item, REVISION))
            .unwrap_or(0);
        Ok(ProgressProjection {
            revision,
            standing: self.standing(user_id).await?,
        })
    }

    async fn set_progress(
        &self,
        user_id: &UserId,
        expected_revision: u64,
        progress: &Progress,
    ) -> Result<CorrectionOutcome, StoreError> {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let condition = if expected_revision == 0 {
            "attribute_not_exists(#rev)"
        } else {
            "#rev = :expected"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_id, PROGRESS_SK.to_owned())))
            .update_expression(
                "SET #entity = :entity, activities = :activities, minutes = :minutes, distance_m = :distance ADD #rev :one",
            )
            .condition_expression(condition)
            .expression_attribute_names("#entity", ENTITY)
            .expression_attribute_names("#rev", REVISION)
            .expression_attribute_values(":entity", s("achievement-progress"))
            .expression_attribute_values(":activities", n(signed(progress.activities)))
            .expression_attribute_values(":minutes", n(signed(progress.minutes)))
            .expression_attribute_values(":distance", n(signed(progress.distance_m)))
            .expression_attribute_values(":one", n(1));
        if expected_revision != 0 {
            request = request.expression_attribute_values(":expected", n(expected_revision));
        }
        match request
            .send()
            .instrument(aws_call::dynamodb("UpdateItem", &self.table))
            .await
        {
            Ok(_) => Ok(CorrectionOutcome::Corrected),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(CorrectionOutcome::RevisionMoved)
            }
            Err(error) => Err(store_error(&error)),
        }
    }
}
