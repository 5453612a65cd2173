//! Achievement progress, awards and processed-event markers in one mutex. Award outbox records go
//! to the activity store's outbox, as they go to the one table in DynamoDB, so the same outbox
//! relay publishes whatever the recorder could not.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::application::{
    AchievementProjectionStore, AchievementStanding, AchievementStore, ApplyOutcome, Award,
    AwardOutcome, CorrectionOutcome, OutboxRecord, ProgressProjection, StoreError,
};
use crate::domain::{EventId, Milestone, Progress, UserId};

use super::activity_store::MemoryActivityStore;

/// One call to the store, for tests that count what an event costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AchievementStoreCall {
    RecordProgress { event_id: EventId },
    Standing,
    Award { milestone: Milestone },
}

impl AchievementStoreCall {
    pub fn is_write(&self) -> bool {
        !matches!(self, Self::Standing)
    }
}

#[derive(Default)]
struct State {
    progress: HashMap<UserId, Progress>,
    /// Bumped by every progress write, as the DynamoDB progress item's `projection_rev`.
    revisions: HashMap<UserId, u64>,
    awards: BTreeMap<(UserId, Milestone), Award>,
    processed: HashSet<(String, EventId)>,
    calls: Vec<AchievementStoreCall>,
    /// Failures to answer with, once each.
    progress_faults: HashMap<EventId, StoreError>,
    award_faults: Vec<StoreError>,
}

pub struct MemoryAchievementStore {
    state: Mutex<State>,
    outbox: Arc<MemoryActivityStore>,
}

impl MemoryAchievementStore {
    /// A store whose award events go to `outbox`.
    pub fn new(outbox: Arc<MemoryActivityStore>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            outbox,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<AchievementStoreCall> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The next `record_progress` of `event_id` fails with `error`, writing nothing.
    pub fn fail_next_progress_of(&self, event_id: EventId, error: StoreError) {
        self.lock().progress_faults.insert(event_id, error);
    }

    /// Replaces a user's progress, bypassing everything: how a test corrupts it on purpose.
    pub fn overwrite_progress(&self, user_id: &UserId, progress: Progress) {
        self.lock().progress.insert(user_id.clone(), progress);
    }

    /// The next `award` fails with `error`, writing nothing.
    pub fn fail_next_award(&self, error: StoreError) {
        self.lock().award_faults.push(error);
    }
}

#[async_trait]
impl AchievementStore for MemoryAchievementStore {
    async fn record_progress(
        &self,
        consumer: &str,
        event_id: EventId,
        user_id: &UserId,
        added: &Progress,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut state = self.lock();
        super::log_call(
            &mut state.calls,
            AchievementStoreCall::RecordProgress { event_id },
        );
        if let Some(error) = state.progress_faults.remove(&event_id) {
            return Err(error);
        }
        if !state.processed.insert((consumer.to_owned(), event_id)) {
            return Ok(ApplyOutcome::Duplicate);
        }
        state
            .progress
            .entry(user_id.clone())
            .or_default()
            .add(added);
        *state.revisions.entry(user_id.clone()).or_default() += 1;
        Ok(ApplyOutcome::Applied)
    }

    async fn standing(&self, user_id: &UserId) -> Result<AchievementStanding, StoreError> {
        let mut state = self.lock();
        super::log_call(&mut state.calls, AchievementStoreCall::Standing);
        let mut awards: Vec<Award> = state
            .awards
            .iter()
            .filter(|((owner, _), _)| owner == user_id)
            .map(|(_, award)| award.clone())
            .collect();
        awards.sort_by_key(|a| (a.awarded_at, a.event_id));
        Ok(AchievementStanding {
            progress: state.progress.get(user_id).copied().unwrap_or_default(),
            awards,
        })
    }

    async fn award(
        &self,
        award: &Award,
        outbox: &OutboxRecord,
    ) -> Result<AwardOutcome, StoreError> {
        let mut state = self.lock();
        super::log_call(
            &mut state.calls,
            AchievementStoreCall::Award {
                milestone: award.milestone,
            },
        );
        if !state.award_faults.is_empty() {
            return Err(state.award_faults.remove(0));
        }
        let key = (award.user_id.clone(), award.milestone);
        if state.awards.contains_key(&key) {
            return Ok(AwardOutcome::AlreadyAwarded);
        }
        // Both writes happen while this store's lock is held: one transaction, as in DynamoDB.
        self.outbox.put_outbox_record(outbox.clone());
        state.awards.insert(key, award.clone());
        Ok(AwardOutcome::Awarded)
    }
}

#[async_trait]
impl AchievementProjectionStore for MemoryAchievementStore {
    async fn progress_projection(
        &self,
        user_id: &UserId,
    ) -> Result<ProgressProjection, StoreError> {
        let revision = self.lock().revisions.get(user_id).copied().unwrap_or(0);
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
        let mut state = self.lock();
        if state.revisions.get(user_id).copied().unwrap_or(0) != expected_revision {
            return Ok(CorrectionOutcome::RevisionMoved);
        }
        state.progress.insert(user_id.clone(), *progress);
        *state.revisions.entry(user_id.clone()).or_default() += 1;
        Ok(CorrectionOutcome::Corrected)
    }
}
