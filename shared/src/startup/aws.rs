//! The AWS wiring: the SDK configuration, loaded once per process with the retry and timeout
//! policy every client shares, and the AWS adapters each function needs over it.

use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use time::Duration;
use tokio::sync::OnceCell;

use crate::adapters::aws_https::{AwsHttpsClient, TrustRoots};
#[cfg(feature = "aws-dynamodb")]
use crate::adapters::dynamodb::DynamoDbStore;
#[cfg(feature = "aws-eventbridge")]
use crate::adapters::eventbridge::EventBridgePublisher;
#[cfg(all(feature = "aws-dynamodb", feature = "aws-eventbridge"))]
use crate::adapters::system::{RandomIds, SystemClock};
#[cfg(feature = "aws-secretsmanager")]
use crate::application::CursorKeys;
#[cfg(feature = "aws-dynamodb")]
use crate::application::{
    AchievementQueries, ActivityQueries, CursorCodec, StatsQueries, StatsUpdater,
};
#[cfg(all(feature = "aws-dynamodb", feature = "aws-eventbridge"))]
use crate::application::{AchievementRecorder, ActivityService, OutboxRelay};
use crate::configuration::Settings;
#[cfg(feature = "aws-dynamodb")]
use crate::configuration::{AdapterMode, CursorKeySource};

#[cfg(feature = "aws-dynamodb")]
use super::ReadScope;
use super::StartupError;

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

/// The least grace the relay gives an outbox record on DynamoDB, whatever `OUTBOX_GRACE_SECONDS`
/// says. A change's transaction whose answer was lost is retried by the SDK, and the DynamoDB
/// adapter recognises "committed on an earlier attempt" by finding the change's own outbox record
/// already written. Had the relay published and removed that record between the attempts, the
/// retry would be answered as a conflict or "not found" for a change that committed (the
/// reliability suite found this with a grace of 0 on moto; DynamoDB's `ClientRequestToken`
/// also covers it in AWS, moto ignores the token). Every attempt of a call ends within
/// [`OPERATION_TIMEOUT`] of its start, so twice that keeps a record in place through all of them.
pub const MIN_OUTBOX_GRACE: Duration = Duration::seconds(2 * OPERATION_TIMEOUT.as_secs() as i64);

/// The grace the relay on DynamoDB runs with: the configured one, at least [`MIN_OUTBOX_GRACE`].
pub fn outbox_grace(configured: Duration) -> Duration {
    configured.max(MIN_OUTBOX_GRACE)
}

/// The timeouts every client gets.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

static HTTPS: std::sync::OnceLock<AwsHttpsClient> = std::sync::OnceLock::new();

/// The process's HTTPS client, shared by every SDK client (see [`crate::adapters::aws_https`]):
/// roots of trust from `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else compiled in.
pub fn https_client() -> &'static AwsHttpsClient {
    HTTPS.get_or_init(|| AwsHttpsClient::new(TrustRoots::from_env()))
}

/// With `ACTIVELOG_WARM_CONNECTIONS=1`, opens the TLS connection to `service`'s endpoint during
/// init (see [`Settings::warm_endpoint`]), so that the first request does not pay the handshake.
/// Whether it pays is measured in docs/benchmarks.md.
pub async fn warm_connection<F: Fn(&str) -> Option<String>>(settings: &Settings<F>, service: &str) {
    if let Some(endpoint) = settings.warm_endpoint(service) {
        let calls = https_client().calls(Some(CONNECT_TIMEOUT), None);
        crate::adapters::aws_https::warm(&calls, &endpoint).await;
    }
}

/// The process's SDK configuration, loaded on first use and shared by every client. With the
/// `aws-default-chain` feature (the local stack, the tests, the tools: `aws` turns it on), from
/// aws-config's default chains: profile files, role assumption, web identity, the container and
/// instance metadata endpoints. Without it (the Lambda functions), from Lambda's environment alone:
/// see [`lambda_environment_config`].
pub async fn sdk_config() -> &'static SdkConfig {
    SDK_CONFIG
        .get_or_init(|| async {
            #[cfg(feature = "aws-default-chain")]
            {
                aws_config::defaults(BehaviorVersion::latest())
                    .http_client(aws_smithy_runtime_api::client::http::SharedHttpClient::new(
                        https_client().clone(),
                    ))
                    .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                    .timeout_config(timeout_config())
                    .load()
                    .await
            }
            #[cfg(not(feature = "aws-default-chain"))]
            {
                lambda_environment_config(|name| std::env::var(name).ok())
            }
        })
        .await
}

/// The SDK configuration from what Lambda puts in a function's environment: the region
/// (`AWS_REGION`, else `AWS_DEFAULT_REGION`), the role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read by the SDK's environment provider, the
/// first link of the default chain), and a local endpoint for tests and benchmarks
/// (`AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`), with the same HTTPS client, retry and
/// timeouts as [`sdk_config`]. Not read: profile files, role assumption and web identity (STS),
/// the container and instance metadata endpoints, the FIPS and dual-stack switches. Loading
/// aws-config's chains linked its STS client, profile parser, metadata clients and URL parser
/// with its Unicode tables into every function, where Lambda never uses them (issue 15, size).
pub fn lambda_environment_config(variable: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let set = |name: &str| variable(name).filter(|value| !value.trim().is_empty());
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(
            set("AWS_REGION")
                .or_else(|| set("AWS_DEFAULT_REGION"))
                .map(aws_config::Region::new),
        )
        .credentials_provider(SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(aws_smithy_runtime_api::client::http::SharedHttpClient::new(
            https_client().clone(),
        ))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(timeout_config())
        .service_config(ServiceEndpoints(
            ENDPOINT_SERVICES
                .iter()
                .filter_map(|service| Some((*service, set(&service_endpoint_variable(service))?)))
                .collect(),
        ));
    if let Some(endpoint) = set("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    config.build()
}

/// The SDK's ids of the services these adapters call, whose endpoint may be set apart.
const ENDPOINT_SERVICES: [&str; 4] = ["DynamoDB", "EventBridge", "Secrets Manager", "SQS"];

/// `AWS_ENDPOINT_URL_<SERVICE>` as the SDK spells it: the service id in capitals, spaces as `_`.
fn service_endpoint_variable(service_id: &str) -> String {
    format!(
        "AWS_ENDPOINT_URL_{}",
        service_id.to_ascii_uppercase().replace(' ', "_")
    )
}

/// The service-specific endpoints of the environment, handed to each client as aws-config's own
/// loader does (the client falls back to `AWS_ENDPOINT_URL`'s when its service has none).
#[derive(Debug)]
struct ServiceEndpoints(Vec<(&'static str, String)>);

impl LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        self.0
            .iter()
            .find(|(service, _)| *service == key.service_id())
            .map(|(_, endpoint)| endpoint.clone())
    }
}

#[cfg(feature = "aws-dynamodb")]
/// The table adapter (`TABLE_NAME`).
pub async fn dynamodb_store<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<DynamoDbStore, StartupError> {
    let table = settings.table_name()?;
    let client = aws_sdk_dynamodb::Client::new(sdk_config().await);
    warm_connection(settings, "dynamodb").await;
    Ok(DynamoDbStore::new(client, table))
}

#[cfg(feature = "aws-eventbridge")]
/// The bus adapter (`EVENT_BUS_NAME`).
pub async fn event_publisher<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<EventBridgePublisher, StartupError> {
    let bus = settings.event_bus_name()?;
    let client = aws_sdk_eventbridge::Client::new(sdk_config().await);
    Ok(EventBridgePublisher::new(client, bus))
}

#[cfg(all(feature = "aws-dynamodb", feature = "aws-eventbridge"))]
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

#[cfg(feature = "aws-dynamodb")]
pub async fn activity_queries<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
    scope: ReadScope,
) -> Result<ActivityQueries, StartupError> {
    // The table's variable before the key ring's secret is read.
    settings.table_name()?;
    let cursors = match scope {
        ReadScope::Listing => Some(cursor_codec(settings).await?),
        ReadScope::ById => None,
    };
    let store = Arc::new(dynamodb_store(settings).await?);
    Ok(match cursors {
        Some(cursors) => ActivityQueries::with_listing(store, cursors),
        None => ActivityQueries::by_id(store),
    })
}

#[cfg(feature = "aws-dynamodb")]
/// The listing cursors' codec: the key ring of `CURSOR_SECRET_ARN` when set, else the one key of
/// `CURSOR_SECRET`.
pub async fn cursor_codec<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<CursorCodec, StartupError> {
    Ok(match settings.cursor_keys(AdapterMode::Aws)? {
        #[cfg(feature = "aws-secretsmanager")]
        CursorKeySource::SecretsManager(secret) => {
            CursorCodec::with_keys(cursor_keys(&secret).await?)
        }
        #[cfg(not(feature = "aws-secretsmanager"))]
        CursorKeySource::SecretsManager(secret) => {
            return Err(StartupError::CursorKeys(format!(
                "{secret}: this binary was built without Secrets Manager (feature aws-secretsmanager)"
            )));
        }
        CursorKeySource::Plain(secret) => CursorCodec::new(secret),
    })
}

#[cfg(feature = "aws-secretsmanager")]
/// The cursor key ring in Secrets Manager, read once per execution environment: a rotation
/// reaches new environments as they start, and the old key stays in the ring until every
/// environment that sealed with it is gone.
pub async fn cursor_keys(secret: &str) -> Result<CursorKeys, StartupError> {
    use tracing::Instrument;

    let client = aws_sdk_secretsmanager::Client::new(sdk_config().await);
    let output = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .instrument(crate::adapters::aws_call::secrets_manager(
            "GetSecretValue",
            secret,
        ))
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

#[cfg(feature = "aws-dynamodb")]
pub async fn stats_queries<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<StatsQueries, StartupError> {
    let version = settings.stats_projection_version()?;
    Ok(StatsQueries::new(Arc::new(
        dynamodb_store(settings).await?.with_stats_version(version),
    )))
}

#[cfg(feature = "aws-dynamodb")]
pub async fn stats_updater<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<StatsUpdater, StartupError> {
    let version = settings.stats_projection_version()?;
    Ok(StatsUpdater::new(Arc::new(
        dynamodb_store(settings).await?.with_stats_version(version),
    )))
}

#[cfg(all(feature = "aws-dynamodb", feature = "aws-eventbridge"))]
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

#[cfg(feature = "aws-dynamodb")]
pub async fn achievement_queries<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
) -> Result<AchievementQueries, StartupError> {
    Ok(AchievementQueries::new(Arc::new(
        dynamodb_store(settings).await?,
    )))
}

#[cfg(all(feature = "aws-dynamodb", feature = "aws-eventbridge"))]
pub async fn outbox_relay<F: Fn(&str) -> Option<String>>(
    settings: &Settings<F>,
    grace: Duration,
) -> Result<OutboxRelay, StartupError> {
    settings.event_bus_name()?;
    let store = Arc::new(dynamodb_store(settings).await?);
    let publisher = Arc::new(event_publisher(settings).await?);
    if grace < MIN_OUTBOX_GRACE {
        tracing::info!(
            configured_seconds = grace.whole_seconds(),
            grace_seconds = MIN_OUTBOX_GRACE.whole_seconds(),
            "outbox grace raised: a lost answer is recognised only while its record waits"
        );
    }
    Ok(OutboxRelay::new(
        store,
        publisher,
        Arc::new(SystemClock),
        outbox_grace(grace),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_endpoint_variable_is_spelt_as_the_sdk_reads_it() {
        assert_eq!(
            service_endpoint_variable("DynamoDB"),
            "AWS_ENDPOINT_URL_DYNAMODB"
        );
        assert_eq!(
            service_endpoint_variable("Secrets Manager"),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        );
    }

    #[test]
    fn the_lambda_environment_gives_region_endpoints_and_nothing_blank() {
        let config = lambda_environment_config(|name| match name {
            "AWS_REGION" => Some(" ".into()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".into()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".into()),
            "AWS_ENDPOINT_URL_EVENTBRIDGE" => Some("http://127.0.0.1:4567".into()),
            _ => None,
        });
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        let key = |service: &'static str| {
            ServiceConfigKey::builder()
                .service_id(service)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .unwrap()
        };
        let services = config.service_config().unwrap();
        assert_eq!(
            services.load_config(key("EventBridge")).as_deref(),
            Some("http://127.0.0.1:4567")
        );
        assert_eq!(services.load_config(key("DynamoDB")), None);
        assert!(config.credentials_provider().is_some());
        assert!(
            lambda_environment_config(|_| None).region().is_none(),
            "no region invented"
        );
    }
}
