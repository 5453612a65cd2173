//! NATS JetStream for the tests: the shared server every machine of this project runs on
//! 127.0.0.1:4222 (`ACTIVELOG_TEST_NATS` overrides it), with streams of their own per test,
//! deleted when dropped; and, for the restart test, a `nats-server -js` of the test's own with
//! its store in a temporary directory. When the server or the binary is missing the tests fail,
//! saying so: they never skip.

use activelog::adapters::nats::NatsUrl;

use crate::broker_process::{BrokerProcess, ServerCommand};

/// The shared server's URL.
pub fn shared_url() -> String {
    std::env::var("ACTIVELOG_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A namespace of its own (its streams and consumers) on a server; its streams are deleted
/// when dropped.
pub struct Namespace {
    pub name: String,
    pub url: NatsUrl,
    raw_url: String,
}

impl Namespace {
    pub fn new(raw_url: &str) -> Self {
        Self {
            name: format!(
                "activelog-test-{}",
                ulid::Ulid::new().to_string().to_lowercase()
            ),
            url: NatsUrl::parse(raw_url).expect("NATS URL"),
            raw_url: raw_url.to_owned(),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let (url, name) = (self.raw_url.clone(), self.name.clone());
        // Drop cannot await: a thread of its own runs the deletion on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(client) = async_nats::connect(url).await else {
                    return;
                };
                let context = async_nats::jetstream::new(client);
                for stream in [format!("{name}-events"), format!("{name}-dead-letters")] {
                    let _ = context.delete_stream(stream).await;
                }
            });
        })
        .join();
    }
}

/// A `nats-server` with JetStream of the test's own, its store in a temporary directory: an
/// orderly restart keeps the streams, the consumers' positions and what was not acknowledged.
///
/// Its storage limit is set in a configuration file rather than left to the server: by default
/// JetStream reserves 75% of the disk that is free when it starts, and on a machine whose disk is
/// nearly full that is less than the events stream's `max_bytes`, so declaring the stream fails
/// with "insufficient storage resources" (error 10047). The tests write a few megabytes; the
/// limit only has to admit the reservation.
pub fn private_server() -> BrokerProcess {
    BrokerProcess::start(ServerCommand {
        program: "nats-server",
        arguments: |port, directory| {
            let configuration = format!("{directory}/nats-server.conf");
            std::fs::write(
                &configuration,
                format!(
                    "jetstream {{\n  store_dir: \"{directory}\"\n  max_file_store: 64GB\n  max_memory_store: 256MB\n}}\n"
                ),
            )
            .expect("the NATS server's configuration file");
            [
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-c",
                &configuration,
            ]
            .map(str::to_owned)
            .to_vec()
        },
        install_hint: "the NATS tests need nats-server on PATH (apt-get install nats-server)",
    })
}
