//! The JSON shape of `GET /achievements`: the caller's progress and the milestones they unlocked.
//! Achievements are written by the `record-achievements` consumer; the route only reads them.

use serde::Serialize;

use crate::application::AchievementStanding;
use crate::domain::Progress;

/// Everything the caller ever recorded, the counters milestones are measured against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressJson {
    pub activities: u64,
    pub duration_minutes: u64,
    pub distance_km: f64,
}

impl From<&Progress> for ProgressJson {
    fn from(p: &Progress) -> Self {
        Self {
            activities: p.activities,
            duration_minutes: p.minutes,
            distance_km: p.distance_m as f64 / 1000.0,
        }
    }
}

/// One unlocked milestone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AchievementJson {
    /// The stable id, as in `achievement.unlocked` events.
    pub achievement: &'static str,
    pub description: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub unlocked_at: time::OffsetDateTime,
}

/// The body of `GET /achievements`: progress, and the unlocked milestones, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AchievementsJson {
    pub progress: ProgressJson,
    pub achievements: Vec<AchievementJson>,
}

impl From<&AchievementStanding> for AchievementsJson {
    fn from(standing: &AchievementStanding) -> Self {
        Self {
            progress: ProgressJson::from(&standing.progress),
            achievements: standing
                .awards
                .iter()
                .map(|award| AchievementJson {
                    achievement: award.milestone.id(),
                    description: award.milestone.description(),
                    unlocked_at: award.awarded_at,
                })
                .collect(),
        }
    }
}
