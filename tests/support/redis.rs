//! Redis for the tests: the shared server every machine of this project runs on 127.0.0.1:6379
//! (`ACTIVELOG_TEST_REDIS` overrides it), with a key prefix of its own per test, removed when
//! dropped; and, for the restart test, a `redis-server` of the test's own with an append-only
//! file (see [`private_server`]). When the server or the binary is missing the tests fail,
//! saying so: they never skip.

use activelog::adapters::redis_streams::RedisUrl;

use crate::broker_process::{BrokerProcess, ServerCommand};

/// The shared server's URL.
pub fn shared_url() -> String {
    std::env::var("ACTIVELOG_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix of its own on a server; its keys are deleted when dropped.
pub struct Namespace {
    pub name: String,
    pub url: RedisUrl,
    raw_url: String,
}

impl Namespace {
    pub fn new(raw_url: &str) -> Self {
        Self {
            name: format!(
                "activelog-test-{}",
                ulid::Ulid::new().to_string().to_lowercase()
            ),
            url: RedisUrl::parse(raw_url).expect("Redis URL"),
            raw_url: raw_url.to_owned(),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.raw_url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.name))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A `redis-server` of the test's own with `appendonly yes` (fsync every second, Redis's
/// default): an orderly restart of it keeps every stream, consumer group, pending entry and
/// dead letter. The shared server runs with `--save "" --appendonly no`, and the same restart
/// there would lose all of them: streams, groups and whatever had not been consumed yet.
pub fn private_server() -> BrokerProcess {
    BrokerProcess::start(ServerCommand {
        program: "redis-server",
        arguments: |port, directory| {
            [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--dir",
                directory,
                "--appendonly",
                "yes",
                "--save",
                "",
            ]
            .map(str::to_owned)
            .to_vec()
        },
        install_hint: "the Redis tests need redis-server on PATH (apt-get install redis-server)",
    })
}
