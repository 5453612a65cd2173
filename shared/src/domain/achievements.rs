//! Achievements: milestones a user reaches by recording activities. A user's [`Progress`] is the sum
//! of every activity they ever recorded (each `activity.created` event counted once), so it only
//! grows: an award, once earned, stays earned even if the activity that earned it is deleted later.
//! Because progress is a sum, events may be counted in any order; which milestones are reached
//! depends only on the sum, never on which event crossed the line.

use serde::{Deserialize, Serialize};

use super::events::ActivityFacts;

/// What a user has recorded, all time: the counters milestones are measured against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub activities: u64,
    pub minutes: u64,
    /// Whole metres, like the events carry them.
    pub distance_m: u64,
}

impl Progress {
    /// The progress one recorded activity adds.
    pub fn of(facts: &ActivityFacts) -> Self {
        Self {
            activities: 1,
            minutes: u64::from(facts.duration_minutes),
            distance_m: u64::from(facts.distance_m.unwrap_or(0)),
        }
    }

    pub fn add(&mut self, other: &Progress) {
        self.activities += other.activities;
        self.minutes += other.minutes;
        self.distance_m += other.distance_m;
    }
}

/// A milestone. The serde form (and [`Milestone::id`]) is the stable id events and the API carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    FirstActivity,
    TenActivities,
    HundredActivities,
    ThousandMinutes,
    HundredKilometres,
    ThousandKilometres,
}

impl Milestone {
    pub const ALL: [Milestone; 6] = [
        Self::FirstActivity,
        Self::TenActivities,
        Self::HundredActivities,
        Self::ThousandMinutes,
        Self::HundredKilometres,
        Self::ThousandKilometres,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::FirstActivity => "first_activity",
            Self::TenActivities => "ten_activities",
            Self::HundredActivities => "hundred_activities",
            Self::ThousandMinutes => "thousand_minutes",
            Self::HundredKilometres => "hundred_kilometres",
            Self::ThousandKilometres => "thousand_kilometres",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.id() == raw)
    }

    /// What the user did to earn it, for people.
    pub fn description(self) -> &'static str {
        match self {
            Self::FirstActivity => "Recorded a first activity",
            Self::TenActivities => "Recorded 10 activities",
            Self::HundredActivities => "Recorded 100 activities",
            Self::ThousandMinutes => "Spent 1000 minutes being active",
            Self::HundredKilometres => "Covered 100 km",
            Self::ThousandKilometres => "Covered 1000 km",
        }
    }

    pub fn is_reached(self, progress: &Progress) -> bool {
        match self {
            Self::FirstActivity => progress.activities >= 1,
            Self::TenActivities => progress.activities >= 10,
            Self::HundredActivities => progress.activities >= 100,
            Self::ThousandMinutes => progress.minutes >= 1000,
            Self::HundredKilometres => progress.distance_m >= 100_000,
            Self::ThousandKilometres => progress.distance_m >= 1_000_000,
        }
    }

    /// Every milestone `progress` has reached, in [`Milestone::ALL`] order.
    pub fn reached_by(progress: &Progress) -> impl Iterator<Item = Milestone> + '_ {
        Self::ALL.into_iter().filter(|m| m.is_reached(progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_serde_form_and_parse_back() {
        for milestone in Milestone::ALL {
            assert_eq!(
                serde_json::to_value(milestone).unwrap(),
                serde_json::Value::from(milestone.id())
            );
            assert_eq!(Milestone::parse(milestone.id()), Some(milestone));
        }
        assert_eq!(Milestone::parse("marathon"), None);
    }

    #[test]
    fn milestones_are_reached_at_their_thresholds_and_not_before() {
        let reached = |p: Progress| Milestone::reached_by(&p).collect::<Vec<_>>();
        assert!(reached(Progress::default()).is_empty());
        let one = Progress {
            activities: 1,
            minutes: 999,
            distance_m: 99_999,
        };
        assert_eq!(reached(one), [Milestone::FirstActivity]);
        let more = Progress {
            activities: 10,
            minutes: 1000,
            distance_m: 100_000,
        };
        assert_eq!(
            reached(more),
            [
                Milestone::FirstActivity,
                Milestone::TenActivities,
                Milestone::ThousandMinutes,
                Milestone::HundredKilometres
            ]
        );
    }
}
