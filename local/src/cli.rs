//! Command-line options. Every option has an environment variable twin, so the same settings work
//! from a shell, a `.env` file or a container.

use std::net::IpAddr;

use activelog::domain::ProjectionVersion;
use clap::Parser;

/// Runs activelog on one machine: the HTTP API of API Gateway, the event pipeline and its
/// consumers. In-memory by default; `--aws` uses the real AWS adapters and queues.
#[derive(Debug, Clone, Parser)]
#[command(name = "activelog-local", version)]
pub struct Options {
    /// Port of the HTTP API.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to bind. Loopback by default: local mode does not authenticate anyone. With
    /// `--aws` only a loopback address is accepted.
    #[arg(long, env = "BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Use the AWS adapters (DynamoDB, EventBridge, SQS) with the usual AWS environment
    /// (region, credentials, AWS_ENDPOINT_URL) instead of the in-memory ones. With `--broker`,
    /// the store is DynamoDB (`TABLE_NAME`, `CURSOR_SECRET` or `CURSOR_SECRET_ARN`) and the
    /// transport the broker.
    #[arg(long, env = "ACTIVELOG_LOCAL_AWS", default_value_t = false)]
    pub aws: bool,

    /// The token the operator endpoints (`/_local/`) then require in `x-activelog-local-token`.
    /// With `--aws` there is always one: a fresh random token, printed at start, unless given here.
    #[arg(long, env = "ACTIVELOG_LOCAL_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,

    /// The event transport: `memory` (in-process queues, the default) or a RabbitMQ URL such as
    /// `rabbitmq://guest:guest@127.0.0.1:5672/%2f` (`amqp://` works too), a Redis URL
    /// (`redis://127.0.0.1:6379`, Redis Streams), a NATS URL (`nats://127.0.0.1:4222`,
    /// JetStream) or a Kafka cluster's bootstrap servers as
    /// `kafka://127.0.0.1:9092[,host:port...]`. The password is never logged.
    #[arg(
        long,
        env = "ACTIVELOG_BROKER",
        default_value = "memory",
        hide_env_values = true
    )]
    pub broker: String,

    /// Broker mode: prefix of the exchanges and queues (Redis keys, NATS streams, Kafka topics and
    /// consumer groups) on the broker.
    #[arg(long, env = "ACTIVELOG_BROKER_NAMESPACE", default_value = "activelog")]
    pub broker_namespace: String,

    /// Human-readable logs instead of JSON lines.
    #[arg(long, default_value_t = false)]
    pub pretty: bool,

    /// The statistics projection version the stats consumer writes and `GET /stats` reads (and
    /// `/_local/rebuild/stats` rebuilds), as STATS_PROJECTION_VERSION does for the functions.
    #[arg(long, env = "STATS_PROJECTION_VERSION", default_value = "1")]
    pub stats_projection_version: ProjectionVersion,

    /// In-memory queues: seconds a received message stays hidden (SQS VisibilityTimeout).
    #[arg(long, env = "ACTIVELOG_VISIBILITY_TIMEOUT", default_value_t = 30)]
    pub visibility_timeout: u32,

    /// In-memory queues: receives before a message moves to the dead-letter queue; on a broker,
    /// its queues' delivery limit.
    #[arg(long, env = "ACTIVELOG_MAX_RECEIVE_COUNT", default_value_t = 5)]
    pub max_receive_count: u32,

    /// Seconds between two runs of the outbox relay.
    #[arg(long, env = "ACTIVELOG_RELAY_INTERVAL", default_value_t = 5)]
    pub relay_interval: u64,

    /// Seconds to wait, at shutdown, for the pipeline to drain before giving up.
    #[arg(long, env = "ACTIVELOG_DRAIN_TIMEOUT", default_value_t = 10)]
    pub drain_timeout: u64,
}
