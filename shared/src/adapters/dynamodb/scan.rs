//! `ActivitySource` on the table, for the operator's rebuilds: a parallel `Scan` (`Segment` of
//! `TotalSegments`) that reads only the keys of activity items and of all-time statistics items
//! (so a user whose activities are all gone but whose statistics are left is met too, and
//! recomputed to zero), and a strongly consistent
//! `Query` of one user's activities. DynamoDB puts all items of one partition key in one
//! segment, so every user is met in exactly one segment, and a page's `Limit` bounds what it
//! reads (and so the read units a page costs).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use tracing::Instrument;

use super::items::{self, Item, attributes::*, s};
use super::{DynamoDbStore, store_error};
use crate::adapters::aws_call;
use crate::application::{ActivitySource, ScanPosition, StoreError, UserPage};
use crate::domain::{Activity, UserId};

/// A scan position is the page's `LastEvaluatedKey`: the table's `PK` and `SK`.
fn position_of(key: &Item) -> Option<ScanPosition> {
    let text = |name: &str| match key.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    };
    Some(ScanPosition(
        serde_json::json!({ PK: text(PK)?, SK: text(SK)? }),
    ))
}

fn start_key(position: &ScanPosition) -> Result<Item, StoreError> {
    let text = |name: &str| {
        position
            .0
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(s)
            .ok_or(StoreError::InvalidPosition)
    };
    Ok(HashMap::from([
        (PK.to_owned(), text(PK)?),
        (SK.to_owned(), text(SK)?),
    ]))
}

#[async_trait]
impl ActivitySource for DynamoDbStore {
    async fn scan_users(
        &self,
        segment: u32,
        segments: u32,
        after: Option<&ScanPosition>,
        limit: usize,
    ) -> Result<UserPage, StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .segment(i32::try_from(segment).unwrap_or(0))
            .total_segments(i32::try_from(segments.max(1)).unwrap_or(1))
            .filter_expression("begins_with(SK, :activity) OR SK = :stats")
            .expression_attribute_values(":activity", s("ACTIVITY#"))
            .expression_attribute_values(":stats", s("STATS#all"))
            .projection_expression("PK")
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(after.map(start_key).transpose()?)
            .send()
            .instrument(aws_call::dynamodb("Scan", &self.table))
            .await
            .map_err(|e| store_error(&e))?;
        let mut users: Vec<UserId> = Vec::new();
        for item in output.items.unwrap_or_default() {
            let Some(AttributeValue::S(pk)) = item.get(PK) else {
                continue;
            };
            let Some(user) = pk
                .strip_prefix("USER#")
                .and_then(|raw| UserId::parse(raw).ok())
            else {
                continue;
            };
            if users.last() != Some(&user) {
                users.push(user);
            }
        }
        users.dedup();
        Ok(UserPage {
            users,
            items_read: usize::try_from(output.scanned_count).unwrap_or(0),
            next: output.last_evaluated_key.as_ref().and_then(position_of),
        })
    }

    async fn user_activities(&self, user_id: &UserId) -> Result<Vec<Activity>, StoreError> {
        self.user_items(user_id, "ACTIVITY#")
            .await?
            .into_iter()
            .map(items::activity_from_item)
            .collect()
    }
}
