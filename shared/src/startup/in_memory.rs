//! The in-memory wiring: the whole system in one process (store, bus with the template's rules,
//! queues with dead-letter queues, the use cases over them) and the seed file that fills its store.
//! The local stack, the tests and memory-mode functions all start from here.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::Duration;

use crate::adapters::memory::{
    BusRule, MemoryAchievementStore, MemoryActivityStore, MemoryEventBus, MemoryQueue,
    MemoryStatsStore, QueueSettings, RoutingRule,
};
use crate::adapters::system::{RandomIds, SystemClock};
use crate::application::{
    AchievementQueries, AchievementRecorder, ActivityQueries, ActivityService, Clock, CursorCodec,
    IdGenerator, OutboxRelay, StatsQueries, StatsUpdater,
};
use crate::domain::{Activity, ProjectionVersion};

use super::StartupError;

/// The whole system in one process on in-memory adapters: store, bus with the template's rules,
/// one queue (with its dead-letter queue) per rule target, and the use cases over them. The local
/// stack and the tests run on this.
pub struct InMemoryStack {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub activity_store: Arc<MemoryActivityStore>,
    pub stats_store: Arc<MemoryStatsStore>,
    pub bus: Arc<MemoryEventBus>,
    /// Queues by the logical id of the queue in `template.yaml` (e.g. `StatsQueue`).
    pub queues: BTreeMap<String, Arc<MemoryQueue>>,
    pub activities: ActivityService,
    pub activity_queries: ActivityQueries,
    pub stats: StatsQueries,
    pub stats_updater: StatsUpdater,
    pub relay: OutboxRelay,
    /// Achievement progress and awards; award events go to `activity_store`'s outbox.
    pub achievement_store: Arc<MemoryAchievementStore>,
    pub achievement_recorder: AchievementRecorder,
    pub achievements: AchievementQueries,
}

/// How the in-memory queues behave; the template's values by default.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::seconds(180),
            max_receive_count: 5,
        }
    }
}

impl InMemoryStack {
    pub fn new(
        rules: &[RoutingRule],
        queue_options: &QueueOptions,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Result<Self, StartupError> {
        let RoutedQueues { bus, queues } = RoutedQueues::new(rules, queue_options, clock.clone())?;
        let activity_store = Arc::new(MemoryActivityStore::new());
        let stats_store = Arc::new(MemoryStatsStore::new());
        let activities = ActivityService::new(
            activity_store.clone(),
            activity_store.clone(),
            bus.clone(),
            clock.clone(),
            ids.clone(),
        );
        let activity_queries = ActivityQueries::with_listing(
            activity_store.clone(),
            CursorCodec::new(
                crate::configuration::LOCAL_CURSOR_SECRET
                    .as_bytes()
                    .to_vec(),
            ),
        );
        let relay = OutboxRelay::new(
            activity_store.clone(),
            bus.clone(),
            clock.clone(),
            Duration::seconds(5),
        );
        let achievement_store = Arc::new(MemoryAchievementStore::new(activity_store.clone()));
        let achievement_recorder = AchievementRecorder::new(
            achievement_store.clone(),
            activity_store.clone(),
            bus.clone(),
            clock.clone(),
            ids.clone(),
        );
        Ok(Self {
            achievements: AchievementQueries::new(achievement_store.clone()),
            achievement_recorder,
            achievement_store,
            stats: StatsQueries::new(stats_store.clone()),
            stats_updater: StatsUpdater::new(stats_store.clone()),
            clock,
            ids,
            activity_store,
            stats_store,
            bus,
            queues,
            activities,
            activity_queries,
            relay,
        })
    }

    /// A stack with the system clock and random ids.
    pub fn with_system_clock(
        rules: &[RoutingRule],
        queue_options: &QueueOptions,
    ) -> Result<Self, StartupError> {
        Self::new(
            rules,
            queue_options,
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        )
    }

    /// The same stack with its statistics reader and consumer on projection version `version`
    /// (`stats_store` becomes that version's handle; the other versions stay reachable through
    /// [`MemoryStatsStore::at_version`]).
    pub fn with_stats_version(mut self, version: ProjectionVersion) -> Self {
        self.stats_store = self.stats_store.at_version(version);
        self.stats = StatsQueries::new(self.stats_store.clone());
        self.stats_updater = StatsUpdater::new(self.stats_store.clone());
        self
    }

    pub fn queue(&self, logical_id: &str) -> Option<&Arc<MemoryQueue>> {
        self.queues.get(logical_id)
    }
}

/// The in-memory transport alone: a bus that routes by the rules into one queue (with its
/// dead-letter queue) per rule target. [`InMemoryStack`] is built on it; the transport
/// conformance suite runs it without the rest of the stack.
pub struct RoutedQueues {
    pub bus: Arc<MemoryEventBus>,
    /// Queues by the logical id of the queue in `template.yaml` (e.g. `StatsQueue`).
    pub queues: BTreeMap<String, Arc<MemoryQueue>>,
}

impl RoutedQueues {
    pub fn new(
        rules: &[RoutingRule],
        queue_options: &QueueOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let mut queues: BTreeMap<String, Arc<MemoryQueue>> = BTreeMap::new();
        let mut bus_rules = Vec::new();
        for rule in rules {
            let queue = queues
                .entry(rule.target_queue.clone())
                .or_insert_with(|| {
                    MemoryQueue::with_dead_letter_queue(
                        QueueSettings {
                            name: rule.target_queue.clone(),
                            visibility_timeout: queue_options.visibility_timeout,
                            max_receive_count: queue_options.max_receive_count,
                        },
                        clock.clone(),
                    )
                })
                .clone();
            bus_rules.push(BusRule {
                name: rule.name.clone(),
                event_pattern: rule.event_pattern.clone(),
                target: queue,
            });
        }
        let bus = Arc::new(
            MemoryEventBus::new(bus_rules).map_err(|e| StartupError::Routing(e.to_string()))?,
        );
        Ok(Self { bus, queues })
    }
}

/// Loads the activities of a seed file: `{"activities": [...]}` in the stored shape (see
/// `events/seed.json`).
pub fn load_seed(path: &std::path::Path) -> Result<Vec<Activity>, StartupError> {
    #[derive(serde::Deserialize)]
    struct Seed {
        activities: Vec<Activity>,
    }
    let error = |reason: String| StartupError::Seed {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let seed: Seed = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    Ok(seed.activities)
}
