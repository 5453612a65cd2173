//! Ports: what the use cases need from the outside world, as small traits, all in this one file.
//! Each has an in-memory adapter (`adapters::memory`) and an AWS adapter
//! (`adapters::{dynamodb,eventbridge}`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ulid::Ulid;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::{
    Activity, ActivityDate, ActivityId, ActivityType, DomainEvent, EventId, EventType, Milestone,
    PeriodKey, Progress, StatsCorrection, StatsDelta, UserId, UserStats, Version,
};
use crate::functions::ConsumerFunction;

/// Why a store operation failed, in the terms the use cases decide on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// An activity with this id exists already (create never overwrites).
    #[error("activity already exists")]
    AlreadyExists,
    /// Another create took this idempotency key first.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken,
    #[error("activity not found")]
    NotFound,
    /// The stored version is not the expected one: someone else changed the activity.
    #[error("activity was changed concurrently")]
    VersionConflict,
    /// A cursor's position does not belong to this user's listing.
    #[error("invalid page position")]
    InvalidPosition,
    /// Another transaction touched the same items at the same moment (DynamoDB's
    /// `TransactionConflict`): routine on a busy user's items, and trying again a few milliseconds
    /// later almost always passes. Kept apart from `Unavailable` so that a use case can retry it
    /// in-process instead of handing it to the queue's visibility timeout.
    #[error("concurrent transaction on the same items")]
    TransactionConflict,
    /// A failure that may pass if tried again (throttling, timeouts, service errors).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A failure that will not pass by itself (permissions, missing table, bad request).
    #[error("store failed: {0}")]
    Failed(String),
}

/// Where a listing continues: the store's own notion of position, opaque to everyone else. The
/// use case seals it into a tamper-checked cursor before a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagePosition(pub serde_json::Value);

/// A listing of one user's activities, newest `activity_date` first (then newest id first).
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub from: Option<ActivityDate>,
    pub to: Option<ActivityDate>,
    pub activity_type: Option<ActivityType>,
    pub limit: usize,
    pub after: Option<PagePosition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPage {
    /// Shared, not copied: a store that keeps activities in memory hands out its own (copying
    /// 20 activities, six or seven allocations each, was 12 % of a list's instructions; issue 15).
    pub items: Vec<Arc<Activity>>,
    /// Present when more items may follow.
    pub next: Option<PagePosition>,
}

/// The most activities one listing reads, matching or not. A filter (`type`) is applied after
/// the read, so without a bound one request for a rare type could read a whole partition: at
/// the bound a store stops and answers the items found so far (possibly none) with the position
/// of the last activity it read, so the client continues from there. Twice the largest page,
/// so an unfiltered page (limit + 1 reads) never reaches it.
pub const LIST_READ_BUDGET: usize = 200;

/// The key a client sends in `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, crate::domain::FieldError> {
        let valid =
            !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(crate::domain::FieldError::new(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a create with an `Idempotency-Key` left behind, so a retry returns the same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub user_id: UserId,
    pub key: IdempotencyKey,
    /// A hash of the request body: the same key with another body is refused.
    pub request_fingerprint: String,
    /// The activity as the first response returned it.
    pub activity: Activity,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this the key may be used again (the record is as good as gone, even before a
    /// store's TTL deletes it).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The activities and, in the same atomic write, the outbox record of the event each change makes.
#[async_trait]
pub trait ActivityStore: Send + Sync {
    /// Writes a new activity, its outbox record and (optionally) its idempotency record in one
    /// transaction. Fails with `AlreadyExists` or `IdempotencyKeyTaken`, writing nothing.
    async fn create(
        &self,
        activity: &Activity,
        outbox: &OutboxRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError>;

    /// The activity, when it exists and belongs to `user_id`.
    async fn get(&self, user_id: &UserId, id: ActivityId) -> Result<Option<Activity>, StoreError>;

    async fn list(&self, user_id: &UserId, query: &ListQuery) -> Result<ActivityPage, StoreError>;

    /// Replaces the activity if its stored version is still `expected`, writing the outbox record
    /// in the same transaction. `NotFound` or `VersionConflict` otherwise.
    async fn update(
        &self,
        activity: &Activity,
        expected: Version,
        outbox: &OutboxRecord,
    ) -> Result<(), StoreError>;

    /// Deletes the activity if it still has the given version, writing the outbox record in the
    /// same transaction. `NotFound` or `VersionConflict` otherwise.
    async fn delete(&self, activity: &Activity, outbox: &OutboxRecord) -> Result<(), StoreError>;

    async fn find_idempotency(
        &self,
        user_id: &UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// An event waiting to be published: written with the change that caused it, removed once the
/// bus has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub event_id: EventId,
    #[serde(with = "event_type_name")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The event envelope as JSON: the EventBridge `Detail`.
    pub detail: String,
    /// The X-Ray trace header of the span that wrote the event (or, when it was not traced, of the
    /// request that caused it), when there was one: EventBridge's `TraceHeader`, and what the
    /// relay links its publishing to.
    pub trace_header: Option<String>,
}

impl OutboxRecord {
    /// The record of `event`. Its trace header is the event's own trace position when it has one
    /// (the span that wrote it, in the request's trace), else `trace_header` (the request's).
    pub fn for_event(event: &DomainEvent, trace_header: Option<String>) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.event_type(),
            occurred_at: event.occurred_at,
            detail: event.to_json(),
            trace_header: event
                .trace_parent
                .map(|position| position.to_xray_header())
                .or(trace_header),
        }
    }

    /// Where the event was written in its trace, read from [`Self::trace_header`].
    pub fn trace_parent(&self) -> Option<crate::domain::TraceParent> {
        self.trace_header
            .as_deref()
            .and_then(crate::domain::TraceParent::from_xray_header)
    }

    pub fn source(&self) -> &'static str {
        self.event_type.source()
    }
}

mod event_type_name {
    use crate::domain::EventType;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &EventType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventType, D::Error> {
        let raw = String::deserialize(d)?;
        EventType::parse(&raw).ok_or_else(|| D::Error::custom(format!("unknown event type {raw}")))
    }
}

/// Events not yet acknowledged as published.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` records that occurred before `older_than`, oldest first.
    async fn pending(
        &self,
        older_than: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError>;

    /// Up to `limit` records that occurred before `older_than` and come after `after` in the same
    /// order: the next page, so a relay can move past records the bus keeps refusing.
    async fn pending_after(
        &self,
        older_than: OffsetDateTime,
        after: &OutboxRecord,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError>;

    /// Removes published records; ids that are already gone are ignored.
    async fn acknowledge(&self, event_ids: &[EventId]) -> Result<(), StoreError>;
}

/// One entry the bus refused, after the publisher's own retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub event_id: EventId,
    pub error_code: String,
    pub error_message: String,
}

/// What became of a publish: every entry not listed in `failed` was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub failed: Vec<FailedEntry>,
}

impl PublishReport {
    pub fn accepted<'a>(&'a self, records: &'a [OutboxRecord]) -> Vec<EventId> {
        records
            .iter()
            .map(|r| r.event_id)
            .filter(|id| !self.failed.iter().any(|f| f.event_id == *id))
            .collect()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    #[error("publishing failed: {0}")]
    Failed(String),
}

/// Puts events on the bus. Implementations chunk as the bus requires and retry failed entries a
/// bounded number of times; whatever still failed is reported, never dropped silently.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError>;
}

/// Why applying statistics failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    /// The batch was refused because some of its events were applied before.
    #[error("events already applied: {0:?}")]
    AlreadyApplied(Vec<EventId>),
    /// The batch was refused because of a concurrent write to the same items.
    #[error("concurrent write conflict")]
    Conflict,
    /// The batch was refused because some of its events occurred before a user's rebuild fence:
    /// the rebuild counted them already (`docs/operations.md`, "The cut-over"). Written one by
    /// one, those events are recorded as processed and add nothing.
    #[error("events counted by a rebuild")]
    CoveredByRebuild,
    #[error("stats store unavailable: {0}")]
    Unavailable(String),
    #[error("stats store failed: {0}")]
    Failed(String),
}

/// What a single-event write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// The event had been applied before, or it occurred before the user's rebuild fence and the
    /// rebuild counted it; nothing changed but its processed-event marker.
    Duplicate,
}

/// Per-user statistics, applied exactly once per (consumer, event id).
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Records every event id as processed by `consumer` and adds every delta, all or nothing:
    /// the cheap path for a batch of events none of which was seen before.
    async fn apply_batch(
        &self,
        consumer: &str,
        event_ids: &[EventId],
        deltas: &[StatsDelta],
    ) -> Result<(), ApplyError>;

    /// Records one event id and adds its delta, unless the event was applied before.
    async fn apply_once(
        &self,
        consumer: &str,
        event_id: EventId,
        delta: &StatsDelta,
    ) -> Result<ApplyOutcome, ApplyError>;

    async fn get(&self, user_id: &UserId, period: PeriodKey) -> Result<UserStats, StoreError>;
}

/// The current time, behind a port so tests and the local stack's queues can control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// New unique, time-sortable ids for activities and events.
pub trait IdGenerator: Send + Sync {
    fn next_ulid(&self) -> Ulid;
}

// The achievements consumer keeps its state behind this port: per-user progress, the awards made,
// and which events were counted. Its two writes are each atomic, which is what lets the recorder
// survive a crash between them (see `application::achievements`).

/// A milestone awarded to a user, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    pub user_id: UserId,
    pub milestone: Milestone,
    /// The `achievement.unlocked` event the award was announced with.
    pub event_id: EventId,
    #[serde(with = "time::serde::rfc3339")]
    pub awarded_at: OffsetDateTime,
}

/// Where a user stands: their progress and what they were awarded, oldest award first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AchievementStanding {
    pub progress: Progress,
    pub awards: Vec<Award>,
}

impl AchievementStanding {
    pub fn has(&self, milestone: Milestone) -> bool {
        self.awards.iter().any(|a| a.milestone == milestone)
    }

    /// Milestones reached and not awarded yet.
    pub fn due(&self) -> Vec<Milestone> {
        Milestone::reached_by(&self.progress)
            .filter(|m| !self.has(*m))
            .collect()
    }
}

/// What an award write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwardOutcome {
    Awarded,
    /// The user had this award already; nothing was written.
    AlreadyAwarded,
}

#[async_trait]
pub trait AchievementStore: Send + Sync {
    /// Records `event_id` as processed by `consumer` and adds `added` to the user's progress, all
    /// or nothing; `Duplicate` (and no change) when the event was recorded before.
    async fn record_progress(
        &self,
        consumer: &str,
        event_id: EventId,
        user_id: &UserId,
        added: &Progress,
    ) -> Result<ApplyOutcome, StoreError>;

    async fn standing(&self, user_id: &UserId) -> Result<AchievementStanding, StoreError>;

    /// Writes the award and the outbox record of its event, all or nothing, unless the user has
    /// the award already (then `AlreadyAwarded`, nothing written).
    async fn award(&self, award: &Award, outbox: &OutboxRecord)
    -> Result<AwardOutcome, StoreError>;
}

// Rebuild and replay (issue 17): what an operator's rebuild of a projection needs beyond the
// consumers' ports. The design of the cut-over against in-flight events is in
// `application::rebuild` and `docs/operations.md`.

/// Where a segment of a parallel scan continues: the store's own key, opaque elsewhere, and
/// serialisable so that an interrupted rebuild can resume from a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPosition(pub serde_json::Value);

/// One page of one scan segment: the users whose activities it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// Each user once per page, in scan order.
    pub users: Vec<UserId>,
    /// Items the page read (what the read rate is measured in).
    pub items_read: usize,
    /// `None` when the segment is finished.
    pub next: Option<ScanPosition>,
}

/// The activities, read as the source of truth that projections are recomputed from.
#[async_trait]
pub trait ActivitySource: Send + Sync {
    /// Segment `segment` (0-based) of `segments` disjoint segments of the table: the users with
    /// an activity in the page of at most `limit` items after `after` (on DynamoDB also those with
    /// an all-time statistics item, so that statistics left without activities are met). One
    /// user's items are all in one segment.
    async fn scan_users(
        &self,
        segment: u32,
        segments: u32,
        after: Option<&ScanPosition>,
        limit: usize,
    ) -> Result<UserPage, StoreError>;

    /// Every activity of one user, strongly consistent (the rebuild's snapshot).
    async fn user_activities(&self, user_id: &UserId) -> Result<Vec<Activity>, StoreError>;
}

/// One user's statistics as stored, with what the rebuild's conditional write needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsProjection {
    /// Bumped by every write to the user's statistics (consumer or rebuild): a correction is
    /// written only if it has not moved since the projection was read.
    pub revision: u64,
    /// The user's rebuild fence: events that occurred before it were counted by a rebuild.
    pub fence: Option<OffsetDateTime>,
    /// Every stored period.
    pub periods: BTreeMap<PeriodKey, UserStats>,
}

/// What a conditional correction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrectionOutcome {
    Corrected,
    /// The user's revision moved (a consumer wrote meanwhile), or the stored fence is already
    /// past the one given (the fence never moves back); nothing was written.
    RevisionMoved,
}

/// The statistics projection as a whole per user: read it, and correct it atomically.
#[async_trait]
pub trait StatsProjectionStore: Send + Sync {
    async fn projection(&self, user_id: &UserId) -> Result<StatsProjection, StoreError>;

    /// Adds `corrections` to the user's statistics, raises the user's fence to `fence` and bumps
    /// the revision, all or nothing, if the revision is still `expected_revision` and the stored
    /// fence is not past `fence` (it never moves back). A store that
    /// cannot write a user's corrections in one transaction writes the first part with the
    /// condition and the rest after it (see the adapter).
    async fn correct(
        &self,
        user_id: &UserId,
        expected_revision: u64,
        fence: OffsetDateTime,
        corrections: &[StatsCorrection],
    ) -> Result<CorrectionOutcome, StoreError>;
}

/// One user's achievement progress as stored, with its revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressProjection {
    /// Bumped by every progress write (consumer or rebuild).
    pub revision: u64,
    pub standing: AchievementStanding,
}

/// The achievements projection, corrected per user.
#[async_trait]
pub trait AchievementProjectionStore: Send + Sync {
    async fn progress_projection(&self, user_id: &UserId)
    -> Result<ProgressProjection, StoreError>;

    /// Sets the user's progress to `progress` and bumps the revision if it is still
    /// `expected_revision`; awards are not touched (they are made through
    /// [`AchievementStore::award`], once each).
    async fn set_progress(
        &self,
        user_id: &UserId,
        expected_revision: u64,
        progress: &Progress,
    ) -> Result<CorrectionOutcome, StoreError>;
}

/// A time window of archived events to send again to one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// Unique per replay (EventBridge refuses a name used before).
    pub name: String,
    pub consumer: ConsumerFunction,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayState {
    Running,
    Completed,
    Cancelled,
    Failed(String),
}

/// How far a replay got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayProgress {
    pub state: ReplayState,
    /// The time of the last event replayed, when the archive says it.
    pub replayed_through: Option<OffsetDateTime>,
    /// Events sent so far, when the archive counts them (EventBridge does not).
    pub events: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    /// The archive refused the request (bad window, name used before, no such archive or rule).
    #[error("replay refused: {0}")]
    Refused(String),
    #[error("archive unavailable: {0}")]
    Unavailable(String),
}

/// The bus archive: replays a window of events to one consumer only.
#[async_trait]
pub trait EventArchive: Send + Sync {
    async fn start_replay(&self, request: &ReplayRequest) -> Result<(), ReplayError>;
    async fn replay_progress(&self, name: &str) -> Result<ReplayProgress, ReplayError>;
}
