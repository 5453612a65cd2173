//! The JSON shape of `GET /stats`: a user's sums over a period, in the units clients use.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{Totals, UserStats};

/// Sums over a period, in the units clients use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TotalsJson {
    pub activities: i64,
    pub duration_minutes: i64,
    pub distance_km: f64,
    pub calories_burned: i64,
}

impl From<&Totals> for TotalsJson {
    fn from(t: &Totals) -> Self {
        Self {
            activities: t.activities,
            duration_minutes: t.minutes,
            // Metres are exact integers; the division happens once, here.
            distance_km: t.distance_m as f64 / 1000.0,
            calories_burned: t.calories,
        }
    }
}

/// A user's statistics for one period (`all`, `2026-W48` or `2026-11`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsJson {
    pub period: String,
    pub totals: TotalsJson,
    pub by_type: BTreeMap<&'static str, TotalsJson>,
}

impl From<&UserStats> for StatsJson {
    fn from(s: &UserStats) -> Self {
        Self {
            period: s.period.to_string(),
            totals: TotalsJson::from(&s.totals),
            by_type: s
                .by_type
                .iter()
                .map(|(t, totals)| (t.as_str(), TotalsJson::from(totals)))
                .collect(),
        }
    }
}
