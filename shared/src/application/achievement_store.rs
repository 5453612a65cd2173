//! The port the achievements consumer keeps its state behind: per-user progress, the awards made,
//! and which events were counted. Its two writes are each atomic, which is what lets the recorder
//! survive a crash between them (see `application::achievements`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{EventId, Milestone, Progress, UserId};

use super::ports::{ApplyOutcome, OutboxRecord, StoreError};

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
