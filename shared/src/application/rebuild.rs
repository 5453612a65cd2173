//! Rebuilding projections from the source of truth: a user's statistics (and achievement
//! progress) recomputed from their stored activities and written over the projection, while the
//! consumers keep applying events.
//!
//! # The cut-over against in-flight events
//!
//! A recomputed value counts every change the activity store has committed; the projection counts
//! every event a consumer has applied. Between the two are the events in flight: committed, not
//! yet applied (in the outbox, on the bus, in a queue). Writing the recomputed value and then
//! letting those events apply would count them twice; dropping events that commit after the
//! snapshot would count them never. A rebuild of one user therefore runs:
//!
//! 1. read the projection and its **revision** (every consumer write bumps it);
//! 2. read the user's activities (snapshot Z, strongly consistent), then take the **fence**
//!    `f = r + S`: `r` the rebuild's clock just after that read, `S` the **maximum clock skew**
//!    between the writers (the HTTP functions that stamp `occurred_at`) and the rebuild;
//! 3. wait the **settle** time `G`, read the activities again (snapshot A), and go on only if
//!    A = Z (same activities, same versions). Otherwise the user is busy: retried, then reported;
//! 4. write `recomputed(A) − projection` as one conditional write: only if the revision has not
//!    moved (no consumer wrote since step 1), and raising the user's fence to `f`;
//! 5. from then on a consumer adds an event only if it occurred at or after the fence; an event
//!    that occurred before it is recorded as processed and adds nothing, in the same conditional
//!    write the consumer makes anyway (the fence sits on the user's all-time item).
//!
//! Why it is exact. Assume a change commits within `C` of being stamped (the HTTP functions time
//! out after 10 s), every writer's clock is within `S` of the rebuild's, and `G ≥ 2S + C`
//! (defaults: `S` = 5 s, `G` = 30 s, so `2S + C` = 20 s). Let `t` be the instant just after Z's
//! read and `r(x)` the rebuild's clock at instant `x`, so `f = r(t) + S`; an event stamped at
//! instant `e` carries `occurred_at ∈ [r(e) − S, r(e) + S]`.
//! - an event with `occurred_at < f` has `r(e) < r(t) + 2S`, so it was stamped before `t + 2S`
//!   and committed before `t + 2S + C ≤ t + G`, i.e. before A's read. Committed before Z's read,
//!   it is in the snapshot and the fence makes the consumer skip it: counted once. Committed
//!   after, it is in A and not in Z: the user is busy and nothing is written;
//! - an event with `occurred_at ≥ f` has `r(e) ≥ r(t)`: it was stamped, so committed, after Z's
//!   read and is not in Z. Committed before A's read, A ≠ Z (busy); otherwise it is in neither
//!   snapshot and the consumer adds it: once. (With `f = r(t)`, a writer whose clock is ahead
//!   could stamp an event committed before Z's read with an `occurred_at` at or after the fence:
//!   counted by the snapshot and added again by the consumer.)
//! - an event applied between step 1 and step 4 moved the revision: nothing is written, retried;
//!   one applied before step 1 is in the projection read, and the correction accounts for it.
//!
//! The correction is a difference added with `ADD`, not a value put over the item, so the parts
//! of a user whose periods do not fit one transaction (see the DynamoDB adapter) commute with the
//! consumers' own `ADD`s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{
    Activity, ActivityId, CorrelationId, DomainEvent, EventId, EventPayload, Milestone, PeriodKey,
    Progress, StatsCorrection, UserId, UserStats, Version, corrections, recompute_all,
};

use super::ports::{
    AchievementProjectionStore, AchievementStore, ActivitySource, Award, AwardOutcome, Clock,
    CorrectionOutcome, EventPublisher, IdGenerator, Outbox, OutboxRecord, StatsProjectionStore,
    StoreError,
};

/// How a rebuild of one page of users behaves.
#[derive(Debug, Clone)]
pub struct RebuildSettings {
    /// The wait between the two snapshots (`G` above): at least twice `max_clock_skew` plus the
    /// time a change takes to commit after its event's `occurred_at` is stamped.
    pub settle: Duration,
    /// Rounds a busy user (activities changed during the settle time, or the projection written
    /// meanwhile) is tried before it is reported and left for a later run.
    pub attempts: u32,
    /// Compute and report the differences, write nothing.
    pub dry_run: bool,
    /// `S` above: how far the clocks of the writers and of the rebuild may differ. The fence is
    /// set `S` after the rebuild's clock, and `settle` must be at least `2S` plus the commit
    /// bound. Zero when writers and rebuild share one clock (one process).
    pub max_clock_skew: Duration,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(30),
            attempts: 3,
            dry_run: false,
            max_clock_skew: Duration::from_secs(5),
        }
    }
}

/// What became of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRebuild {
    /// The projection already held the recomputed values (the fence was still raised).
    Unchanged,
    /// The projection differed: these corrections were written (or, in a dry run, would be).
    Corrected(Vec<PeriodDifference>),
    /// Achievements: progress raised and these milestones awarded.
    Repaired {
        progress: Option<(Progress, Progress)>,
        awarded: Vec<Milestone>,
    },
    /// Still changing after every attempt: nothing written; run again later.
    Busy,
}

/// One period whose stored statistics differ from the recomputed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodDifference {
    pub period: PeriodKey,
    pub stored: UserStats,
    pub recomputed: UserStats,
    pub correction: StatsCorrection,
}

/// What one page of users came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageReport {
    pub users: Vec<(UserId, UserRebuild)>,
    /// Activities read to rebuild them (both snapshots, every round): what the read rate counts
    /// besides the scan.
    pub items_read: usize,
}

impl PageReport {
    pub fn count(&self, matches: impl Fn(&UserRebuild) -> bool) -> usize {
        self.users.iter().filter(|(_, r)| matches(r)).count()
    }
}

/// A projection that can be rebuilt a page of users at a time (what the runner drives).
#[async_trait::async_trait]
pub trait ProjectionRebuild: Send + Sync {
    async fn rebuild_users(
        &self,
        users: &[UserId],
        settings: &RebuildSettings,
    ) -> Result<PageReport, StoreError>;
}

/// A user's activities, reduced to what tells two snapshots apart.
fn fingerprint(activities: &[Activity]) -> Vec<(ActivityId, Version)> {
    let mut keys: Vec<(ActivityId, Version)> =
        activities.iter().map(|a| (a.id, a.version)).collect();
    keys.sort();
    keys
}

/// The statistics rebuild.
#[derive(Clone)]
pub struct StatsRebuild {
    source: Arc<dyn ActivitySource>,
    store: Arc<dyn StatsProjectionStore>,
    clock: Arc<dyn Clock>,
    /// Activities read since the last page report.
    items_read: Arc<std::sync::atomic::AtomicUsize>,
}

struct Pending {
    user: UserId,
    revision: u64,
    periods: BTreeMap<PeriodKey, UserStats>,
    snapshot: Vec<(ActivityId, Version)>,
    fence: OffsetDateTime,
}

impl StatsRebuild {
    pub fn new(
        source: Arc<dyn ActivitySource>,
        store: Arc<dyn StatsProjectionStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            source,
            store,
            clock,
            items_read: Arc::default(),
        }
    }

    fn read(&self, items: usize) {
        self.items_read
            .fetch_add(items, std::sync::atomic::Ordering::Relaxed);
    }

    /// Steps 1 and 2 for one user.
    async fn first_snapshot(
        &self,
        user: &UserId,
        max_clock_skew: Duration,
    ) -> Result<Pending, StoreError> {
        let projection = self.store.projection(user).await?;
        let activities = self.source.user_activities(user).await?;
        self.read(activities.len());
        Ok(Pending {
            user: user.clone(),
            revision: projection.revision,
            periods: projection.periods,
            snapshot: fingerprint(&activities),
            fence: self.clock.now() + max_clock_skew,
        })
    }

    /// Steps 3 and 4 for one user: `None` when it was busy.
    async fn settle_and_correct(
        &self,
        pending: &Pending,
        dry_run: bool,
    ) -> Result<Option<UserRebuild>, StoreError> {
        let activities = self.source.user_activities(&pending.user).await?;
        self.read(activities.len());
        if fingerprint(&activities) != pending.snapshot {
            return Ok(None);
        }
        let facts: Vec<_> = activities.iter().map(Activity::facts).collect();
        let recomputed = recompute_all(&facts);
        let fixes = corrections(&pending.periods, &recomputed);
        let differences: Vec<PeriodDifference> = fixes
            .iter()
            .map(|fix| PeriodDifference {
                period: fix.period,
                stored: pending
                    .periods
                    .get(&fix.period)
                    .cloned()
                    .unwrap_or_else(|| UserStats::empty(fix.period)),
                recomputed: recomputed
                    .get(&fix.period)
                    .cloned()
                    .unwrap_or_else(|| UserStats::empty(fix.period)),
                correction: fix.clone(),
            })
            .collect();
        let outcome = if differences.is_empty() {
            UserRebuild::Unchanged
        } else {
            UserRebuild::Corrected(differences)
        };
        if dry_run {
            return Ok(Some(outcome));
        }
        // Written even when nothing differs: the fence must still stop events in flight that
        // the snapshot already counts (the projection may match only because one is missing).
        match self
            .store
            .correct(&pending.user, pending.revision, pending.fence, &fixes)
            .await?
        {
            CorrectionOutcome::Corrected => Ok(Some(outcome)),
            CorrectionOutcome::RevisionMoved => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl ProjectionRebuild for StatsRebuild {
    /// Rebuilds a page of users together: one settle wait per round, not one per user.
    async fn rebuild_users(
        &self,
        users: &[UserId],
        settings: &RebuildSettings,
    ) -> Result<PageReport, StoreError> {
        let mut done: BTreeMap<UserId, UserRebuild> = BTreeMap::new();
        let mut left: Vec<UserId> = users.to_vec();
        for _ in 0..settings.attempts.max(1) {
            if left.is_empty() {
                break;
            }
            let mut pending = Vec::with_capacity(left.len());
            for user in &left {
                pending.push(self.first_snapshot(user, settings.max_clock_skew).await?);
            }
            tokio::time::sleep(settings.settle).await;
            let mut busy = Vec::new();
            for user in pending {
                match self.settle_and_correct(&user, settings.dry_run).await? {
                    Some(outcome) => {
                        done.insert(user.user, outcome);
                    }
                    None => busy.push(user.user),
                }
            }
            left = busy;
        }
        for user in left {
            tracing::warn!(user_id = %user, "user kept changing during the rebuild; left for a later run");
            done.insert(user, UserRebuild::Busy);
        }
        Ok(PageReport {
            users: users
                .iter()
                .filter_map(|u| done.remove(u).map(|r| (u.clone(), r)))
                .collect(),
            items_read: self
                .items_read
                .swap(0, std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// The achievements rebuild: progress is raised to what the user's stored activities add up to
/// (never lowered: progress counts every activity ever recorded, deleted ones too, which the
/// store no longer holds), and every milestone the progress reaches and the user lacks is
/// awarded through the same once-only write the consumer uses, so an award already granted is
/// never granted again. An award's `achievement.unlocked` event is written to the outbox with it;
/// with a publisher it is published at once, without one (the operator's command: the bus policy
/// lets only the stack's functions put activelog events) the outbox relay publishes it.
///
/// Progress has no fence (the consumer's progress write does not carry the event's time): a
/// `activity.created` in flight while a user's progress is *raised* is counted once more. Progress
/// is raised only when it was lost (below what the stored activities add up to), and the
/// over-count is at most the events in flight; awards are never duplicated either way.
#[derive(Clone)]
pub struct AchievementsRebuild {
    source: Arc<dyn ActivitySource>,
    projection: Arc<dyn AchievementProjectionStore>,
    awards: Arc<dyn AchievementStore>,
    outbox: Arc<dyn Outbox>,
    publisher: Option<Arc<dyn EventPublisher>>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    items_read: Arc<std::sync::atomic::AtomicUsize>,
}

impl AchievementsRebuild {
    pub fn new(
        source: Arc<dyn ActivitySource>,
        projection: Arc<dyn AchievementProjectionStore>,
        awards: Arc<dyn AchievementStore>,
        outbox: Arc<dyn Outbox>,
        publisher: Option<Arc<dyn EventPublisher>>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            source,
            projection,
            awards,
            outbox,
            publisher,
            clock,
            ids,
            items_read: Arc::default(),
        }
    }

    async fn rebuild_user(
        &self,
        user: &UserId,
        dry_run: bool,
    ) -> Result<Option<UserRebuild>, StoreError> {
        let projection = self.projection.progress_projection(user).await?;
        let activities = self.source.user_activities(user).await?;
        self.items_read
            .fetch_add(activities.len(), std::sync::atomic::Ordering::Relaxed);
        let mut recomputed = Progress::default();
        for activity in &activities {
            recomputed.add(&Progress::of(&activity.facts()));
        }
        let stored = projection.standing.progress;
        let raised = Progress {
            activities: stored.activities.max(recomputed.activities),
            minutes: stored.minutes.max(recomputed.minutes),
            distance_m: stored.distance_m.max(recomputed.distance_m),
        };
        let progress_change = (raised != stored).then_some((stored, raised));
        let due: Vec<Milestone> = Milestone::reached_by(&raised)
            .filter(|m| !projection.standing.has(*m))
            .collect();
        if dry_run {
            return Ok(Some(if progress_change.is_none() && due.is_empty() {
                UserRebuild::Unchanged
            } else {
                UserRebuild::Repaired {
                    progress: progress_change,
                    awarded: due,
                }
            }));
        }
        if progress_change.is_some()
            && self
                .projection
                .set_progress(user, projection.revision, &raised)
                .await?
                == CorrectionOutcome::RevisionMoved
        {
            return Ok(None);
        }
        let mut awarded = Vec::new();
        let mut committed = Vec::new();
        for milestone in due {
            let event = self.unlocked_event(user, milestone);
            let record = OutboxRecord::for_event(&event, None);
            let award = Award {
                user_id: user.clone(),
                milestone,
                event_id: event.event_id,
                awarded_at: event.occurred_at,
            };
            if self.awards.award(&award, &record).await? == AwardOutcome::Awarded {
                awarded.push(milestone);
                committed.push(record);
            }
        }
        if let Some(publisher) = &self.publisher {
            super::publishing::publish_committed(
                publisher.as_ref(),
                self.outbox.as_ref(),
                &committed,
            )
            .await;
        }
        Ok(Some(if progress_change.is_none() && awarded.is_empty() {
            UserRebuild::Unchanged
        } else {
            UserRebuild::Repaired {
                progress: progress_change,
                awarded,
            }
        }))
    }

    fn unlocked_event(&self, user: &UserId, milestone: Milestone) -> DomainEvent {
        let id = self.ids.next_ulid();
        DomainEvent {
            event_id: EventId::from_ulid(id),
            occurred_at: self.clock.now(),
            aggregate_id: user.as_str().to_owned(),
            user_id: user.clone(),
            correlation_id: CorrelationId::parse(&format!("rebuild-{id}"))
                .unwrap_or_else(|_| CorrelationId::generate()),
            payload: EventPayload::AchievementUnlocked {
                achievement: milestone.id().to_owned(),
                description: milestone.description().to_owned(),
            },
            trace_parent: crate::traces::current(),
        }
    }
}

#[async_trait::async_trait]
impl ProjectionRebuild for AchievementsRebuild {
    async fn rebuild_users(
        &self,
        users: &[UserId],
        settings: &RebuildSettings,
    ) -> Result<PageReport, StoreError> {
        let mut report = PageReport::default();
        for user in users {
            let mut outcome = UserRebuild::Busy;
            for _ in 0..settings.attempts.max(1) {
                if let Some(done) = self.rebuild_user(user, settings.dry_run).await? {
                    outcome = done;
                    break;
                }
            }
            report.users.push((user.clone(), outcome));
        }
        report.items_read = self
            .items_read
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        Ok(report)
    }
}
