//! moto server on loopback, for the AWS-protocol tests: the real SDK adapters against a server
//! that speaks DynamoDB, EventBridge and SQS.
//!
//! One server per test binary (started on first use, on a free 127.0.0.1 port), shared by every
//! test in it; tests stay independent by naming their own table, bus and queues. `MOTO_ENDPOINT`
//! points the tests at a server that is already running; `MOTO_SERVER` names the executable
//! (default: `.venv/bin/moto_server` at the workspace root, as `scripts/install-tools.sh`
//! installs it). When no server can be started the tests fail, saying how to install one: they
//! are never skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server; stopped when dropped (or when the test process exits).
pub struct MotoServer {
    endpoint: String,
    /// The supervising shell: it kills moto when its stdin closes, which happens when this
    /// handle is dropped or the test process exits, however it exits.
    supervisor: Option<Child>,
}

impl MotoServer {
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, String> {
        Self::start_executable(moto_executable())
    }

    /// A server of the caller's own with item-level rollback of `TransactWriteItems`
    /// (`scripts/moto_item_rollback.py`): a cancelled transaction undoes its own items only,
    /// where stock moto puts back a copy of the whole table taken before it, undoing whatever
    /// other requests wrote to that table meanwhile. For the tests whose concurrent writers meet
    /// cancelled transactions by design.
    pub fn start_with_item_rollback() -> Result<Self, String> {
        Self::start_executable(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("scripts/moto-server-item-rollback"),
        )
    }

    fn start_executable(executable: PathBuf) -> Result<Self, String> {
        if !executable.exists() {
            return Err(format!(
                "moto server not found at {}; run scripts/install-tools.sh (or set MOTO_SERVER to a \
                 moto_server executable, or MOTO_ENDPOINT to a running server)",
                executable.display()
            ));
        }
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("activelog-moto-{port}.log"));
        let supervisor = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & pid=$!; cat >/dev/null; kill "$pid""#)
            .arg(&executable)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", executable.display()))?;
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            supervisor: Some(supervisor),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if answers(port) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!(
            "moto server at {} did not answer within {START_TIMEOUT:?}; run scripts/install-tools.sh. \
             Its output:\n{output}",
            server.endpoint
        ))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(mut supervisor) = self.supervisor.take() {
            // Closing stdin makes the supervisor kill moto.
            drop(supervisor.stdin.take());
            let _ = supervisor.wait();
        }
    }
}

fn moto_executable() -> PathBuf {
    match std::env::var_os("MOTO_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(".venv/bin/moto_server"),
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1")
}

static SERVER: OnceLock<Result<MotoServer, String>> = OnceLock::new();

/// The endpoint of this test binary's moto server (`MOTO_ENDPOINT`, or one started on first use).
/// Panics — failing the test — when there is none.
pub fn endpoint() -> String {
    if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
        return endpoint;
    }
    match SERVER.get_or_init(MotoServer::start) {
        Ok(server) => server.endpoint().to_owned(),
        Err(reason) => panic!("{reason}"),
    }
}

/// A name no other test uses, for tables, buses and queues.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Every AWS call (attempt) the clients built here make, as `Service.Operation`.
#[derive(Debug, Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.as_str() == operation)
            .count()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    // Once per attempt: what AWS bills and what a retry costs.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        self.0.lock().unwrap().push(name);
        Ok(())
    }
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "moto")
}

/// SDK clients pointed at moto with dummy credentials, all logging their calls to one log.
#[derive(Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub calls: CallLog,
    pub endpoint: String,
}

impl Clients {
    pub fn new() -> Self {
        Self::at(&endpoint())
    }

    /// Clients for any endpoint (a closed port makes every call fail to connect).
    pub fn at(endpoint: &str) -> Self {
        Self::with_policy(endpoint, RetryConfig::standard().with_max_attempts(3), None)
    }

    /// Clients with the retry and timeout policy the functions run with (`startup::aws`): what
    /// the fault-injection runs must exercise, since the timeouts decide what a stall costs.
    pub fn with_production_policy(endpoint: &str) -> Self {
        Self::with_policy(
            endpoint,
            RetryConfig::standard().with_max_attempts(activelog::startup::aws::MAX_ATTEMPTS),
            Some(activelog::startup::aws::timeout_config()),
        )
    }

    fn with_policy(endpoint: &str, retry: RetryConfig, timeouts: Option<TimeoutConfig>) -> Self {
        let calls = CallLog::default();
        let mut dynamodb = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(credentials())
            .endpoint_url(endpoint)
            .retry_config(retry.clone())
            .interceptor(calls.clone());
        dynamodb.set_timeout_config(timeouts.clone());
        let dynamodb = dynamodb.build();
        let mut eventbridge = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(credentials())
            .endpoint_url(endpoint)
            .retry_config(retry.clone())
            .interceptor(calls.clone());
        eventbridge.set_timeout_config(timeouts.clone());
        let eventbridge = eventbridge.build();
        let mut sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(credentials())
            .endpoint_url(endpoint)
            .retry_config(retry)
            .interceptor(calls.clone());
        sqs.set_timeout_config(timeouts);
        let sqs = sqs.build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            calls,
            endpoint: endpoint.to_owned(),
        }
    }

    /// An EventBridge client with extra interceptors (e.g. one that rewrites responses).
    pub fn eventbridge_with(
        &self,
        interceptor: impl Intercept + 'static,
    ) -> aws_sdk_eventbridge::Client {
        let config = self
            .eventbridge
            .config()
            .to_builder()
            .interceptor(interceptor)
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    /// The table as `template.yaml` declares it: `PK`/`SK`, GSI1 and GSI2 (projection ALL), TTL
    /// on `expires_at`.
    pub async fn create_table(&self, name: &str) {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let index = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash))
                .key_schema(key(sk, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap()
        };
        let mut request = self
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("PK", KeyType::Hash))
            .key_schema(key("SK", KeyType::Range))
            .global_secondary_indexes(index("GSI1", "GSI1PK", "GSI1SK"))
            .global_secondary_indexes(index("GSI2", "GSI2PK", "GSI2SK"));
        for name in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
            request = request.attribute_definitions(attribute(name));
        }
        request.send().await.expect("create table");
        self.dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("enable TTL");
        self.calls.clear();
    }

    /// A queue with a dead-letter queue after `max_receive_count` receives; returns
    /// (queue url, dlq url).
    pub async fn create_queue_with_dlq(
        &self,
        name: &str,
        visibility_timeout_seconds: u32,
        max_receive_count: u32,
    ) -> (String, String) {
        let dlq_url = self
            .create_queue(&format!("{name}-dlq"), visibility_timeout_seconds)
            .await;
        let dlq_arn = self.queue_arn(&dlq_url).await;
        let url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility_timeout_seconds.to_string(),
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
                    .to_string(),
            )
            .send()
            .await
            .expect("create queue")
            .queue_url
            .unwrap();
        (url, dlq_url)
    }

    pub async fn create_queue(&self, name: &str, visibility_timeout_seconds: u32) -> String {
        self.sqs
            .create_queue()
            .queue_name(name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility_timeout_seconds.to_string(),
            )
            .send()
            .await
            .expect("create queue")
            .queue_url
            .unwrap()
    }

    pub async fn queue_arn(&self, url: &str) -> String {
        self.sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap()
            .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .unwrap()
    }

    /// Messages in a queue, visible or not (`ApproximateNumberOfMessages*`).
    pub async fn queue_depth(&self, url: &str) -> (usize, usize) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let get = |name: A| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            get(A::ApproximateNumberOfMessages),
            get(A::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// A bus with one rule per (event pattern, queue), each targeting its queue.
    pub async fn create_bus(&self, name: &str, rules: &[(String, serde_json::Value, String)]) {
        self.eventbridge
            .create_event_bus()
            .name(name)
            .send()
            .await
            .expect("create bus");
        for (rule, pattern, queue_arn) in rules {
            self.eventbridge
                .put_rule()
                .name(rule)
                .event_bus_name(name)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .expect("put rule");
            self.eventbridge
                .put_targets()
                .rule(rule)
                .event_bus_name(name)
                .targets(
                    aws_sdk_eventbridge::types::Target::builder()
                        .id(format!("{rule}-target"))
                        .arn(queue_arn)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .expect("put targets");
        }
        self.calls.clear();
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}
