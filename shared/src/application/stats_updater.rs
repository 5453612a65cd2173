//! Applying events to statistics, exactly once per (consumer, event id), in as few writes as
//! correctness allows.
//!
//! The common case — a batch of events none of which was applied before — costs one write: every
//! event id recorded as processed and the deltas, merged per user, added in one all-or-nothing
//! store call. When that call is refused (some event was applied before, a concurrent write, a
//! transient failure), each event is written on its own, so a duplicate is skipped, a failure
//! fails only its own event, and the rest of the batch still succeeds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::{DomainEvent, EventId, StatsDelta, UserId};

use super::ports::{ApplyError, ApplyOutcome, StatsStore};
use crate::functions::ConsumerFunction;

/// The name the stats consumer's processed-event markers are kept under.
const STATS_CONSUMER: &str = ConsumerFunction::UpdateStats.name();

/// A DynamoDB transaction holds at most 100 items; a chunk stays below that.
const MAX_ITEMS_PER_WRITE: usize = 100;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    Applied,
    /// Applied before (a redelivery or a duplicate); nothing changed.
    Duplicate,
    /// The event changes no statistic (e.g. an update of the title only); nothing to write.
    NoEffect,
    /// Not applied; the message should be retried.
    Failed(ApplyError),
}

impl EventOutcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

#[derive(Clone)]
pub struct StatsUpdater {
    store: Arc<dyn StatsStore>,
    consumer: &'static str,
}

impl StatsUpdater {
    pub fn new(store: Arc<dyn StatsStore>) -> Self {
        Self {
            store,
            consumer: STATS_CONSUMER,
        }
    }

    /// Applies a batch of events; the outcome of each is at the same index.
    pub async fn apply(&self, events: &[DomainEvent]) -> Vec<EventOutcome> {
        let mut outcomes: Vec<Option<EventOutcome>> = vec![None; events.len()];
        // Index of the first occurrence of each event id, and the events that carry a delta.
        let mut first_index: BTreeMap<EventId, usize> = BTreeMap::new();
        let mut pending: Vec<(usize, StatsDelta)> = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if first_index.contains_key(&event.event_id) {
                continue;
            }
            first_index.insert(event.event_id, index);
            match StatsDelta::from_event(event) {
                Some(delta) if !delta.is_empty() => pending.push((index, delta)),
                _ => outcomes[index] = Some(EventOutcome::NoEffect),
            }
        }
        for chunk in chunks(&pending) {
            self.apply_chunk(events, chunk, &mut outcomes).await;
        }
        // A duplicate within the batch shares the fate of its first occurrence.
        events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let first = first_index[&event.event_id];
                match &outcomes[first] {
                    Some(outcome) if first == index => outcome.clone(),
                    Some(EventOutcome::Failed(error)) => EventOutcome::Failed(error.clone()),
                    Some(_) => EventOutcome::Duplicate,
                    None => EventOutcome::Failed(ApplyError::Failed("not attempted".into())),
                }
            })
            .collect()
    }

    async fn apply_chunk(
        &self,
        events: &[DomainEvent],
        chunk: &[(usize, StatsDelta)],
        outcomes: &mut [Option<EventOutcome>],
    ) {
        let ids: Vec<EventId> = chunk.iter().map(|(i, _)| events[*i].event_id).collect();
        let mut per_user: BTreeMap<UserId, StatsDelta> = BTreeMap::new();
        for (_, delta) in chunk {
            per_user
                .entry(delta.user_id.clone())
                .or_insert_with(|| StatsDelta::empty(delta.user_id.clone()))
                .merge(delta);
        }
        // A merged delta whose changes cancel out (an update and its undo) is still written: its
        // events may straddle a rebuild's fence (the first counted by the rebuild, the second
        // not), and only the store's fence check on the write tells them apart. Refused as
        // `CoveredByRebuild`, the events are then written one by one below.
        let merged: Vec<StatsDelta> = per_user.into_values().collect();
        let batch = super::retry::retry_conflicts(is_conflict, || {
            self.store.apply_batch(self.consumer, &ids, &merged)
        })
        .await;
        match batch {
            Ok(()) => {
                for (index, _) in chunk {
                    outcomes[*index] = Some(EventOutcome::Applied);
                }
                return;
            }
            Err(error) => {
                tracing::info!(%error, events = chunk.len(), "batch write refused; writing events one by one");
            }
        }
        for (index, delta) in chunk {
            let event_id = events[*index].event_id;
            let write = super::retry::retry_conflicts(is_conflict, || {
                self.store.apply_once(self.consumer, event_id, delta)
            })
            .await;
            let outcome = match write {
                Ok(ApplyOutcome::Applied) => EventOutcome::Applied,
                Ok(ApplyOutcome::Duplicate) => {
                    tracing::info!(%event_id, "event applied before; skipped");
                    EventOutcome::Duplicate
                }
                Err(error) => EventOutcome::Failed(error),
            };
            outcomes[*index] = Some(outcome);
        }
    }
}

/// A write refused only because another transaction touched the same items: worth trying again
/// at once (see `retry`), unlike an unavailable store, which SQS's redelivery handles.
fn is_conflict(error: &ApplyError) -> bool {
    matches!(error, ApplyError::Conflict)
}

/// Splits events into chunks whose write (one marker per event, one item per user and period)
/// fits in one transaction.
fn chunks(pending: &[(usize, StatsDelta)]) -> Vec<&[(usize, StatsDelta)]> {
    let mut result = Vec::new();
    let mut start = 0;
    let mut items = 0;
    for (offset, (_, delta)) in pending.iter().enumerate() {
        let cost = 1 + delta.periods().len();
        if items + cost > MAX_ITEMS_PER_WRITE && offset > start {
            result.push(&pending[start..offset]);
            start = offset;
            items = 0;
        }
        items += cost;
    }
    if start < pending.len() {
        result.push(&pending[start..]);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use time::macros::{date, datetime};

    use super::*;
    use crate::adapters::memory::MemoryStatsStore;
    use crate::application::retry::CONFLICT_RETRIES;
    use crate::application::{CorrectionOutcome, StatsProjectionStore};
    use crate::domain::{
        ActivityDate, ActivityFacts, ActivityType, CorrelationId, EventPayload, PeriodKey,
        StatsCorrection, Totals, UserStats,
    };
    use time::OffsetDateTime;

    /// The memory store, but the first `conflicts` writes (batch or single) lose a race.
    struct Contended {
        store: MemoryStatsStore,
        conflicts: Mutex<u32>,
    }

    impl Contended {
        fn conflict(&self) -> bool {
            let mut left = self.conflicts.lock().unwrap();
            let conflict = *left > 0;
            *left = left.saturating_sub(1);
            conflict
        }
    }

    #[async_trait]
    impl StatsStore for Contended {
        async fn apply_batch(
            &self,
            consumer: &str,
            event_ids: &[EventId],
            deltas: &[StatsDelta],
        ) -> Result<(), ApplyError> {
            if self.conflict() {
                return Err(ApplyError::Conflict);
            }
            self.store.apply_batch(consumer, event_ids, deltas).await
        }

        async fn apply_once(
            &self,
            consumer: &str,
            event_id: EventId,
            delta: &StatsDelta,
        ) -> Result<ApplyOutcome, ApplyError> {
            if self.conflict() {
                return Err(ApplyError::Conflict);
            }
            self.store.apply_once(consumer, event_id, delta).await
        }

        async fn get(
            &self,
            user_id: &UserId,
            period: PeriodKey,
        ) -> Result<UserStats, super::super::ports::StoreError> {
            self.store.get(user_id, period).await
        }
    }

    fn created(n: u64) -> DomainEvent {
        DomainEvent {
            event_id: EventId::from_ulid(ulid::Ulid::from_parts(1, u128::from(n))),
            occurred_at: datetime!(2026-11-26 12:00 UTC),
            aggregate_id: "01M833X5N8Q2W7E4R6T9Y1V3J5".into(),
            user_id: UserId::parse("busy").unwrap(),
            correlation_id: CorrelationId::parse("req-1").unwrap(),
            trace_parent: None,
            payload: EventPayload::ActivityCreated {
                title: "Run".into(),
                facts: ActivityFacts {
                    activity_type: ActivityType::Running,
                    duration_minutes: 30,
                    distance_m: None,
                    calories_burned: None,
                    activity_date: ActivityDate::from_date(date!(2026 - 11 - 25)),
                },
                tags: Vec::new(),
            },
        }
    }

    /// Conflicts on a busy user's stats are retried in-process: the batch is applied in this
    /// delivery, not failed back to SQS (five such failures sent a good event to the DLQ).
    #[tokio::test(start_paused = true)]
    async fn a_write_that_loses_a_race_is_retried_in_process() {
        let store = Arc::new(Contended {
            store: MemoryStatsStore::new(),
            conflicts: Mutex::new(CONFLICT_RETRIES),
        });
        let updater = StatsUpdater::new(store.clone());
        let outcomes = updater.apply(&[created(1), created(2)]).await;
        assert_eq!(outcomes, [EventOutcome::Applied, EventOutcome::Applied]);
        let stats = store
            .get(&UserId::parse("busy").unwrap(), PeriodKey::AllTime)
            .await
            .unwrap();
        assert_eq!(stats.totals.activities, 2);
    }

    /// A conflict that persists is still reported (retryable), after a bounded number of tries.
    #[tokio::test(start_paused = true)]
    async fn a_conflict_that_persists_fails_the_event_for_redelivery() {
        let store = Arc::new(Contended {
            store: MemoryStatsStore::new(),
            conflicts: Mutex::new(u32::MAX),
        });
        let updater = StatsUpdater::new(store.clone());
        let outcomes = updater.apply(&[created(1)]).await;
        assert_eq!(outcomes, [EventOutcome::Failed(ApplyError::Conflict)]);
        let left = *store.conflicts.lock().unwrap();
        assert_eq!(
            u32::MAX - left,
            2 * (CONFLICT_RETRIES + 1),
            "batch and single write each tried 1 + CONFLICT_RETRIES times"
        );
    }

    fn running(minutes: u32) -> ActivityFacts {
        ActivityFacts {
            activity_type: ActivityType::Running,
            duration_minutes: minutes,
            distance_m: None,
            calories_burned: None,
            activity_date: ActivityDate::from_date(date!(2026 - 11 - 25)),
        }
    }

    fn updated(n: u64, at: OffsetDateTime, before: u32, after: u32) -> DomainEvent {
        DomainEvent {
            occurred_at: at,
            payload: EventPayload::ActivityUpdated {
                before: running(before),
                after: running(after),
                version: n,
            },
            ..created(n)
        }
    }

    /// Two events of one activity whose effects cancel (30 → 60 before a rebuild's fence, which
    /// the rebuild counted; 60 → 30 after it) merge into an empty delta. It must still reach the
    /// store, so the fence check runs: the first is skipped as counted, the second applies.
    #[tokio::test]
    async fn events_that_cancel_out_across_a_fence_still_meet_the_fence() {
        let store = Arc::new(MemoryStatsStore::new());
        let user = UserId::parse("busy").unwrap();
        let updater = StatsUpdater::new(store.clone());
        assert_eq!(updater.apply(&[created(1)]).await, [EventOutcome::Applied]);
        // A rebuild counted the activity at 60 minutes and set the fence at 12:10.
        let projection = store.projection(&user).await.unwrap();
        let plus_30 = Totals {
            minutes: 30,
            ..Totals::default()
        };
        let correction = StatsCorrection {
            period: PeriodKey::AllTime,
            totals: plus_30,
            by_type: BTreeMap::from([(ActivityType::Running, plus_30)]),
        };
        let outcome = store
            .correct(
                &user,
                projection.revision,
                datetime!(2026-11-26 12:10 UTC),
                &[correction],
            )
            .await
            .unwrap();
        assert_eq!(outcome, CorrectionOutcome::Corrected);
        let outcomes = updater
            .apply(&[
                updated(2, datetime!(2026-11-26 12:05 UTC), 30, 60),
                updated(3, datetime!(2026-11-26 12:15 UTC), 60, 30),
            ])
            .await;
        assert!(outcomes.iter().all(|o| !o.is_failure()), "{outcomes:?}");
        let stats = store.get(&user, PeriodKey::AllTime).await.unwrap();
        assert_eq!(
            stats.totals.minutes, 30,
            "the undo after the fence is applied"
        );
    }
}
