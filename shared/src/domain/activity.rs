//! An activity and the two ways it changes: created from a draft, or changed by a patch. Both
//! are built from already-parsed fields, so applying them cannot fail on a bad value.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::events::ActivityFacts;
use super::fields::{
    ActivityDate, ActivityId, ActivityTitle, ActivityType, Calories, Distance, DurationMinutes,
    FreeText, Tags, UserId, Version,
};

/// One recorded activity, owned by one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: ActivityId,
    pub user_id: UserId,
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    pub title: ActivityTitle,
    pub description: Option<FreeText>,
    pub notes: Option<FreeText>,
    #[serde(rename = "duration_minutes")]
    pub duration: DurationMinutes,
    /// Stored in whole metres.
    #[serde(rename = "distance_m")]
    pub distance: Option<Distance>,
    #[serde(rename = "calories_burned")]
    pub calories: Option<Calories>,
    #[serde(default)]
    pub tags: Tags,
    pub activity_date: ActivityDate,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: Version,
}

/// The parsed fields of a new activity, before it has an id, an owner or timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityDraft {
    pub activity_type: ActivityType,
    pub title: ActivityTitle,
    pub description: Option<FreeText>,
    pub notes: Option<FreeText>,
    pub duration: DurationMinutes,
    pub distance: Option<Distance>,
    pub calories: Option<Calories>,
    pub tags: Tags,
    pub activity_date: ActivityDate,
}

/// What a patch does to one optional field: leave it, set it, or clear it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Set(T),
    Clear,
}

impl<T: Clone> Change<T> {
    fn apply_to(&self, current: &Option<T>) -> Option<T> {
        match self {
            Change::Keep => current.clone(),
            Change::Set(value) => Some(value.clone()),
            Change::Clear => None,
        }
    }
}

/// The parsed fields of a partial update. Required fields can only be kept or replaced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActivityPatch {
    pub activity_type: Option<ActivityType>,
    pub title: Option<ActivityTitle>,
    pub description: Change<FreeText>,
    pub notes: Change<FreeText>,
    pub duration: Option<DurationMinutes>,
    pub distance: Change<Distance>,
    pub calories: Change<Calories>,
    pub tags: Change<Tags>,
    pub activity_date: Option<ActivityDate>,
}

impl Activity {
    /// A new activity at version 1.
    pub fn create(
        id: ActivityId,
        user_id: UserId,
        draft: ActivityDraft,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            user_id,
            activity_type: draft.activity_type,
            title: draft.title,
            description: draft.description,
            notes: draft.notes,
            duration: draft.duration,
            distance: draft.distance,
            calories: draft.calories,
            tags: draft.tags,
            activity_date: draft.activity_date,
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }
    }

    /// The activity with the patch applied, or `None` when the patch changes nothing (so no
    /// write and no event happen). A change bumps the version and `updated_at`.
    pub fn patched(&self, patch: &ActivityPatch, now: OffsetDateTime) -> Option<Activity> {
        let candidate = Activity {
            activity_type: patch.activity_type.unwrap_or(self.activity_type),
            title: patch.title.clone().unwrap_or_else(|| self.title.clone()),
            description: patch.description.apply_to(&self.description),
            notes: patch.notes.apply_to(&self.notes),
            duration: patch.duration.unwrap_or(self.duration),
            distance: patch.distance.apply_to(&self.distance),
            calories: patch.calories.apply_to(&self.calories),
            tags: patch
                .tags
                .apply_to(&Some(self.tags.clone()))
                .unwrap_or_default(),
            activity_date: patch.activity_date.unwrap_or(self.activity_date),
            ..self.clone()
        };
        if candidate == *self {
            return None;
        }
        Some(Activity {
            updated_at: now,
            version: self.version.next(),
            ..candidate
        })
    }

    /// The values statistics are computed from.
    pub fn facts(&self) -> ActivityFacts {
        ActivityFacts {
            activity_type: self.activity_type,
            duration_minutes: self.duration.get(),
            distance_m: self.distance.map(Distance::metres),
            calories_burned: self.calories.map(Calories::get),
            activity_date: self.activity_date,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::{date, datetime};
    use ulid::Ulid;

    pub(crate) fn draft() -> ActivityDraft {
        ActivityDraft {
            activity_type: ActivityType::Running,
            title: ActivityTitle::parse("Morning run").unwrap(),
            description: None,
            notes: None,
            duration: DurationMinutes::parse(30).unwrap(),
            distance: Some(Distance::from_km(5.0).unwrap()),
            calories: Some(Calories::parse(300).unwrap()),
            tags: Tags::default(),
            activity_date: ActivityDate::from_date(date!(2026 - 11 - 20)),
        }
    }

    fn activity() -> Activity {
        Activity::create(
            ActivityId::from_ulid(Ulid::nil()),
            UserId::parse("alice").unwrap(),
            draft(),
            datetime!(2026-11-20 08:00 UTC),
        )
    }

    #[test]
    fn empty_patch_changes_nothing() {
        let a = activity();
        assert_eq!(
            a.patched(&ActivityPatch::default(), datetime!(2026-11-21 08:00 UTC)),
            None
        );
        let same_title = ActivityPatch {
            title: Some(ActivityTitle::parse("Morning run").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            a.patched(&same_title, datetime!(2026-11-21 08:00 UTC)),
            None
        );
    }

    #[test]
    fn patch_bumps_version_and_clears_fields() {
        let a = activity();
        let patch = ActivityPatch {
            distance: Change::Clear,
            duration: Some(DurationMinutes::parse(45).unwrap()),
            ..Default::default()
        };
        let b = a.patched(&patch, datetime!(2026-11-21 08:00 UTC)).unwrap();
        assert_eq!(b.version, Version::new(2));
        assert_eq!(b.distance, None);
        assert_eq!(b.duration.get(), 45);
        assert_eq!(b.created_at, a.created_at);
        assert_eq!(b.updated_at, datetime!(2026-11-21 08:00 UTC));
    }
}
