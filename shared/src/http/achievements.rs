//! `GET /achievements`: the caller's progress and the milestones they unlocked. Achievements are
//! written by the `record-achievements` consumer; this route only reads them.

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tracing::Instrument;

use crate::application::{AchievementQueries, AchievementStanding};
use crate::domain::Progress;

use super::HttpFunction;
use super::handlers::{finish, identify, request_span};
use super::request::RequestMeta;
use super::response;

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

/// `GET /achievements` → 200 with the caller's progress and unlocked milestones.
pub async fn get_achievements(queries: &AchievementQueries, request: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let meta = RequestMeta::of(&request);
    let span = request_span(HttpFunction::GetAchievements.name(), &meta);
    let result = async {
        let user = identify(&request)?;
        let standing = queries.get(&meta.context(user)).await?;
        Ok(response::json(
            200,
            &AchievementsJson::from(&standing),
            &meta,
        ))
    }
    .instrument(span.clone())
    .await;
    finish(result, &meta, &span, HttpFunction::GetAchievements, started)
}
