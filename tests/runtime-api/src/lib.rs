//! Runs a Lambda function binary as Lambda runs it, on this machine: started with the environment
//! Lambda gives a `provided.al2023` function, polling a loopback Runtime API for its one event,
//! and stopped once it has answered. Two users need exactly that and nothing of the library: the
//! cold-start benchmark (`bench/cold-start`), which times it, and the sample-event test
//! (`tests/sample_binaries.rs`), which checks what each binary answers. A crate of its own so
//! that neither depends on the other.

mod runtime_api;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use runtime_api::{Outcome, Recorded, RuntimeApi};

/// The environment Lambda gives a `provided.al2023` function called `function_name`, polling
/// the Runtime API at `runtime_api` (`host:port`). Dummy credentials: nothing may reach AWS.
pub fn lambda_environment(function_name: &str, runtime_api: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("_HANDLER", "bootstrap"),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARKONLY000"),
        ("AWS_SECRET_ACCESS_KEY", "benchmark-only-not-a-secret"),
        ("AWS_SESSION_TOKEN", "benchmark-only-session"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
        format!("/aws/lambda/{function_name}"),
    ));
    env.push((
        "AWS_LAMBDA_LOG_STREAM_NAME".into(),
        "2025/01/01/[$LATEST]bench".into(),
    ));
    env
}

/// How a cold invocation ended, as far as the process is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The Runtime API recorded a response, an invocation error or an init error.
    Outcome,
    /// The process exited first, with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// Neither within the timeout.
    Timeout,
}

/// One cold invocation: when the process was started, how it ended, what the Runtime API
/// recorded and the process's peak resident set.
#[derive(Debug)]
pub struct ColdInvocation {
    pub spawned: Instant,
    pub ended: Ended,
    pub recorded: Recorded,
    pub peak_rss_kib: Option<u64>,
}

/// What a function binary is started with.
pub struct Start<'a> {
    pub binary: &'a Path,
    pub function_name: &'a str,
    /// The whole environment: the process inherits nothing else.
    pub environment: &'a [(String, String)],
    pub event: Bytes,
    /// The Runtime API's request id of the invocation.
    pub request_id: String,
    /// Where the process's stdout and stderr go.
    pub log: &'a std::fs::File,
    pub timeout: Duration,
}

/// Starts the binary against `api`, hands it `start.event` as its first invocation, and stops it
/// once the invocation (or its init) has ended, it has exited, or the timeout has passed.
pub async fn invoke_cold(api: &RuntimeApi, start: Start<'_>) -> std::io::Result<ColdInvocation> {
    let (stdout, stderr) = (start.log.try_clone()?, start.log.try_clone()?);
    let mut command = tokio::process::Command::new(start.binary);
    command
        .env_clear()
        .envs(start.environment.iter().map(|(k, v)| (k, v)))
        .current_dir(start.binary.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);

    api.begin(start.request_id, start.function_name, start.event);
    let spawned = Instant::now();
    let spawn = command.spawn();
    let mut child = match spawn {
        Ok(child) => child,
        Err(error) => {
            api.end();
            return Err(error);
        }
    };
    let pid = child.id();
    let ended = tokio::select! {
        () = api.outcome() => Ended::Outcome,
        status = child.wait() => Ended::Exited(status.ok().and_then(|s| s.code())),
        () = tokio::time::sleep(start.timeout) => Ended::Timeout,
    };
    // Read while the process is alive: once it is reaped its peak is gone.
    let peak_rss_kib = pid.and_then(peak_rss_kib);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let recorded = api.end();
    Ok(ColdInvocation {
        spawned,
        ended,
        recorded,
        peak_rss_kib,
    })
}

/// Peak resident set of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
