//! The Lambda functions of activelog, named once. A function's name is its folder under
//! `functions/`, its metric dimension, and (for the consumers) the key its processed-event markers
//! are stored under; spelling it in one place keeps all of those the same. `template.yaml` is
//! checked against this list by `tests/template_consistency.rs`.

/// A function that serves one route of the HTTP API (see [`crate::http::ROUTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpFunction {
    CreateActivity,
    GetActivity,
    ListActivities,
    UpdateActivity,
    DeleteActivity,
    GetStats,
    GetAchievements,
}

impl HttpFunction {
    pub const ALL: [HttpFunction; 7] = [
        Self::CreateActivity,
        Self::GetActivity,
        Self::ListActivities,
        Self::UpdateActivity,
        Self::DeleteActivity,
        Self::GetStats,
        Self::GetAchievements,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::CreateActivity => "create-activity",
            Self::GetActivity => "get-activity",
            Self::ListActivities => "list-activities",
            Self::UpdateActivity => "update-activity",
            Self::DeleteActivity => "delete-activity",
            Self::GetStats => "get-stats",
            Self::GetAchievements => "get-achievements",
        }
    }
}

/// A function fed by an SQS queue that an EventBridge rule fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerFunction {
    UpdateStats,
    RecordAchievements,
}

impl ConsumerFunction {
    pub const ALL: [ConsumerFunction; 2] = [Self::UpdateStats, Self::RecordAchievements];

    pub const fn name(self) -> &'static str {
        match self {
            Self::UpdateStats => "update-stats",
            Self::RecordAchievements => "record-achievements",
        }
    }

    /// The logical id in `template.yaml` of the queue this function reads. The local stack wires
    /// its pollers from this; the template consistency test checks the template says the same.
    pub const fn queue(self) -> &'static str {
        match self {
            Self::UpdateStats => "StatsQueue",
            Self::RecordAchievements => "AchievementsQueue",
        }
    }

    /// The consumer of the queue with this logical id, if any.
    pub fn for_queue(queue: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.queue() == queue)
    }
}

/// The scheduled function that publishes what the HTTP functions could not.
pub const RELAY_OUTBOX: &str = "relay-outbox";

/// Every function's name, for checks against `functions/` and `template.yaml`.
pub fn all_names() -> Vec<&'static str> {
    HttpFunction::ALL
        .iter()
        .map(|f| f.name())
        .chain(ConsumerFunction::ALL.iter().map(|c| c.name()))
        .chain([RELAY_OUTBOX])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_folder_under_functions() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
        let mut folders: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let mut names: Vec<String> = all_names().into_iter().map(str::to_owned).collect();
        names.sort();
        assert_eq!(folders, names);
    }
}
