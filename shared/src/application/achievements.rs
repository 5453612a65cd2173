//! Awarding milestones: the second consumer of `activity.created`, showing fan-out. It needs no
//! ordering and survives a crash at any point, in two steps:
//!
//! 1. count the event: record its id as processed and add the activity to the user's progress, in
//!    one atomic write (a redelivery is recognised and adds nothing);
//! 2. award every milestone the progress has reached and the user does not have yet: each award is
//!    written with the outbox record of its `achievement.unlocked` event atomically and only once,
//!    then published at once (the outbox relay publishes whatever that misses).
//!
//! Step 2 also runs when step 1 finds a duplicate, so a crash between the steps is repaired by the
//! redelivery of the same message. An award depends only on the progress sum, never on which event
//! crossed the threshold, so concurrent consumers at worst race for the same award, and the
//! conditional write lets exactly one of them make it.

use std::sync::Arc;

use crate::domain::{DomainEvent, EventId, EventPayload, Milestone, Progress};

use super::errors::UseCaseError;
use super::ports::{AchievementStanding, AchievementStore, Award, AwardOutcome};
use super::ports::{
    ApplyOutcome, Clock, EventPublisher, IdGenerator, Outbox, OutboxRecord, StoreError,
};
use super::request_context::RequestContext;
use crate::functions::ConsumerFunction;

/// The name the achievements consumer's processed-event markers are kept under.
const ACHIEVEMENTS_CONSUMER: &str = ConsumerFunction::RecordAchievements.name();

/// What step 1 did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Added to the user's progress.
    Counted,
    /// Counted before (a redelivery or a duplicate); nothing added.
    Duplicate,
    /// Not an event progress counts (only `activity.created` is).
    NotCounted,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub counting: Counting,
    /// Milestones awarded while handling this event.
    pub unlocked: Vec<Milestone>,
}

#[derive(Clone)]
pub struct AchievementRecorder {
    store: Arc<dyn AchievementStore>,
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl AchievementRecorder {
    pub fn new(
        store: Arc<dyn AchievementStore>,
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            store,
            outbox,
            publisher,
            clock,
            ids,
        }
    }

    /// Counts one event and awards what it (or an earlier, interrupted attempt) made due. A store
    /// failure is returned so that the message is retried; nothing counted twice on the retry.
    pub async fn record(&self, event: &DomainEvent) -> Result<Recorded, StoreError> {
        let EventPayload::ActivityCreated { facts, .. } = &event.payload else {
            return Ok(Recorded {
                counting: Counting::NotCounted,
                unlocked: Vec::new(),
            });
        };
        let progress = Progress::of(facts);
        let counting = match super::retry::retry_conflicts(is_conflict, || {
            self.store.record_progress(
                ACHIEVEMENTS_CONSUMER,
                event.event_id,
                &event.user_id,
                &progress,
            )
        })
        .await?
        {
            ApplyOutcome::Applied => Counting::Counted,
            ApplyOutcome::Duplicate => {
                tracing::info!(event_id = %event.event_id, "event counted before; checking for awards still due");
                Counting::Duplicate
            }
        };
        let unlocked = self.award_due(event).await?;
        Ok(Recorded { counting, unlocked })
    }

    /// Step 2: awards every milestone reached and not yet awarded, then publishes the awards'
    /// events. Awards written before a failure are still published before the error is returned.
    async fn award_due(&self, cause: &DomainEvent) -> Result<Vec<Milestone>, StoreError> {
        let standing = self.store.standing(&cause.user_id).await?;
        let mut unlocked = Vec::new();
        let mut committed = Vec::new();
        let mut failure = None;
        for milestone in standing.due() {
            let event = self.unlocked_event(cause, milestone);
            let record = OutboxRecord::for_event(&event, None);
            let award = Award {
                user_id: cause.user_id.clone(),
                milestone,
                event_id: event.event_id,
                awarded_at: event.occurred_at,
            };
            match super::retry::retry_conflicts(is_conflict, || self.store.award(&award, &record))
                .await
            {
                Ok(AwardOutcome::Awarded) => {
                    tracing::info!(achievement = milestone.id(), event_id = %event.event_id, "achievement unlocked");
                    unlocked.push(milestone);
                    committed.push(record);
                }
                // A concurrent consumer made this award first; its event is on its way.
                Ok(AwardOutcome::AlreadyAwarded) => {}
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        super::publishing::publish_committed(
            self.publisher.as_ref(),
            self.outbox.as_ref(),
            &committed,
        )
        .await;
        match failure {
            Some(error) => Err(error),
            None => Ok(unlocked),
        }
    }

    fn unlocked_event(&self, cause: &DomainEvent, milestone: Milestone) -> DomainEvent {
        DomainEvent {
            event_id: EventId::from_ulid(self.ids.next_ulid()),
            occurred_at: self.clock.now(),
            // An achievement is about the user, not about one activity.
            aggregate_id: cause.user_id.as_str().to_owned(),
            user_id: cause.user_id.clone(),
            // The award is a consequence of the request that recorded the activity.
            correlation_id: cause.correlation_id.clone(),
            // The span of the message being recorded, itself in the trace of that request.
            trace_parent: crate::traces::current(),
            payload: EventPayload::AchievementUnlocked {
                achievement: milestone.id().to_owned(),
                description: milestone.description().to_owned(),
            },
        }
    }
}

/// A lost race on the user's progress or award items: retried in-process, as the stats are
/// (`retry.rs`), before the message is handed back to the queue.
fn is_conflict(error: &StoreError) -> bool {
    matches!(error, StoreError::TransactionConflict)
}

/// Reading a user's achievements, for `GET /achievements`.
#[derive(Clone)]
pub struct AchievementQueries {
    store: Arc<dyn AchievementStore>,
}

impl AchievementQueries {
    pub fn new(store: Arc<dyn AchievementStore>) -> Self {
        Self { store }
    }

    pub async fn get(&self, ctx: &RequestContext) -> Result<AchievementStanding, UseCaseError> {
        Ok(self.store.standing(&ctx.user_id).await?)
    }
}
