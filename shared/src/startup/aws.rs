//! The AWS wiring: the SDK configuration, loaded once per process with the retry and timeout
//! policy every client shares, and the AWS adapters each function needs over it.

use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use time::Duration;
use tokio::sync::OnceCell;

use crate::adapters::dynamodb::DynamoDbStore;
use crate::adapters::eventbridge::EventBridgePublisher;
use crate::adapters::system::{RandomIds, SystemClock};
use crate::application::{
    AchievementQueries, AchievementRecorder, ActivityQueries, ActivityService, CursorCodec,
    OutboxRelay, StatsQueries, StatsUpdater,
};
use crate::configuration::{AdapterMode, Settings};

use super::{ReadScope, StartupError};

/// Attempts per AWS call, the first included. The SDK's standard retry mode retries
/// throttling, timeouts and 5xx with exponential backoff and jitter; three attempts keep an
/// HTTP request well inside its function timeout. What still fails reaches the adapters,
/// which report it as unavailable (retryable) or failed.
pub const MAX_ATTEMPTS: u32 = 3;

/// A connection that does not open in this time will not open in time for a request.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process's SDK configuration, loaded on first use and shared by every client: region,
/// credentials and endpoint come from the usual chain (`AWS_REGION`, the Lambda role,
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` for a local endpoint such as moto).
pub async fn sdk_config() -> &'static SdkConfig {
    SDK_CONFIG
        .get_or_init(|| async {
            aws_config::defaults(BehaviorVersion::latest())
                .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .build(),
                )
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
    let secret = match scope {
        ReadScope::Listing => Some(settings.cursor_secret(AdapterMode::Aws)?),
        ReadScope::ById => None,
    };
    let store = Arc::new(dynamodb_store(settings).await?);
    Ok(match secret {
        Some(secret) => ActivityQueries::with_listing(store, CursorCodec::new(secret)),
        None => ActivityQueries::by_id(store),
    })
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
