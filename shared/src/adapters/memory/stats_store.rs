//! Statistics and processed-event markers in one mutex; a batch is all or nothing, as a DynamoDB
//! transaction is. Each user also has a revision (bumped by every write) and a rebuild fence
//! (events that occurred before it add nothing), as the DynamoDB adapter keeps them on the user's
//! all-time item: see `application::rebuild` for why.
//!
//! Projection versions: one store holds every version, each with its own statistics, markers,
//! revisions and fences (as each version has its own keys and markers in the table);
//! [`MemoryStatsStore::at_version`] gives a handle on one of them, sharing the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::application::{
    ApplyError, ApplyOutcome, CorrectionOutcome, StatsProjection, StatsProjectionStore, StatsStore,
    StoreError,
};
use crate::domain::{
    EventId, PeriodKey, ProjectionVersion, StatsCorrection, StatsDelta, UserId, UserStats,
};

/// One call to the store, for tests that count what a batch costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsStoreCall {
    ApplyBatch { events: usize },
    ApplyOnce { event_id: EventId },
    Get,
}

impl StatsStoreCall {
    pub fn is_write(&self) -> bool {
        !matches!(self, Self::Get)
    }
}

#[derive(Default)]
struct State {
    stats: HashMap<(UserId, PeriodKey), UserStats>,
    processed: HashSet<(String, EventId)>,
    revisions: HashMap<UserId, u64>,
    fences: HashMap<UserId, OffsetDateTime>,
    calls: Vec<StatsStoreCall>,
    /// Failures to answer with, once each: the next batch, or the next write of one event.
    batch_faults: Vec<ApplyError>,
    event_faults: HashMap<EventId, ApplyError>,
}

/// The statistics store of one projection version (v1 from [`MemoryStatsStore::new`]); the
/// other versions are reached with [`MemoryStatsStore::at_version`].
pub struct MemoryStatsStore {
    version: ProjectionVersion,
    state: Arc<Mutex<State>>,
    versions: Arc<Mutex<BTreeMap<ProjectionVersion, Arc<Mutex<State>>>>>,
}

impl Default for MemoryStatsStore {
    fn default() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let version = ProjectionVersion::FIRST;
        Self {
            version,
            versions: Arc::new(Mutex::new(BTreeMap::from([(version, state.clone())]))),
            state,
        }
    }
}

impl MemoryStatsStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store's projection version `version` (created empty on first use): what a
    /// consumer, a reader or a rebuild configured with that version works on.
    pub fn at_version(&self, version: ProjectionVersion) -> Arc<Self> {
        let state = self
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(version)
            .or_default()
            .clone();
        Arc::new(Self {
            version,
            state,
            versions: self.versions.clone(),
        })
    }

    pub fn version(&self) -> ProjectionVersion {
        self.version
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<StatsStoreCall> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The next `apply_batch` fails with `error`, writing nothing.
    pub fn fail_next_batch(&self, error: ApplyError) {
        self.lock().batch_faults.push(error);
    }

    /// The next `apply_once` of `event_id` fails with `error`, writing nothing.
    pub fn fail_next_write_of(&self, event_id: EventId, error: ApplyError) {
        self.lock().event_faults.insert(event_id, error);
    }

    /// Every stats item, for comparing whole states in tests.
    pub fn snapshot(&self) -> HashMap<(UserId, PeriodKey), UserStats> {
        self.lock().stats.clone()
    }

    /// Replaces one user's statistics for one period, bypassing everything: how a test corrupts
    /// the projection on purpose.
    pub fn overwrite(&self, user_id: &UserId, stats: UserStats) {
        self.lock()
            .stats
            .insert((user_id.clone(), stats.period), stats);
    }

    /// Forgets every statistic, processed-event marker, revision and fence: a projection lost
    /// whole, which only a replay (or a rebuild) brings back.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.stats.clear();
        state.processed.clear();
        state.revisions.clear();
        state.fences.clear();
    }

    /// True when the delta's oldest event occurred before the user's rebuild fence.
    fn covered(state: &State, delta: &StatsDelta) -> bool {
        match (state.fences.get(&delta.user_id), delta.earliest_occurred_at) {
            (Some(fence), Some(occurred)) => occurred < *fence,
            _ => false,
        }
    }

    fn add(state: &mut State, delta: &StatsDelta) {
        *state.revisions.entry(delta.user_id.clone()).or_default() += 1;
        for change in delta.changes() {
            state
                .stats
                .entry((delta.user_id.clone(), change.period))
                .or_insert_with(|| UserStats::empty(change.period))
                .apply(change.activity_type, &change.totals);
        }
    }
}

#[async_trait]
impl StatsStore for MemoryStatsStore {
    async fn apply_batch(
        &self,
        consumer: &str,
        event_ids: &[EventId],
        deltas: &[StatsDelta],
    ) -> Result<(), ApplyError> {
        let mut state = self.lock();
        super::log_call(
            &mut state.calls,
            StatsStoreCall::ApplyBatch {
                events: event_ids.len(),
            },
        );
        if !state.batch_faults.is_empty() {
            return Err(state.batch_faults.remove(0));
        }
        let seen: Vec<EventId> = event_ids
            .iter()
            .filter(|id| state.processed.contains(&(consumer.to_owned(), **id)))
            .copied()
            .collect();
        if !seen.is_empty() {
            return Err(ApplyError::AlreadyApplied(seen));
        }
        if deltas.iter().any(|delta| Self::covered(&state, delta)) {
            return Err(ApplyError::CoveredByRebuild);
        }
        for id in event_ids {
            state.processed.insert((consumer.to_owned(), *id));
        }
        for delta in deltas {
            Self::add(&mut state, delta);
        }
        Ok(())
    }

    async fn apply_once(
        &self,
        consumer: &str,
        event_id: EventId,
        delta: &StatsDelta,
    ) -> Result<ApplyOutcome, ApplyError> {
        let mut state = self.lock();
        super::log_call(&mut state.calls, StatsStoreCall::ApplyOnce { event_id });
        if let Some(error) = state.event_faults.remove(&event_id) {
            return Err(error);
        }
        if !state.processed.insert((consumer.to_owned(), event_id)) {
            return Ok(ApplyOutcome::Duplicate);
        }
        if Self::covered(&state, delta) {
            return Ok(ApplyOutcome::Duplicate);
        }
        Self::add(&mut state, delta);
        Ok(ApplyOutcome::Applied)
    }

    async fn get(&self, user_id: &UserId, period: PeriodKey) -> Result<UserStats, StoreError> {
        let mut state = self.lock();
        super::log_call(&mut state.calls, StatsStoreCall::Get);
        Ok(state
            .stats
            .get(&(user_id.clone(), period))
            .cloned()
            .unwrap_or_else(|| UserStats::empty(period)))
    }
}

#[async_trait]
impl StatsProjectionStore for MemoryStatsStore {
    async fn projection(&self, user_id: &UserId) -> Result<StatsProjection, StoreError> {
        let state = self.lock();
        let periods: BTreeMap<PeriodKey, UserStats> = state
            .stats
            .iter()
            .filter(|((owner, _), _)| owner == user_id)
            .map(|((_, period), stats)| (*period, stats.clone()))
            .collect();
        Ok(StatsProjection {
            revision: state.revisions.get(user_id).copied().unwrap_or(0),
            fence: state.fences.get(user_id).copied(),
            periods,
        })
    }

    async fn correct(
        &self,
        user_id: &UserId,
        expected_revision: u64,
        fence: OffsetDateTime,
        corrections: &[StatsCorrection],
    ) -> Result<CorrectionOutcome, StoreError> {
        let mut state = self.lock();
        if state.revisions.get(user_id).copied().unwrap_or(0) != expected_revision {
            return Ok(CorrectionOutcome::RevisionMoved);
        }
        // The fence only moves forward (as the DynamoDB adapter's condition has it): a rebuild
        // whose fence is behind the stored one is refused as a whole.
        if state
            .fences
            .get(user_id)
            .is_some_and(|stored| *stored > fence)
        {
            return Ok(CorrectionOutcome::RevisionMoved);
        }
        for correction in corrections {
            let stats = state
                .stats
                .entry((user_id.clone(), correction.period))
                .or_insert_with(|| UserStats::empty(correction.period));
            correction.apply_to(stats);
        }
        state.fences.insert(user_id.clone(), fence);
        *state.revisions.entry(user_id.clone()).or_default() += 1;
        Ok(CorrectionOutcome::Corrected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local stack runs on this store for as long as it is up: its call log must not grow
    /// with every request.
    #[tokio::test]
    async fn the_call_log_is_bounded() {
        let store = MemoryStatsStore::new();
        let user = UserId::parse("alice").unwrap();
        for _ in 0..crate::adapters::memory::CALL_LOG_LIMIT + 10 {
            StatsStore::get(&store, &user, PeriodKey::AllTime)
                .await
                .unwrap();
        }
        assert_eq!(store.calls().len(), crate::adapters::memory::CALL_LOG_LIMIT);
        store.clear_calls();
        StatsStore::get(&store, &user, PeriodKey::AllTime)
            .await
            .unwrap();
        assert_eq!(store.calls(), [StatsStoreCall::Get]);
    }

    /// Each version is a projection of its own: v2's consumer applies an event v1's consumer
    /// already marked, v1 never sees v2's statistics, and a handle on a version is the same
    /// projection however it was reached.
    #[tokio::test]
    async fn each_version_keeps_its_own_statistics_and_markers() {
        let v1 = MemoryStatsStore::new();
        let v2 = v1.at_version(ProjectionVersion::new(2).unwrap());
        let user = UserId::parse("alice").unwrap();
        let event = EventId::from_ulid(ulid::Ulid::new());
        let delta = StatsDelta::empty(user.clone());
        for store in [&v1, v2.as_ref()] {
            assert_eq!(
                store
                    .apply_once("update-stats", event, &delta)
                    .await
                    .unwrap(),
                ApplyOutcome::Applied
            );
        }
        assert_eq!(
            v2.apply_once("update-stats", event, &delta).await.unwrap(),
            ApplyOutcome::Duplicate
        );
        let mut stats = UserStats::empty(PeriodKey::AllTime);
        stats.totals.activities = 7;
        v2.overwrite(&user, stats);
        let all_time = |store: Arc<MemoryStatsStore>| {
            let user = user.clone();
            async move {
                StatsStore::get(store.as_ref(), &user, PeriodKey::AllTime)
                    .await
                    .unwrap()
                    .totals
                    .activities
            }
        };
        let v3 = v1.at_version(ProjectionVersion::new(3).unwrap());
        assert_eq!(all_time(v3.clone()).await, 0);
        assert_eq!(all_time(v3.at_version(ProjectionVersion::FIRST)).await, 0);
        assert_eq!(
            all_time(v3.at_version(ProjectionVersion::new(2).unwrap())).await,
            7
        );
    }
}
