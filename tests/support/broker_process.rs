//! A broker server of the test's own, on a free loopback port with its data in a temporary
//! directory, for the tests that restart their broker: the shared servers on 6379 and 4222 serve
//! every engineer and test on the machine, and restarting them would break the others (a Redis
//! without persistence would also lose everything it held). Stopped and its directory removed
//! when dropped, so a failing test leaves nothing running. A missing binary fails the test,
//! saying which package provides it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a server is started on a port with a data directory.
pub struct ServerCommand {
    pub program: &'static str,
    /// The arguments for this port and data directory.
    pub arguments: fn(u16, &str) -> Vec<String>,
    /// What to install when the program is missing.
    pub install_hint: &'static str,
}

pub struct BrokerProcess {
    command: ServerCommand,
    pub port: u16,
    pub directory: PathBuf,
    child: Option<Child>,
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

impl BrokerProcess {
    pub fn start(command: ServerCommand) -> Self {
        let directory = std::env::temp_dir().join(format!(
            "activelog-{}-{}",
            command.program.rsplit('/').next().unwrap_or("broker"),
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        std::fs::create_dir_all(&directory).expect("a temporary directory");
        let mut process = Self {
            command,
            port: free_port(),
            directory,
            child: None,
        };
        process.launch();
        process
    }

    fn launch(&mut self) {
        let arguments = (self.command.arguments)(self.port, &self.directory.to_string_lossy());
        // Debian installs nats-server in /usr/sbin, which not every PATH holds.
        let program = self.command.program;
        let child = [program.to_owned(), format!("/usr/sbin/{program}")]
            .iter()
            .find_map(|candidate| {
                Command::new(candidate)
                    .args(&arguments)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{program} could not start: {}", self.command.install_hint));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{} within 15 s",
                self.command.program,
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server the way an orderly shutdown does (SIGTERM), and waits for it to exit.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server, waits `down_for`, and starts it again on the same port and data.
    pub async fn restart(&mut self, down_for: Duration) {
        tokio::task::block_in_place(|| self.terminate());
        tokio::time::sleep(down_for).await;
        tokio::task::block_in_place(|| self.launch());
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
