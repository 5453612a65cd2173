//! The stores a broker stack's use cases run on, chosen apart from the transport: in memory by
//! default, DynamoDB with `--aws`. Keeping them apart is what lets every broker run on either
//! without a line of its own.

use std::sync::Arc;

use activelog::adapters::memory::{MemoryAchievementStore, MemoryActivityStore, MemoryStatsStore};
use activelog::application::{AchievementStore, ActivityStore, CursorCodec, Outbox, StatsStore};

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
    /// Fresh in-memory stores, empty; the cursor secret is the local one.
    pub fn in_memory() -> Self {
        let activity_store = Arc::new(MemoryActivityStore::new());
        Self {
            name: "memory",
            activities: activity_store.clone(),
            outbox: activity_store.clone(),
            stats: Arc::new(MemoryStatsStore::new()),
            achievements: Arc::new(MemoryAchievementStore::new(activity_store)),
            cursors: CursorCodec::new(
                activelog::configuration::LOCAL_CURSOR_SECRET
                    .as_bytes()
                    .to_vec(),
            ),
        }
    }
}
