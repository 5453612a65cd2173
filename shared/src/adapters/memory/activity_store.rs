//! Activities, outbox and idempotency records in one mutex: the in-memory equivalent of one
//! DynamoDB table, where a transaction is a critical section.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::application::{
    ActivityPage, ActivitySource, ActivityStore, IdempotencyKey, IdempotencyRecord,
    LIST_READ_BUDGET, ListQuery, Outbox, OutboxRecord, PagePosition, ScanPosition, StoreError,
    UserPage,
};
use crate::domain::{Activity, ActivityDate, ActivityId, EventId, UserId, Version};

/// One call to the store, for tests that count what an operation costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityStoreCall {
    Create,
    Get,
    List,
    Update,
    Delete,
    FindIdempotency,
    Pending,
    Acknowledge,
}

impl ActivityStoreCall {
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Delete | Self::Acknowledge
        )
    }
}

#[derive(Default)]
struct Tables {
    activities: BTreeMap<(UserId, ActivityId), Arc<Activity>>,
    outbox: BTreeMap<EventId, OutboxRecord>,
    idempotency: HashMap<(UserId, IdempotencyKey), IdempotencyRecord>,
    calls: Vec<ActivityStoreCall>,
    failing_writes: Option<StoreError>,
}

#[derive(Default)]
pub struct MemoryActivityStore {
    tables: Mutex<Tables>,
}

impl MemoryActivityStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts activities in place without events, as a fixture loaded at start-up.
    pub fn seed(&self, activities: impl IntoIterator<Item = Activity>) {
        let mut tables = self.lock();
        for activity in activities {
            tables
                .activities
                .insert((activity.user_id.clone(), activity.id), Arc::new(activity));
        }
    }

    /// Makes every write fail with `error` until called with `None`.
    pub fn fail_writes_with(&self, error: Option<StoreError>) {
        self.lock().failing_writes = error;
    }

    pub fn calls(&self) -> Vec<ActivityStoreCall> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Every activity of every user (for tests and the local stack's fixtures).
    pub fn all_activities(&self) -> Vec<Activity> {
        self.lock()
            .activities
            .values()
            .map(|activity| Activity::clone(activity))
            .collect()
    }

    /// Adds an outbox record written by another store of the same table (the achievement awards),
    /// which calls it inside its own critical section.
    pub(crate) fn put_outbox_record(&self, record: OutboxRecord) {
        self.lock().outbox.insert(record.event_id, record);
    }

    /// Every outbox record still pending, whatever its age.
    pub fn outbox_records(&self) -> Vec<OutboxRecord> {
        self.lock().outbox.values().cloned().collect()
    }

    fn begin_write(
        &self,
        call: ActivityStoreCall,
    ) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        let mut tables = self.lock();
        super::log_call(&mut tables.calls, call);
        match &tables.failing_writes {
            Some(error) => Err(error.clone()),
            None => Ok(tables),
        }
    }

    fn check_version(
        tables: &Tables,
        activity: &Activity,
        expected: Version,
    ) -> Result<(), StoreError> {
        match tables
            .activities
            .get(&(activity.user_id.clone(), activity.id))
        {
            None => Err(StoreError::NotFound),
            Some(stored) if stored.version != expected => Err(StoreError::VersionConflict),
            Some(_) => Ok(()),
        }
    }
}

/// Where a listing stopped: the sort key of the last item returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    date: ActivityDate,
    id: ActivityId,
}

#[async_trait]
impl ActivityStore for MemoryActivityStore {
    async fn create(
        &self,
        activity: &Activity,
        outbox: &OutboxRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let mut tables = self.begin_write(ActivityStoreCall::Create)?;
        let key = (activity.user_id.clone(), activity.id);
        if tables.activities.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        if let Some(record) = idempotency {
            let idempotency_key = (record.user_id.clone(), record.key.clone());
            // An expired record no longer holds its key, whether or not TTL has removed it yet.
            if let Some(existing) = tables.idempotency.get(&idempotency_key)
                && existing.expires_at > record.created_at
            {
                return Err(StoreError::IdempotencyKeyTaken);
            }
            tables.idempotency.insert(idempotency_key, record.clone());
        }
        tables.activities.insert(key, Arc::new(activity.clone()));
        tables.outbox.insert(outbox.event_id, outbox.clone());
        Ok(())
    }

    async fn get(&self, user_id: &UserId, id: ActivityId) -> Result<Option<Activity>, StoreError> {
        let mut tables = self.lock();
        super::log_call(&mut tables.calls, ActivityStoreCall::Get);
        Ok(tables
            .activities
            .get(&(user_id.clone(), id))
            .map(|activity| Activity::clone(activity)))
    }

    async fn list(&self, user_id: &UserId, query: &ListQuery) -> Result<ActivityPage, StoreError> {
        let mut tables = self.lock();
        super::log_call(&mut tables.calls, ActivityStoreCall::List);
        let after = match &query.after {
            Some(PagePosition(value)) => Some(
                serde_json::from_value::<Position>(value.clone())
                    .map_err(|_| StoreError::InvalidPosition)?,
            ),
            None => None,
        };
        // What DynamoDB's key condition selects (user, date range, after the position), newest
        // first; the type filter then applies to what is read, under the same read budget.
        let mut selected: Vec<&Arc<Activity>> = tables
            .activities
            .range((user_id.clone(), ActivityId::from_ulid(ulid::Ulid::nil()))..)
            .take_while(|((owner, _), _)| owner == user_id)
            .map(|(_, activity)| activity)
            .filter(|a| query.from.is_none_or(|from| a.activity_date >= from))
            .filter(|a| query.to.is_none_or(|to| a.activity_date <= to))
            .filter(|a| {
                after
                    .as_ref()
                    .is_none_or(|p| (a.activity_date, a.id) < (p.date, p.id))
            })
            .collect();
        selected.sort_by_key(|a| std::cmp::Reverse((a.activity_date, a.id)));
        let mut items: Vec<Arc<Activity>> = Vec::new();
        let mut continue_after: Option<(ActivityDate, ActivityId)> = None;
        for (read, activity) in selected.iter().enumerate() {
            if read == LIST_READ_BUDGET {
                // Out of budget with more to read: a short page, continued after the last read.
                let last = selected[read.saturating_sub(1)];
                continue_after = Some((last.activity_date, last.id));
                break;
            }
            if query
                .activity_type
                .is_some_and(|t| activity.activity_type != t)
            {
                continue;
            }
            if items.len() == query.limit {
                // One more matches than the page holds: continue after the page's last item.
                continue_after = items.last().map(|last| (last.activity_date, last.id));
                break;
            }
            items.push(Arc::clone(activity));
        }
        let next = match continue_after {
            Some((date, id)) => Some(PagePosition(
                serde_json::to_value(Position { date, id })
                    .map_err(|e| StoreError::Failed(e.to_string()))?,
            )),
            None => None,
        };
        Ok(ActivityPage { items, next })
    }

    async fn update(
        &self,
        activity: &Activity,
        expected: Version,
        outbox: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let mut tables = self.begin_write(ActivityStoreCall::Update)?;
        Self::check_version(&tables, activity, expected)?;
        tables.activities.insert(
            (activity.user_id.clone(), activity.id),
            Arc::new(activity.clone()),
        );
        tables.outbox.insert(outbox.event_id, outbox.clone());
        Ok(())
    }

    async fn delete(&self, activity: &Activity, outbox: &OutboxRecord) -> Result<(), StoreError> {
        let mut tables = self.begin_write(ActivityStoreCall::Delete)?;
        Self::check_version(&tables, activity, activity.version)?;
        tables
            .activities
            .remove(&(activity.user_id.clone(), activity.id));
        tables.outbox.insert(outbox.event_id, outbox.clone());
        Ok(())
    }

    async fn find_idempotency(
        &self,
        user_id: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let mut tables = self.lock();
        super::log_call(&mut tables.calls, ActivityStoreCall::FindIdempotency);
        Ok(tables
            .idempotency
            .get(&(user_id.clone(), key.clone()))
            .cloned())
    }
}

#[async_trait]
impl Outbox for MemoryActivityStore {
    async fn pending(
        &self,
        older_than: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let mut tables = self.lock();
        super::log_call(&mut tables.calls, ActivityStoreCall::Pending);
        let mut records: Vec<OutboxRecord> = tables
            .outbox
            .values()
            .filter(|r| r.occurred_at < older_than)
            .cloned()
            .collect();
        records.sort_by_key(|r| (r.occurred_at, r.event_id));
        records.truncate(limit);
        Ok(records)
    }

    async fn pending_after(
        &self,
        older_than: OffsetDateTime,
        after: &OutboxRecord,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let mut records = self.pending(older_than, usize::MAX).await?;
        records.retain(|r| (r.occurred_at, r.event_id) > (after.occurred_at, after.event_id));
        records.truncate(limit);
        Ok(records)
    }

    async fn acknowledge(&self, event_ids: &[EventId]) -> Result<(), StoreError> {
        let mut tables = self.begin_write(ActivityStoreCall::Acknowledge)?;
        for id in event_ids {
            tables.outbox.remove(id);
        }
        Ok(())
    }
}

/// The scan segment of a user: a hash of the user id (FNV-1a), so that, as in a DynamoDB
/// parallel scan, all of one user's activities are in one segment.
fn segment_of(user_id: &UserId, segments: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in user_id.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % segments.max(1)
}

#[async_trait]
impl ActivitySource for MemoryActivityStore {
    async fn scan_users(
        &self,
        segment: u32,
        segments: u32,
        after: Option<&ScanPosition>,
        limit: usize,
    ) -> Result<UserPage, StoreError> {
        let after: Option<(UserId, ActivityId)> = match after {
            Some(ScanPosition(position)) => Some(
                serde_json::from_value(position.clone())
                    .map_err(|_| StoreError::InvalidPosition)?,
            ),
            None => None,
        };
        let tables = self.lock();
        let mut users: Vec<UserId> = Vec::new();
        let mut items_read = 0;
        let mut last = None;
        let mut remaining = false;
        for key in tables.activities.keys() {
            if after.as_ref().is_some_and(|after| key <= after) {
                continue;
            }
            if segment_of(&key.0, segments) != segment {
                continue;
            }
            if items_read == limit.max(1) {
                remaining = true;
                break;
            }
            items_read += 1;
            if users.last() != Some(&key.0) {
                users.push(key.0.clone());
            }
            last = Some(key.clone());
        }
        let next = match (remaining, last) {
            (true, Some(last)) => Some(ScanPosition(
                serde_json::to_value(last).map_err(|e| StoreError::Failed(e.to_string()))?,
            )),
            _ => None,
        };
        Ok(UserPage {
            users,
            items_read,
            next,
        })
    }

    async fn user_activities(&self, user_id: &UserId) -> Result<Vec<Activity>, StoreError> {
        Ok(self
            .lock()
            .activities
            .iter()
            .filter(|((owner, _), _)| owner == user_id)
            .map(|(_, activity)| Activity::clone(activity))
            .collect())
    }
}
