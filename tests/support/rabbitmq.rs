//! RabbitMQ on loopback for the tests: the broker every machine of this project runs on
//! 127.0.0.1:5672 (guest/guest; `rabbitmq-server -detached` starts it). Each test gets its own
//! virtual host, made and removed with `rabbitmqctl`, so tests can cut their own connections
//! without touching anyone else's; tests that restart the broker take a lock that keeps the
//! others of this binary out while it is down, and always start it again, even when they fail.
//! When the broker or `rabbitmqctl` is missing the tests fail, saying so: they never skip.

use std::process::Command;
use std::time::Duration;

use activelog::adapters::rabbitmq::BrokerUrl;
use tokio::sync::{Mutex, MutexGuard};

/// The broker's URL, `ACTIVELOG_TEST_RABBITMQ` if set.
pub fn broker_url() -> BrokerUrl {
    let url = std::env::var("ACTIVELOG_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    BrokerUrl::parse(&url).expect("broker URL")
}

/// Runs `rabbitmqctl` with these arguments, failing the test when it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("rabbitmqctl {args:?} could not run ({e}); the RabbitMQ tests need rabbitmqctl on PATH and a broker on 127.0.0.1:5672 (rabbitmq-server -detached)")
        });
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One test at a time per binary talks to the broker: a restart would break the others.
static BROKER: Mutex<()> = Mutex::const_new(());

/// A virtual host of its own, deleted when dropped.
pub struct Vhost {
    pub name: String,
    pub url: BrokerUrl,
    _exclusive: MutexGuard<'static, ()>,
}

impl Vhost {
    pub async fn new() -> Self {
        let exclusive = BROKER.lock().await;
        let name = format!(
            "activelog-test-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self {
            url: broker_url().with_vhost(&name),
            name,
            _exclusive: exclusive,
        }
    }

    /// The URL of this virtual host with its credentials, for a process started by the test.
    pub fn amqp_url(&self) -> String {
        let base = std::env::var("ACTIVELOG_TEST_RABBITMQ")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        let authority = base.rsplit_once('/').map_or(base.as_str(), |(a, _)| a);
        format!("{authority}/{}", self.name)
    }

    /// Closes every client connection of this virtual host, as a network failure would.
    pub fn drop_connections(&self) {
        rabbitmqctl(&[
            "close_all_connections",
            "-p",
            &self.name,
            "activelog test: connection dropped",
        ]);
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}

/// The broker stopped (`rabbitmqctl stop_app`); started again when dropped, so that a failing
/// test never leaves it down.
pub struct Stopped(());

impl Stopped {
    pub fn stop() -> Self {
        rabbitmqctl(&["stop_app"]);
        Self(())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let started = Command::new("rabbitmqctl").arg("start_app").output();
        if !matches!(&started, Ok(output) if output.status.success()) {
            eprintln!("rabbitmqctl start_app failed: {started:?}");
        }
        let _ = Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .output();
    }
}

/// Stops the broker for `down_for`, then starts it again.
pub async fn restart(down_for: Duration) {
    let stopped = tokio::task::spawn_blocking(Stopped::stop)
        .await
        .expect("stop_app");
    tokio::time::sleep(down_for).await;
    tokio::task::spawn_blocking(move || drop(stopped))
        .await
        .expect("start_app");
}
