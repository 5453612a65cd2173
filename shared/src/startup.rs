//! Builds a process's adapters once, at start-up, from its settings: in-memory ones when
//! `ACTIVELOG_ADAPTERS=memory`, AWS ones otherwise. Lambda keeps what is built here for every
//! invocation of the execution environment, so nothing here runs per request.

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
use crate::configuration::{AdapterMode, ConfigError, Settings};
use crate::domain::Activity;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("seed file {path}: {reason}")]
    Seed { path: String, reason: String },
    #[error("event routing: {0}")]
    Routing(String),
    #[error("cursor keys: {0}")]
    CursorKeys(String),
}

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

    pub fn queue(&self, logical_id: &str) -> Option<&Arc<MemoryQueue>> {
        self.queues.get(logical_id)
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

/// A memory-mode process: one store seeded from `ACTIVELOG_SEED_FILE`, a bus without rules
/// (a single function has no consumers to deliver to; it logs what it would publish).
fn memory_stack<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<InMemoryStack, StartupError> {
    let stack = InMemoryStack::with_system_clock(&[], &QueueOptions::default())?;
    if let Some(path) = settings.seed_file() {
        let activities = load_seed(&path)?;
        tracing::info!(count = activities.len(), path = %path.display(), "in-memory store seeded");
        stack.activity_store.seed(activities);
    }
    Ok(stack)
}

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

/// What a reading function does: read one activity by id, or also list (which needs cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    ById,
    Listing,
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

/// The AWS side of start-up: the SDK configuration, loaded once per process, and the adapters a
/// function needs over it.
#[cfg(feature = "aws")]
pub mod aws {
    use super::*;

    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, SdkConfig};
    use tokio::sync::OnceCell;

    use crate::adapters::dynamodb::DynamoDbStore;
    use crate::adapters::eventbridge::EventBridgePublisher;
    use crate::application::pagination::CursorKeys;
    use crate::configuration::CursorKeySource;

    /// Attempts per AWS call, the first included. The SDK's standard retry mode retries
    /// throttling, timeouts and 5xx with exponential backoff and jitter; three attempts keep an
    /// HTTP request well inside its function timeout. What still fails reaches the adapters,
    /// which report it as unavailable (retryable) or failed.
    pub const MAX_ATTEMPTS: u32 = 3;

    /// A connection that does not open in this time will not open in time for a request.
    const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

    /// One attempt of one call (connect, send, read the answer). DynamoDB and EventBridge answer
    /// in milliseconds; an attempt this slow is stalled, and the next attempt (same idempotency
    /// token for a transaction) is the way out.
    pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

    /// One call with all its attempts and backoff. Without it a stalled call held a request until
    /// the Lambda timeout; with it an update (read, transaction: 2 × 3 s) plus the bounded publish
    /// (`PUBLISH_BUDGET`, 2 s) stays inside the HTTP functions' 10 s.
    pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

    /// The timeouts every client gets.
    pub fn timeout_config() -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build()
    }

    static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

    /// The process's SDK configuration, loaded on first use and shared by every client: region,
    /// credentials and endpoint come from the usual chain (`AWS_REGION`, the Lambda role,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` for a local endpoint such as moto).
    pub async fn sdk_config() -> &'static SdkConfig {
        SDK_CONFIG
            .get_or_init(|| async {
                aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                    .timeout_config(timeout_config())
                    .load()
                    .await
            })
            .await
    }

    /// The table adapter (`TABLE_NAME`).
    pub async fn dynamodb_store<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<DynamoDbStore, StartupError> {
        let table = settings.table_name()?;
        let client = aws_sdk_dynamodb::Client::new(sdk_config().await);
        Ok(DynamoDbStore::new(client, table))
    }

    /// The bus adapter (`EVENT_BUS_NAME`).
    pub async fn event_publisher<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<EventBridgePublisher, StartupError> {
        let bus = settings.event_bus_name()?;
        let client = aws_sdk_eventbridge::Client::new(sdk_config().await);
        Ok(EventBridgePublisher::new(client, bus))
    }

    pub async fn activity_service<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<ActivityService, StartupError> {
        // Every variable first, so a misconfigured function names what is missing before it
        // touches the network.
        settings.table_name()?;
        settings.event_bus_name()?;
        let store = Arc::new(dynamodb_store(settings).await?);
        let publisher = Arc::new(event_publisher(settings).await?);
        Ok(ActivityService::new(
            store.clone(),
            store,
            publisher,
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        ))
    }

    pub async fn activity_queries<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
        scope: ReadScope,
    ) -> Result<ActivityQueries, StartupError> {
        let source = match scope {
            ReadScope::Listing => Some(settings.cursor_keys(AdapterMode::Aws)?),
            ReadScope::ById => None,
        };
        let store = Arc::new(dynamodb_store(settings).await?);
        Ok(match source {
            Some(CursorKeySource::SecretsManager(secret)) => ActivityQueries::with_listing(
                store,
                CursorCodec::with_keys(cursor_keys(&secret).await?),
            ),
            Some(CursorKeySource::Plain(secret)) => {
                ActivityQueries::with_listing(store, CursorCodec::new(secret))
            }
            None => ActivityQueries::by_id(store),
        })
    }

    /// The cursor key ring in Secrets Manager, read once per execution environment: a rotation
    /// reaches new environments as they start, and the old key stays in the ring until every
    /// environment that sealed with it is gone.
    pub async fn cursor_keys(secret: &str) -> Result<CursorKeys, StartupError> {
        let client = aws_sdk_secretsmanager::Client::new(sdk_config().await);
        let output = client
            .get_secret_value()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| {
                StartupError::CursorKeys(format!(
                    "reading secret {secret}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ))
            })?;
        let text = output
            .secret_string()
            .ok_or_else(|| StartupError::CursorKeys(format!("secret {secret} holds no string")))?;
        let keys = CursorKeys::from_json(text)
            .map_err(|e| StartupError::CursorKeys(format!("secret {secret}: {e}")))?;
        tracing::info!(current = keys.current_id(), "cursor keys loaded");
        Ok(keys)
    }

    pub async fn stats_queries<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<StatsQueries, StartupError> {
        Ok(StatsQueries::new(Arc::new(dynamodb_store(settings).await?)))
    }

    pub async fn stats_updater<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<StatsUpdater, StartupError> {
        Ok(StatsUpdater::new(Arc::new(dynamodb_store(settings).await?)))
    }

    pub async fn achievement_recorder<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<AchievementRecorder, StartupError> {
        settings.event_bus_name()?;
        let store = Arc::new(dynamodb_store(settings).await?);
        let publisher = Arc::new(event_publisher(settings).await?);
        Ok(AchievementRecorder::new(
            store.clone(),
            store,
            publisher,
            Arc::new(SystemClock),
            Arc::new(RandomIds),
        ))
    }

    pub async fn achievement_queries<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
    ) -> Result<AchievementQueries, StartupError> {
        Ok(AchievementQueries::new(Arc::new(
            dynamodb_store(settings).await?,
        )))
    }

    pub async fn outbox_relay<F: Fn(&str) -> Option<String>>(
        settings: &Settings<F>,
        grace: Duration,
    ) -> Result<OutboxRelay, StartupError> {
        settings.event_bus_name()?;
        let store = Arc::new(dynamodb_store(settings).await?);
        let publisher = Arc::new(event_publisher(settings).await?);
        Ok(OutboxRelay::new(
            store,
            publisher,
            Arc::new(SystemClock),
            grace,
        ))
    }
}

/// Without the `aws` feature a process can only run on in-memory adapters.
#[cfg(not(feature = "aws"))]
mod aws {
    use super::*;

    fn unavailable() -> StartupError {
        StartupError::Config(ConfigError::Invalid {
            variable: crate::configuration::ADAPTERS,
            reason: "the AWS adapters are not part of this build; set ACTIVELOG_ADAPTERS=memory"
                .into(),
        })
    }

    pub async fn activity_service<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
    ) -> Result<ActivityService, StartupError> {
        Err(unavailable())
    }

    pub async fn activity_queries<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
        _scope: ReadScope,
    ) -> Result<ActivityQueries, StartupError> {
        Err(unavailable())
    }

    pub async fn stats_queries<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
    ) -> Result<StatsQueries, StartupError> {
        Err(unavailable())
    }

    pub async fn stats_updater<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
    ) -> Result<StatsUpdater, StartupError> {
        Err(unavailable())
    }

    pub async fn achievement_recorder<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
    ) -> Result<AchievementRecorder, StartupError> {
        Err(unavailable())
    }

    pub async fn achievement_queries<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
    ) -> Result<AchievementQueries, StartupError> {
        Err(unavailable())
    }

    pub async fn outbox_relay<F: Fn(&str) -> Option<String>>(
        _settings: &Settings<F>,
        _grace: Duration,
    ) -> Result<OutboxRelay, StartupError> {
        Err(unavailable())
    }
}
