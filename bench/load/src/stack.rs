//! The local stack under load: `activelog-local` started as a child process on a free port with the
//! broker given, its address read from its JSON log, and its resident memory read from `/proc`;
//! or the bare endpoint it is measured against (`bench/bare-api`), started the same way.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("the stack did not log its address within {0:?}")]
    NoAddress(Duration),
}

/// A running `activelog-local`; killed when dropped.
pub struct LocalStack {
    child: Child,
    pub base: String,
}

impl LocalStack {
    /// Starts `binary --port 0 --broker <broker>` with a namespace of its own on the broker, so
    /// runs on a shared broker do not meet.
    pub fn start(binary: &str, broker: &str, namespace: &str) -> Result<Self, StackError> {
        let mut command = Command::new(binary);
        command
            .args(["--port", "0", "--broker", broker])
            .args(["--broker-namespace", namespace])
            .args(["--relay-interval", "1", "--visibility-timeout", "5"])
            // Per-request logs would measure the terminal; the address line is logged at info.
            .env("RUST_LOG", "warn,activelog_local=info");
        Self::spawn(binary, command)
    }

    /// Starts the bare endpoint `binary --port 0` (`bench/bare-api`).
    pub fn start_bare(binary: &str) -> Result<Self, StackError> {
        let mut command = Command::new(binary);
        command.args(["--port", "0"]);
        Self::spawn(binary, command)
    }

    /// Runs `command` and waits for its `… listening` line with the address.
    fn spawn(binary: &str, mut command: Command) -> Result<Self, StackError> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| StackError::Spawn {
                binary: binary.to_owned(),
                source,
            })?;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            // Read to the end, so the stack never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                        && entry["message"]
                            .as_str()
                            .is_some_and(|m| m.ends_with(" listening"))
                        && let Some(address) = entry["address"].as_str()
                    {
                        let _ = tx.send(address.to_owned());
                    }
                }
            });
        }
        let wait = Duration::from_secs(60);
        match rx.recv_timeout(wait) {
            Ok(address) => Ok(Self {
                child,
                base: format!("http://{address}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(StackError::NoAddress(wait))
            }
        }
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`); `None` off Linux.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl LocalStack {
    /// CPU time the process has used so far, user and system, in seconds (`/proc/<pid>/stat`,
    /// in clock ticks of 1/100 s, Linux's `USER_HZ`); `None` off Linux.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
