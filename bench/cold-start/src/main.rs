//! Cold-start harness: starts each function binary the way Lambda does (its environment, a
//! Runtime API to poll) many times over, and reports how long init and the first invocation took
//! and how much memory the process peaked at, next to a hello-world `lambda_runtime` baseline
//! measured in the same rounds. Runs interleave the binaries round by round, so a noisy neighbour
//! on a shared machine slows all of them alike rather than one. Everything stays on loopback:
//! `AWS_ENDPOINT_URL` points at the given endpoint, or at this harness, never at AWS. With
//! `--tls-endpoint` it points at a TLS endpoint of the harness's own (see [`aws_endpoint`]), so
//! that the first invocation makes its AWS calls over a verified TLS connection.

mod aws_endpoint;
mod report;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};

use crate::report::{Figures, Sample};
use activelog_runtime_api::{ColdInvocation, Ended, Outcome, RuntimeApi, Start};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Adapters {
    /// `ACTIVELOG_ADAPTERS=memory`: the first invocation runs entirely in the process.
    Memory,
    /// `ACTIVELOG_ADAPTERS=aws`: real SDK clients; the first invocation calls `AWS_ENDPOINT_URL`.
    Aws,
}

impl Adapters {
    fn as_str(self) -> &'static str {
        match self {
            Adapters::Memory => "memory",
            Adapters::Aws => "aws",
        }
    }
}

/// Measures cold starts of Lambda function binaries against a loopback Runtime API.
#[derive(Debug, Parser)]
struct Args {
    /// Directory of function binaries: `<dir>/<name>` executables, or `<dir>/<name>/bootstrap`.
    #[arg(long)]
    functions: PathBuf,
    /// The hello-world baseline, built with the same profile as the functions.
    #[arg(long)]
    baseline: PathBuf,
    /// Sample events, `<dir>/<function>/<case>.json` with `expected.json`; the first case
    /// expected to succeed is the event of the first invocation (`{}` when there is none).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Cold starts per binary (the figures need at least 20; a smoke run may use fewer).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// How long one cold start may take before it counts as a timeout.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Which adapters the functions run on.
    #[arg(long, value_enum, default_value_t = Adapters::Memory)]
    adapters: Adapters,
    /// Where the AWS clients send their calls (e.g. a moto server on loopback); defaults to
    /// this harness, which answers 404, so that nothing ever reaches AWS.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// Serve the AWS calls over TLS from this harness (a certificate authority made for the run,
    /// given to the functions as `SSL_CERT_FILE`) and answer them with success, so that init +
    /// first invoke includes a handshake and real round trips. Implies `--adapters aws`.
    #[arg(long)]
    tls_endpoint: bool,
    /// Seed file for memory mode (`ACTIVELOG_SEED_FILE`), so that read samples find their data.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Where each binary's stdout and stderr go (`<dir>/<name>.log`).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("activelog-cold-start"))]
    logs: PathBuf,
    /// Only the functions with these names (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// The event of a function that has no sample, `NAME=FILE` (repeatable), e.g. the scheduled
    /// event of `relay-outbox`.
    #[arg(long, value_parser = key_value::<PathBuf>)]
    event: Vec<(String, PathBuf)>,
    /// An extra variable for every binary, `NAME=VALUE` (repeatable), e.g. `SSL_CERT_FILE`.
    #[arg(long, value_parser = key_value::<String>)]
    env: Vec<(String, String)>,
}

fn key_value<V: From<String>>(raw: &str) -> Result<(String, V), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), V::from(v.to_owned())))
        .ok_or_else(|| format!("`{raw}` is not NAME=VALUE"))
}

/// A binary to measure and what it is given.
struct Subject {
    name: String,
    path: PathBuf,
    event: Bytes,
}

#[derive(Debug, thiserror::Error)]
enum HarnessError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no function binaries in {0}")]
    NoFunctions(String),
    #[error("TLS endpoint: {0}")]
    Endpoint(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> HarnessError + '_ {
    move |source| HarnessError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The function binaries of a directory, by name.
fn discover(dir: &Path, only: &[String]) -> Result<Vec<(String, PathBuf)>, HarnessError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let binary = if path.is_dir() {
            path.join("bootstrap")
        } else {
            path
        };
        if is_executable(&binary) && (only.is_empty() || only.contains(&name)) {
            found.push((name, binary));
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(HarnessError::NoFunctions(dir.display().to_string()));
    }
    Ok(found)
}

/// The sample a function's first invocation gets: a case of `expected.json` that is expected to
/// succeed (a 2xx status, or a batch with no failures), `valid.json` or `batch.json` first.
fn sample_event(events: Option<&Path>, function: &str) -> Bytes {
    let fallback = Bytes::from_static(b"{}");
    let Some(dir) = events.map(|e| e.join(function)) else {
        return fallback;
    };
    let expected: BTreeMap<String, serde_json::Value> =
        std::fs::read_to_string(dir.join("expected.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
    let succeeds = |outcome: &serde_json::Value| {
        let status_ok = outcome
            .get("status")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|s| (200..300).contains(&s));
        let batch_ok = outcome
            .get("batch_item_failures")
            .and_then(serde_json::Value::as_array)
            .is_some_and(Vec::is_empty);
        status_ok || batch_ok
    };
    // `valid.json` (HTTP) or `batch.json` (SQS) when they succeed: the ordinary request.
    let preferred = ["valid.json", "batch.json"]
        .into_iter()
        .filter_map(|case| expected.get_key_value(case));
    preferred
        .chain(&expected)
        .find(|(_, outcome)| succeeds(outcome))
        .and_then(|(case, _)| std::fs::read(dir.join(case)).ok())
        .map_or(fallback, Bytes::from)
}

/// The environment Lambda gives a `provided.al2023` function, plus activelog's own variables.
fn lambda_environment(
    args: &Args,
    name: &str,
    runtime_api: &str,
    aws_endpoint: &str,
) -> Vec<(String, String)> {
    let mut env = activelog_runtime_api::lambda_environment(name, runtime_api);
    env.extend(
        [
            ("AWS_ENDPOINT_URL", aws_endpoint),
            ("ACTIVELOG_ADAPTERS", args.adapters.as_str()),
            ("TABLE_NAME", "activelog-bench"),
            ("EVENT_BUS_NAME", "activelog-bench"),
            (
                "CURSOR_SECRET",
                "benchmark-cursor-secret-of-at-least-32-bytes",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    if let (Adapters::Memory, Some(seed)) = (args.adapters, &args.seed) {
        env.push(("ACTIVELOG_SEED_FILE".into(), seed.display().to_string()));
    }
    env.extend(args.env.iter().cloned());
    env
}

/// A few words on how the first invocation ended: the HTTP status of an API Gateway response,
/// the number of failed items of an SQS batch response, or the error type; and whether the run
/// completed an invocation.
fn describe(outcome: &Outcome) -> (String, bool) {
    let json = |body: &Bytes| serde_json::from_slice::<serde_json::Value>(body).ok();
    match outcome {
        Outcome::Response(body) => {
            let value = json(body);
            let status = value
                .as_ref()
                .and_then(|v| v.get("statusCode"))
                .and_then(serde_json::Value::as_u64);
            let failures = value
                .as_ref()
                .and_then(|v| v.get("batchItemFailures"))
                .and_then(serde_json::Value::as_array)
                .map(Vec::len);
            let text = match (status, failures) {
                (Some(status), _) => status.to_string(),
                (None, Some(n)) => format!("{n} failed items"),
                (None, None) => "ok".to_owned(),
            };
            (text, true)
        }
        Outcome::InvocationError(body) | Outcome::InitError(body) => {
            let kind = json(body)
                .and_then(|v| v.get("errorType")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            let place = match outcome {
                Outcome::InitError(_) => "init error",
                _ => "error",
            };
            // An invocation error is a result worth showing; only a failed init is a failed run.
            let completed = matches!(outcome, Outcome::InvocationError(_));
            (format!("{place}: {kind}"), completed)
        }
    }
}

async fn cold_start(
    api: &RuntimeApi,
    subject: &Subject,
    environment: &[(String, String)],
    log: &File,
    run: u64,
    timeout: Duration,
    served: Option<&aws_endpoint::Served>,
) -> Result<Sample, HarnessError> {
    let served_before = served.map(aws_endpoint::Served::count);
    let ColdInvocation {
        spawned,
        ended,
        recorded,
        peak_rss_kib,
    } = activelog_runtime_api::invoke_cold(
        api,
        Start {
            binary: &subject.path,
            function_name: &subject.name,
            environment,
            event: subject.event.clone(),
            request_id: format!("00000000-0000-4000-8000-{run:012x}"),
            log,
            timeout,
        },
    )
    .await
    .map_err(io_error(&subject.path))?;

    let (result, responded) = match (&ended, &recorded.outcome) {
        (Ended::Outcome, Some((_, outcome))) => describe(outcome),
        (Ended::Exited(code), _) => {
            let code = code.map_or_else(|| "signal".to_owned(), |c| c.to_string());
            let when = if recorded.first_next.is_some() {
                "during the invocation"
            } else {
                "before /next"
            };
            (format!("exited ({code}) {when}"), false)
        }
        _ => ("timeout".to_owned(), false),
    };
    // On the TLS endpoint, what the run cost it: one handshake per connection the function
    // opened (a process is killed after its first invocation, so none is reused across runs).
    let result = match (served, served_before) {
        (Some(served), Some((handshakes, calls))) => {
            let (handshakes_after, calls_after) = served.count();
            format!(
                "{result}; {} TLS handshakes, {} calls",
                handshakes_after - handshakes,
                calls_after - calls
            )
        }
        _ => result,
    };
    let first_response = match &recorded.outcome {
        Some((at, Outcome::Response(_) | Outcome::InvocationError(_))) => {
            Some(at.duration_since(spawned))
        }
        _ => None,
    };
    Ok(Sample {
        init: recorded.first_next.map(|at| at.duration_since(spawned)),
        first_response,
        peak_rss_kib,
        result,
        responded,
    })
}

async fn measure(args: Args) -> Result<bool, HarnessError> {
    let mut subjects = vec![Subject {
        name: "hello-world (baseline)".into(),
        path: args.baseline.clone(),
        event: Bytes::from_static(b"{\"hello\":\"world\"}"),
    }];
    for (name, path) in discover(&args.functions, &args.only)? {
        let given = args.event.iter().find(|(n, _)| *n == name);
        let event = match given {
            Some((_, path)) => Bytes::from(std::fs::read(path).map_err(io_error(path))?),
            None => sample_event(args.events.as_deref(), &name),
        };
        subjects.push(Subject { name, path, event });
    }

    let api = RuntimeApi::start()
        .await
        .map_err(io_error(Path::new("127.0.0.1:0")))?;
    let runtime_api = api.address.to_string();
    std::fs::create_dir_all(&args.logs).map_err(io_error(&args.logs))?;
    let mut args = args;
    let mut served = None;
    let aws_endpoint = if args.tls_endpoint {
        args.adapters = Adapters::Aws;
        let endpoint = aws_endpoint::start()
            .await
            .map_err(|e| HarnessError::Endpoint(e.to_string()))?;
        let ca = args.logs.join("cold-start-ca.pem");
        aws_endpoint::write_ca(&endpoint, &ca).map_err(io_error(&ca))?;
        // Before the caller's own `--env`, which may replace it.
        args.env
            .insert(0, ("SSL_CERT_FILE".into(), ca.display().to_string()));
        served = Some(endpoint.served);
        endpoint.url
    } else {
        args.aws_endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{runtime_api}"))
    };
    let timeout = Duration::from_millis(args.timeout_ms);

    let mut prepared = Vec::new();
    for subject in &subjects {
        let log_path = args
            .logs
            .join(format!("{}.log", subject.name.replace(' ', "-")));
        let log = File::create(&log_path).map_err(io_error(&log_path))?;
        let environment = lambda_environment(&args, &subject.name, &runtime_api, &aws_endpoint);
        prepared.push((environment, log));
    }

    eprintln!(
        "cold-start: {} binaries × {} runs (+1 warm-up), adapters={}, AWS endpoint {aws_endpoint}, runtime API {runtime_api}, logs in {}",
        subjects.len(),
        args.runs,
        args.adapters.as_str(),
        args.logs.display()
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); subjects.len()];
    let mut run = 0u64;
    // Round 0 is the warm-up: page cache and dynamic loader, not recorded. Each round starts one
    // binary further on, so that no binary always runs first (or right after the same other one).
    for round in 0..=args.runs {
        for offset in 0..subjects.len() {
            let i = (round + offset) % subjects.len();
            let subject = &subjects[i];
            run += 1;
            let (environment, log) = &prepared[i];
            let sample = cold_start(
                &api,
                subject,
                environment,
                log,
                run,
                timeout,
                served.as_deref(),
            )
            .await?;
            if round > 0 {
                samples[i].push(sample);
            }
        }
    }

    let figures: Vec<Figures> = subjects
        .iter()
        .zip(&samples)
        .map(|(subject, samples)| Figures::of(&subject.name, samples))
        .collect();
    let (baseline, functions) = figures
        .split_first()
        .ok_or_else(|| HarnessError::NoFunctions(args.functions.display().to_string()))?;
    println!(
        "{}",
        report::table(
            baseline,
            functions,
            if args.tls_endpoint {
                "aws over TLS"
            } else {
                args.adapters.as_str()
            }
        )
    );
    Ok(samples.iter().flatten().all(|s| s.responded))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match measure(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "cold-start: some runs did not complete an invocation (see the last column and the logs)"
            );
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("cold-start: {error}");
            ExitCode::FAILURE
        }
    }
}
