//! A real Kafka-protocol broker on loopback for the tests: tansu (an Apache-2.0 Kafka-API broker
//! written in Rust), which `scripts/install-kafka-broker.sh` builds once into a cache outside the
//! clone. Each test starts its own broker on a free 127.0.0.1 port, the way `moto.rs` starts
//! moto, so tests never share topics or groups, and a test can stop and restart its broker
//! without touching anyone else.
//!
//! The broker keeps its data in SQLite, in a directory of its own (tansu's `sqlite://` engine):
//! unlike tansu's in-memory engine, which starts empty after a restart (no topics, no messages,
//! no committed offsets), this keeps what it acknowledged, so the restart test is about a real
//! broker restart, not a new broker.
//!
//! `ACTIVELOG_TANSU` names the executable (default: the install script's cache path). When it is
//! missing the tests fail, saying how to install it: they never skip.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use activelog::adapters::kafka::KafkaUrl;

/// The version `scripts/install-kafka-broker.sh` installs.
pub const TANSU_VERSION: &str = "0.6.0";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running tansu broker; stopped when dropped, its data directory removed.
pub struct Tansu {
    port: u16,
    data: PathBuf,
    /// The supervising shell: it kills tansu when its stdin closes, which happens when this
    /// handle is dropped or the test process exits, however it exits.
    supervisor: Mutex<Option<Child>>,
}

impl Tansu {
    /// Starts a broker on a free loopback port with an empty data directory.
    pub fn start() -> Self {
        let port = free_port();
        let data = std::env::temp_dir().join(format!(
            "activelog-tansu-{port}-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::create_dir_all(&data).unwrap();
        let broker = Self {
            port,
            data,
            supervisor: Mutex::new(None),
        };
        broker.launch();
        broker
    }

    pub fn url(&self) -> KafkaUrl {
        KafkaUrl::parse(&format!("kafka://127.0.0.1:{}", self.port)).unwrap()
    }

    fn launch(&self) {
        let executable = tansu_executable();
        assert!(
            executable.exists(),
            "tansu not found at {}; run scripts/install-kafka-broker.sh (or set ACTIVELOG_TANSU \
             to a tansu {TANSU_VERSION} executable built with the libsql feature)",
            executable.display()
        );
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = self.data.join("tansu.log");
        let supervisor = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" broker --listener-url "$1" --advertised-listener-url "$1" --storage-engine sqlite://tansu.db >>"$2" 2>&1 & pid=$!; cat >/dev/null; kill "$pid"; wait "$pid""#)
            .arg(&executable)
            .arg(&listener)
            .arg(&log)
            .current_dir(&self.data)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", executable.display()));
        *self.supervisor.lock().unwrap() = Some(supervisor);
        let deadline = Instant::now() + START_TIMEOUT;
        while !answers(self.port) {
            assert!(
                Instant::now() < deadline,
                "tansu on port {} did not listen within {START_TIMEOUT:?}; its log:\n{}",
                self.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&self) {
        if let Some(mut supervisor) = self.supervisor.lock().unwrap().take() {
            // Closing stdin makes the supervisor kill tansu, and wait for it.
            drop(supervisor.stdin.take());
            let _ = supervisor.wait();
        }
    }

    /// Stops the broker, waits `down_for`, and starts it again on the same port and data.
    pub async fn restart(&self, down_for: Duration) {
        self.stop();
        tokio::time::sleep(down_for).await;
        self.launch();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn tansu_executable() -> PathBuf {
    if let Some(path) = std::env::var_os("ACTIVELOG_TANSU") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("ACTIVELOG_TOOLS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/activelog"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/activelog"));
    cache.join(format!("tansu-{TANSU_VERSION}/bin/tansu"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn answers(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}
