//! One entry point per Lambda function: what its `main.rs` calls once per execution environment.
//! Each reads the settings, then builds its use case on in-memory adapters when
//! `ACTIVELOG_ADAPTERS=memory` (see [`super::in_memory`]) or on AWS ones otherwise (see
//! [`super::aws`]). Only with the `aws-dynamodb` feature (and `aws-eventbridge` for those that
//! publish): a function that could not run on AWS has no use.

use crate::application::{
    AchievementQueries, ActivityQueries, CursorCodec, StatsQueries, StatsUpdater,
};
#[cfg(feature = "aws-eventbridge")]
use crate::application::{AchievementRecorder, ActivityService, OutboxRelay};
use crate::configuration::{AdapterMode, Settings};

use super::in_memory::{InMemoryStack, QueueOptions, load_seed};
use super::{ReadScope, StartupError, aws};

/// A memory-mode process: one store seeded from `ACTIVELOG_SEED_FILE`, a bus without rules
/// (a single function has no consumers to deliver to; it logs what it would publish).
fn memory_stack<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<InMemoryStack, StartupError> {
    let stack = InMemoryStack::with_system_clock(&[], &QueueOptions::default())?
        .with_stats_version(settings.stats_projection_version()?);
    if let Some(path) = settings.seed_file() {
        let activities = load_seed(&path)?;
        tracing::info!(count = activities.len(), path = %path.display(), "in-memory store seeded");
        stack.activity_store.seed(activities);
    }
    Ok(stack)
}

#[cfg(feature = "aws-eventbridge")]
/// The activity use cases that write, for create-, update- and delete-activity.
pub async fn activity_service() -> Result<ActivityService, StartupError> {
    let settings = Settings::from_env();
    match settings.adapter_mode()? {
        AdapterMode::Memory => {
            tracing::warn!(
                "ACTIVELOG_ADAPTERS=memory: running on in-memory adapters, nothing is persisted"
            );
            Ok(memory_stack(&settings)?.activities)
        }
        AdapterMode::Aws => aws::activity_service(&settings).await,
    }
}

/// The activity read use cases, for get-activity (`ById`) and list-activities (`Listing`).
pub async fn activity_queries(scope: ReadScope) -> Result<ActivityQueries, StartupError> {
    let settings = Settings::from_env();
    let mode = settings.adapter_mode()?;
    match mode {
        AdapterMode::Memory => {
            tracing::warn!(
                "ACTIVELOG_ADAPTERS=memory: running on in-memory adapters, nothing is persisted"
            );
            let stack = memory_stack(&settings)?;
            Ok(match scope {
                ReadScope::ById => ActivityQueries::by_id(stack.activity_store.clone()),
                ReadScope::Listing => ActivityQueries::with_listing(
                    stack.activity_store.clone(),
                    CursorCodec::new(settings.cursor_secret(mode)?),
                ),
            })
        }
        AdapterMode::Aws => aws::activity_queries(&settings, scope).await,
    }
}

/// Statistics reads for `get-stats`.
pub async fn stats_queries() -> Result<StatsQueries, StartupError> {
    let settings = Settings::from_env();
    match settings.adapter_mode()? {
        AdapterMode::Memory => Ok(memory_stack(&settings)?.stats),
        AdapterMode::Aws => aws::stats_queries(&settings).await,
    }
}

/// The stats consumer's use case for `update-stats`.
pub async fn stats_updater() -> Result<StatsUpdater, StartupError> {
    let settings = Settings::from_env();
    match settings.adapter_mode()? {
        AdapterMode::Memory => Ok(memory_stack(&settings)?.stats_updater),
        AdapterMode::Aws => aws::stats_updater(&settings).await,
    }
}

#[cfg(feature = "aws-eventbridge")]
/// The achievements consumer's use case for `record-achievements`.
pub async fn achievement_recorder() -> Result<AchievementRecorder, StartupError> {
    let settings = Settings::from_env();
    match settings.adapter_mode()? {
        AdapterMode::Memory => Ok(memory_stack(&settings)?.achievement_recorder),
        AdapterMode::Aws => aws::achievement_recorder(&settings).await,
    }
}

/// Achievement reads for `get-achievements`.
pub async fn achievement_queries() -> Result<AchievementQueries, StartupError> {
    let settings = Settings::from_env();
    match settings.adapter_mode()? {
        AdapterMode::Memory => Ok(memory_stack(&settings)?.achievements),
        AdapterMode::Aws => aws::achievement_queries(&settings).await,
    }
}

#[cfg(feature = "aws-eventbridge")]
/// The outbox relay for `relay-outbox`.
pub async fn outbox_relay() -> Result<OutboxRelay, StartupError> {
    let settings = Settings::from_env();
    let grace = settings.outbox_grace()?;
    match settings.adapter_mode()? {
        AdapterMode::Memory => {
            let stack = memory_stack(&settings)?;
            Ok(OutboxRelay::new(
                stack.activity_store.clone(),
                stack.bus.clone(),
                stack.clock.clone(),
                grace,
            ))
        }
        AdapterMode::Aws => aws::outbox_relay(&settings, grace).await,
    }
}
