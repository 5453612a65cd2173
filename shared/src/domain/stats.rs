//! Statistics as sums of deltas. Every event turns into a [`StatsDelta`]: signed changes to the
//! totals of the periods its activity falls in. Because addition commutes, applying each event's
//! delta exactly once, in any order, gives the same totals — consumers need deduplication, not
//! ordering.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use super::events::{ActivityFacts, DomainEvent, EventPayload};
use super::fields::{ActivityType, UserId};
use super::validation::FieldError;

/// Sums over a set of activities. Signed, because a delta can take away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub activities: i64,
    pub minutes: i64,
    pub distance_m: i64,
    pub calories: i64,
}

impl Totals {
    fn of(facts: &ActivityFacts, sign: i64) -> Self {
        Self {
            activities: sign,
            minutes: sign * i64::from(facts.duration_minutes),
            distance_m: sign * i64::from(facts.distance_m.unwrap_or(0)),
            calories: sign * i64::from(facts.calories_burned.unwrap_or(0)),
        }
    }

    pub fn add(&mut self, other: &Totals) {
        self.activities += other.activities;
        self.minutes += other.minutes;
        self.distance_m += other.distance_m;
        self.calories += other.calories;
    }

    pub fn is_zero(&self) -> bool {
        *self == Totals::default()
    }
}

/// A period statistics are kept for: all time, an ISO week, or a calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeriodKey {
    AllTime,
    /// ISO 8601 week: the year is the ISO week-numbering year (2024-12-30 is in `2025-W01`).
    Week {
        year: i32,
        week: u8,
    },
    Month {
        year: i32,
        month: u8,
    },
}

impl PeriodKey {
    /// The three periods a day counts towards.
    pub fn containing(date: Date) -> [PeriodKey; 3] {
        let (iso_year, week, _) = date.to_iso_week_date();
        [
            PeriodKey::AllTime,
            PeriodKey::Week {
                year: iso_year,
                week,
            },
            PeriodKey::Month {
                year: date.year(),
                month: u8::from(date.month()),
            },
        ]
    }

    pub fn week_of(date: Date) -> Self {
        Self::containing(date)[1]
    }

    pub fn month_of(date: Date) -> Self {
        Self::containing(date)[2]
    }

    /// Parses `all`, `2026-W48` or `2026-11`, the forms [`fmt::Display`] writes.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("period", "must be `all`, `YYYY-Www` or `YYYY-MM`");
        if raw == "all" {
            return Ok(Self::AllTime);
        }
        let (year, rest) = raw.split_once('-').ok_or_else(invalid)?;
        let year: i32 = year.parse().map_err(|_| invalid())?;
        if year.to_string().len() != 4 {
            return Err(invalid());
        }
        if let Some(week) = rest.strip_prefix('W') {
            let week: u8 = week.parse().map_err(|_| invalid())?;
            if week == 0 || week > time::util::weeks_in_year(year) || rest.len() != 3 {
                return Err(invalid());
            }
            return Ok(Self::Week { year, week });
        }
        let month: u8 = rest.parse().map_err(|_| invalid())?;
        Month::try_from(month).map_err(|_| invalid())?;
        if rest.len() != 2 {
            return Err(invalid());
        }
        Ok(Self::Month { year, month })
    }
}

impl fmt::Display for PeriodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AllTime => f.write_str("all"),
            Self::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            Self::Month { year, month } => write!(f, "{year:04}-{month:02}"),
        }
    }
}

/// One signed change to one user's totals for one period and activity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsChange {
    pub period: PeriodKey,
    pub activity_type: ActivityType,
    pub totals: Totals,
}

/// The changes one or more events make to one user's statistics, merged per (period, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsDelta {
    pub user_id: UserId,
    changes: BTreeMap<(PeriodKey, ActivityType), Totals>,
    /// When the oldest event merged into this delta occurred. A store compares it with the
    /// user's rebuild fence (`docs/operations.md`): an event that occurred before the fence is
    /// already counted by the rebuild and must not be added again.
    pub earliest_occurred_at: Option<OffsetDateTime>,
}

impl StatsDelta {
    pub fn empty(user_id: UserId) -> Self {
        Self {
            user_id,
            changes: BTreeMap::new(),
            earliest_occurred_at: None,
        }
    }

    /// The delta an event makes, or `None` for events statistics do not count.
    pub fn from_event(event: &DomainEvent) -> Option<Self> {
        let mut delta = Self::empty(event.user_id.clone());
        delta.earliest_occurred_at = Some(event.occurred_at);
        match &event.payload {
            EventPayload::ActivityCreated { facts, .. } => delta.add_facts(facts, 1),
            EventPayload::ActivityUpdated { before, after, .. } => {
                delta.add_facts(before, -1);
                delta.add_facts(after, 1);
            }
            EventPayload::ActivityDeleted { deleted, .. } => delta.add_facts(deleted, -1),
            EventPayload::AchievementUnlocked { .. } => return None,
        }
        Some(delta)
    }

    fn add_facts(&mut self, facts: &ActivityFacts, sign: i64) {
        let totals = Totals::of(facts, sign);
        for period in PeriodKey::containing(facts.activity_date.date()) {
            self.add_change(StatsChange {
                period,
                activity_type: facts.activity_type,
                totals,
            });
        }
    }

    fn add_change(&mut self, change: StatsChange) {
        let key = (change.period, change.activity_type);
        let entry = self.changes.entry(key).or_default();
        entry.add(&change.totals);
        if entry.is_zero() {
            self.changes.remove(&key);
        }
    }

    /// Adds another delta of the same user into this one.
    pub fn merge(&mut self, other: &StatsDelta) {
        debug_assert_eq!(self.user_id, other.user_id);
        for change in other.changes() {
            self.add_change(change);
        }
        self.earliest_occurred_at = match (self.earliest_occurred_at, other.earliest_occurred_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn changes(&self) -> impl Iterator<Item = StatsChange> + '_ {
        self.changes
            .iter()
            .map(|(&(period, activity_type), &totals)| StatsChange {
                period,
                activity_type,
                totals,
            })
    }

    /// The periods this delta touches (each one stats item in a store).
    pub fn periods(&self) -> Vec<PeriodKey> {
        let mut periods: Vec<PeriodKey> = self.changes.keys().map(|(p, _)| *p).collect();
        periods.dedup();
        periods
    }

    /// True when the delta changes nothing (an update that moved no statistic).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// One user's statistics for one period: totals and the same per activity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStats {
    pub period: PeriodKey,
    pub totals: Totals,
    pub by_type: BTreeMap<ActivityType, Totals>,
}

impl UserStats {
    pub fn empty(period: PeriodKey) -> Self {
        Self {
            period,
            totals: Totals::default(),
            by_type: BTreeMap::new(),
        }
    }

    /// Adds one change for this period; types whose totals return to zero disappear.
    pub fn apply(&mut self, activity_type: ActivityType, totals: &Totals) {
        self.totals.add(totals);
        let entry = self.by_type.entry(activity_type).or_default();
        entry.add(totals);
        if entry.is_zero() {
            self.by_type.remove(&activity_type);
        }
    }

    /// Recomputes statistics from scratch from a set of activities: the reference the property
    /// tests compare the incremental path against.
    pub fn recompute<'a>(
        period: PeriodKey,
        activities: impl IntoIterator<Item = &'a ActivityFacts>,
    ) -> Self {
        let mut stats = Self::empty(period);
        for facts in activities {
            if PeriodKey::containing(facts.activity_date.date()).contains(&period) {
                stats.apply(facts.activity_type, &Totals::of(facts, 1));
            }
        }
        stats
    }
}

/// Every period's statistics of one user, recomputed from their activities: what a rebuild
/// writes. Periods with no activity are absent.
pub fn recompute_all<'a>(
    activities: impl IntoIterator<Item = &'a ActivityFacts>,
) -> BTreeMap<PeriodKey, UserStats> {
    let mut all: BTreeMap<PeriodKey, UserStats> = BTreeMap::new();
    for facts in activities {
        let totals = Totals::of(facts, 1);
        for period in PeriodKey::containing(facts.activity_date.date()) {
            all.entry(period)
                .or_insert_with(|| UserStats::empty(period))
                .apply(facts.activity_type, &totals);
        }
    }
    all
}

/// What turns one period's stored statistics into the recomputed ones: signed differences of the
/// totals and of each type's totals, kept apart because a corrupted item need not be
/// self-consistent (its totals need not be the sum of its types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsCorrection {
    pub period: PeriodKey,
    pub totals: Totals,
    pub by_type: BTreeMap<ActivityType, Totals>,
}

impl StatsCorrection {
    /// The correction from `current` to `truth` (the same period), or `None` when they agree.
    pub fn between(current: &UserStats, truth: &UserStats) -> Option<Self> {
        let difference = |to: &Totals, from: &Totals| Totals {
            activities: to.activities - from.activities,
            minutes: to.minutes - from.minutes,
            distance_m: to.distance_m - from.distance_m,
            calories: to.calories - from.calories,
        };
        let mut by_type = BTreeMap::new();
        for activity_type in ActivityType::ALL {
            let zero = Totals::default();
            let to = truth.by_type.get(&activity_type).unwrap_or(&zero);
            let from = current.by_type.get(&activity_type).unwrap_or(&zero);
            let change = difference(to, from);
            if !change.is_zero() {
                by_type.insert(activity_type, change);
            }
        }
        let totals = difference(&truth.totals, &current.totals);
        (!totals.is_zero() || !by_type.is_empty()).then_some(Self {
            period: truth.period,
            totals,
            by_type,
        })
    }

    /// Adds the correction to a period's statistics (what a store does under its lock).
    pub fn apply_to(&self, stats: &mut UserStats) {
        stats.totals.add(&self.totals);
        for (activity_type, change) in &self.by_type {
            let entry = stats.by_type.entry(*activity_type).or_default();
            entry.add(change);
            if entry.is_zero() {
                stats.by_type.remove(activity_type);
            }
        }
    }
}

/// The corrections that make `current` (every stored period of one user) equal `truth`, one per
/// period that differs; periods stored but absent from `truth` are corrected to zero.
pub fn corrections(
    current: &BTreeMap<PeriodKey, UserStats>,
    truth: &BTreeMap<PeriodKey, UserStats>,
) -> Vec<StatsCorrection> {
    let periods: std::collections::BTreeSet<PeriodKey> =
        current.keys().chain(truth.keys()).copied().collect();
    periods
        .into_iter()
        .filter_map(|period| {
            let empty = UserStats::empty(period);
            StatsCorrection::between(
                current.get(&period).unwrap_or(&empty),
                truth.get(&period).unwrap_or(&empty),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fields::ActivityDate;
    use time::macros::date;

    fn facts(day: Date, activity_type: ActivityType, minutes: u32) -> ActivityFacts {
        ActivityFacts {
            activity_type,
            duration_minutes: minutes,
            distance_m: Some(1000),
            calories_burned: Some(100),
            activity_date: ActivityDate::from_date(day),
        }
    }

    #[test]
    fn periods_use_iso_weeks() {
        assert_eq!(
            PeriodKey::containing(date!(2026 - 11 - 26)).map(|p| p.to_string()),
            ["all".to_string(), "2026-W48".into(), "2026-11".into()]
        );
        assert_eq!(
            PeriodKey::week_of(date!(2024 - 12 - 30)).to_string(),
            "2025-W01"
        );
        assert_eq!(
            PeriodKey::week_of(date!(2027 - 01 - 01)).to_string(),
            "2026-W53"
        );
    }

    #[test]
    fn period_keys_round_trip() {
        for raw in ["all", "2026-W48", "2026-W53", "2026-11", "2026-01"] {
            assert_eq!(PeriodKey::parse(raw).unwrap().to_string(), raw);
        }
        for bad in [
            "", "2026", "2026-13", "2026-W54", "2025-W53", "2026-W0", "26-11", "2026-1",
        ] {
            assert!(PeriodKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_update_moving_date_and_type_moves_the_totals() {
        let before = facts(date!(2026 - 10 - 31), ActivityType::Running, 30);
        let after = facts(date!(2026 - 11 - 02), ActivityType::Walking, 30);
        let mut delta = StatsDelta::empty(UserId::parse("u").unwrap());
        delta.add_facts(&before, -1);
        delta.add_facts(&after, 1);
        let all: Vec<StatsChange> = delta
            .changes()
            .filter(|c| c.period == PeriodKey::AllTime)
            .collect();
        assert_eq!(all.len(), 2, "all-time moves from running to walking");
        assert_eq!(all.iter().map(|c| c.totals.activities).sum::<i64>(), 0);
        assert!(delta.periods().contains(&PeriodKey::Month {
            year: 2026,
            month: 10
        }));
        assert!(delta.periods().contains(&PeriodKey::Month {
            year: 2026,
            month: 11
        }));
    }

    #[test]
    fn an_update_that_changes_no_statistic_is_empty() {
        let same = facts(date!(2026 - 11 - 02), ActivityType::Yoga, 60);
        let mut delta = StatsDelta::empty(UserId::parse("u").unwrap());
        delta.add_facts(&same, -1);
        delta.add_facts(&same, 1);
        assert!(delta.is_empty());
    }

    #[test]
    fn corrections_turn_a_corrupted_projection_into_the_recomputed_one() {
        let activities = [
            facts(date!(2026 - 11 - 02), ActivityType::Running, 30),
            facts(date!(2026 - 11 - 20), ActivityType::Yoga, 60),
        ];
        let truth = recompute_all(&activities);
        let mut current = truth.clone();
        // Corrupted: the all-time totals alone, and a period that should not exist.
        current.get_mut(&PeriodKey::AllTime).unwrap().totals.minutes += 7;
        let stray = PeriodKey::Month {
            year: 2020,
            month: 1,
        };
        let mut stray_stats = UserStats::empty(stray);
        stray_stats.apply(ActivityType::Walking, &Totals::of(&activities[0], 1));
        current.insert(stray, stray_stats);
        let fixes = corrections(&current, &truth);
        assert_eq!(fixes.len(), 2);
        for fix in &fixes {
            fix.apply_to(current.get_mut(&fix.period).unwrap());
        }
        assert_eq!(current.remove(&stray).unwrap(), UserStats::empty(stray));
        assert_eq!(current, truth);
        assert!(corrections(&truth, &truth).is_empty());
    }
}
