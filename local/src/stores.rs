//! The stores a broker stack's use cases run on, chosen apart from the transport: in memory by
//! default, DynamoDB with `--aws`. Keeping them apart is what lets every broker run on either
//! without a line of its own.

use std::sync::Arc;

use activelog::adapters::memory::{MemoryAchievementStore, MemoryActivityStore, MemoryStatsStore};
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementQueries, AchievementStore, ActivityQueries, ActivityService, ActivityStore,
    CursorCodec, EventPublisher, Outbox, StatsQueries, StatsStore,
};
use activelog::configuration::Settings;
use activelog::domain::ProjectionVersion;
use activelog::startup::{StartupError, aws};

use crate::console::{Journal, RecordingActivityStore, RecordingStatsStore};
use crate::server::Services;

/// Every store the use cases and the consumers need, behind their ports.
#[derive(Clone)]
pub struct Stores {
    /// How the listening line names them (`memory`, `dynamodb`).
    pub name: &'static str,
    pub activities: Arc<dyn ActivityStore>,
    /// The outbox the activity writes and awards add to, and the relay empties.
    pub outbox: Arc<dyn Outbox>,
    pub stats: Arc<dyn StatsStore>,
    pub achievements: Arc<dyn AchievementStore>,
    /// Seals and opens the listing cursors.
    pub cursors: CursorCodec,
}

impl Stores {
    /// Fresh in-memory stores, empty, statistics on projection `version`; the cursor secret is
    /// the local one.
    pub fn in_memory(version: ProjectionVersion) -> Self {
        let activity_store = Arc::new(MemoryActivityStore::new());
        Self {
            name: "memory",
            activities: activity_store.clone(),
            outbox: activity_store.clone(),
            stats: MemoryStatsStore::new().at_version(version),
            achievements: Arc::new(MemoryAchievementStore::new(activity_store)),
            cursors: CursorCodec::new(
                activelog::configuration::LOCAL_CURSOR_SECRET
                    .as_bytes()
                    .to_vec(),
            ),
        }
    }

    /// The DynamoDB table of `TABLE_NAME` (region, credentials and endpoint from the usual AWS
    /// environment, `AWS_ENDPOINT_URL` for moto), with the cursor keys of `CURSOR_SECRET_ARN` or
    /// `CURSOR_SECRET`: what `--aws` runs on, statistics on projection `version`.
    pub async fn dynamodb(version: ProjectionVersion) -> Result<Self, StartupError> {
        let settings = Settings::from_env();
        // Every variable before the first call: a missing one is named, not a network error.
        settings.table_name()?;
        let cursors = aws::cursor_codec(&settings).await?;
        let table = Arc::new(
            aws::dynamodb_store(&settings)
                .await?
                .with_stats_version(version),
        );
        Ok(Self {
            name: "dynamodb",
            activities: table.clone(),
            outbox: table.clone(),
            stats: table.clone(),
            achievements: table,
            cursors,
        })
    }

    /// The same stores with the console's recorders around the activity store (outbox records)
    /// and the stats store (stats changes).
    pub fn recorded(self, journal: &Arc<Journal>) -> Self {
        Self {
            activities: Arc::new(RecordingActivityStore::new(
                self.activities,
                journal.clone(),
            )),
            stats: Arc::new(RecordingStatsStore::new(self.stats, journal.clone())),
            ..self
        }
    }

    /// The HTTP functions' use cases over these stores, publishing through `publisher`: one
    /// wiring for every transport (memory, a broker, EventBridge in `--aws` mode).
    pub fn services(&self, publisher: Arc<dyn EventPublisher>) -> Services {
        Services {
            activities: ActivityService::new(
                self.activities.clone(),
                self.outbox.clone(),
                publisher,
                Arc::new(SystemClock),
                Arc::new(RandomIds),
            ),
            activity_queries: ActivityQueries::with_listing(
                self.activities.clone(),
                self.cursors.clone(),
            ),
            stats: StatsQueries::new(self.stats.clone()),
            achievements: AchievementQueries::new(self.achievements.clone()),
        }
    }
}
