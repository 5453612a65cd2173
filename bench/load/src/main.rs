//! Load on the local stack (issue #14): starts `activelog-local` on the broker given (`memory`,
//! a RabbitMQ URL, or any transport `--broker` accepts as others are added), drives it with N
//! concurrent users for a fixed number of requests, prints throughput and latency percentiles,
//! waits for the pipeline to go idle and checks the reliability invariants through the public API
//! and `/_local/`. With `--soak-seconds` it keeps the load going in rounds for that long, on a
//! bounded working set (the same users every round, each with at most `--working-set` live
//! activities), and samples resident memory after every round: the store then stays bounded, so
//! memory that keeps growing is a leak, and the slope over the second half shows it.
//!
//! With `--creates-only` every request is a create; with `--bare BINARY` too, the same creates
//! then go to the bare axum endpoint of `bench/bare-api` started on its own, and the figures
//! include its throughput and latency and the stack's throughput as a share of it (issue 15,
//! the local stack next to bare axum).
//!
//! Figures are for the build it is pointed at: `scripts/reliability.sh` builds the stack with
//! `--release` first.

mod stack;
mod workload;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

use crate::stack::LocalStack;
use crate::workload::{Choices, LoadOutcome, Mix, UserLedger, check, user_load, wait_until_idle};

#[derive(Debug, Parser)]
#[command(name = "load-bench")]
struct Options {
    /// The `activelog-local` binary to start.
    #[arg(long, default_value = "target/release/activelog-local")]
    stack: String,
    /// The event transport, as `activelog-local --broker` takes it.
    #[arg(long, default_value = "memory")]
    broker: String,
    /// Concurrent users, each sending its requests one after another.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Requests in all (per round when soaking).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Seed of the users' choices; printed, so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep loading in rounds for this long, then compare RSS at the end with the start. The
    /// soak's users are the same every round and each keeps at most `--working-set` live
    /// activities, so the store stays bounded and only a leak can make memory grow.
    #[arg(long, default_value_t = 0)]
    soak_seconds: u64,
    /// Live activities per user at most while soaking (creates give way to deletes beyond it).
    #[arg(long, default_value_t = 20)]
    working_set: usize,
    /// Every request a create (the stats are still checked exact at the end).
    #[arg(long)]
    creates_only: bool,
    /// After the stack, send the same creates to this bare endpoint (`bench/bare-api`) and report
    /// it next to the stack.
    #[arg(long, requires = "creates_only")]
    bare: Option<String>,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("load-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

/// One round: every user's share of `requests`, concurrently. A soak's users are the same in
/// every round and carry on from what they were told in the last (`ledgers`); a plain run's
/// users are new.
async fn round(
    client: &reqwest::Client,
    base: &str,
    options: &Options,
    seed: u64,
    round: usize,
    ledgers: &mut BTreeMap<String, UserLedger>,
) -> LoadOutcome {
    let users = options.users.max(1);
    let soak = options.soak_seconds > 0;
    let mut tasks = Vec::new();
    for u in 0..users {
        let requests = options.requests / users + usize::from(u < options.requests % users);
        let user = if soak {
            format!("load-{seed}-u{u}")
        } else {
            format!("load-{seed}-r{round}-u{u}")
        };
        let ledger = ledgers.remove(&user).unwrap_or_default();
        tasks.push(tokio::spawn(user_load(
            client.clone(),
            base.to_owned(),
            user,
            ledger,
            requests,
            if options.creates_only {
                Mix::CreatesOnly
            } else {
                Mix::Mixed {
                    working_set: soak.then_some(options.working_set),
                }
            },
            Choices::new(seed ^ round as u64, u),
        )));
    }
    let mut outcome = LoadOutcome::default();
    for task in tasks {
        if let Ok(one) = task.await {
            outcome.merge(one);
        }
    }
    ledgers.append(&mut outcome.ledgers);
    outcome
}

/// Resident memory after a round: (seconds since the start, requests so far, KiB).
type RssSample = (f64, usize, Option<u64>);

async fn run(options: &Options) -> Result<bool, Box<dyn std::error::Error>> {
    let seed = options.seed.unwrap_or_else(|| {
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 % 1_000_000_000
    });
    let namespace = format!("load-{seed}");
    eprintln!(
        "load-bench: {} users, {} requests, broker {}, seed {seed}",
        options.users,
        options.requests,
        options.broker.split("://").next().unwrap_or_default()
    );
    let stack = LocalStack::start(&options.stack, &options.broker, &namespace)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.users)
        .build()?;
    let rss_start = stack.rss_kib();
    let started = Instant::now();
    let mut ledgers = BTreeMap::new();
    let mut outcome = round(&client, &stack.base, options, seed, 0, &mut ledgers).await;
    let first_round = started.elapsed();
    let mut samples: Vec<RssSample> = vec![
        (0.0, 0, rss_start),
        (
            first_round.as_secs_f64(),
            outcome.latencies.len(),
            stack.rss_kib(),
        ),
    ];
    let mut rounds = 1;
    while started.elapsed() < Duration::from_secs(options.soak_seconds) {
        outcome.merge(round(&client, &stack.base, options, seed, rounds, &mut ledgers).await);
        rounds += 1;
        samples.push((
            started.elapsed().as_secs_f64(),
            outcome.latencies.len(),
            stack.rss_kib(),
        ));
    }
    let load_time = started.elapsed();
    let idle_after = wait_until_idle(&client, &stack.base, Duration::from_secs(120)).await?;
    // Everything the load caused, the pipeline behind the requests included, before the checks'
    // own reads.
    let cpu_seconds = stack.cpu_seconds();
    let rss_end = stack.rss_kib();
    let (passed, mut violations) = check(&client, &stack.base, &ledgers).await?;
    let server_errors: u64 = outcome.by_status.range(500..).map(|(_, n)| n).sum();
    if server_errors > 0 || outcome.unanswered > 0 {
        violations.push(format!(
            "{server_errors} 5xx answers and {} unanswered requests without any fault",
            outcome.unanswered
        ));
    }
    drop(stack);
    let mut latencies = outcome.latencies.clone();
    latencies.sort();
    let requests = latencies.len();
    let throughput = requests as f64 / load_time.as_secs_f64();
    let bare = match &options.bare {
        Some(binary) => {
            let (figures, problems) = bare_round(binary, options, seed).await?;
            violations.extend(problems);
            Some(figures)
        }
        None => None,
    };
    let throughput_vs_bare = bare
        .as_ref()
        .and_then(|b| b["throughput_per_second"].as_f64())
        .map(|bare| throughput / bare);
    let figures = json!({
        // The transport, never the URL (it may hold a password).
        "broker": options.broker.split("://").next().unwrap_or_default(),
        "seed": seed,
        "users": options.users,
        "requests": requests,
        "rounds": rounds,
        "answers": outcome.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "load_seconds": load_time.as_secs_f64(),
        "first_round_seconds": first_round.as_secs_f64(),
        "throughput_per_second": throughput,
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "idle_after_seconds": idle_after.as_secs_f64(),
        "invariant_checks_passed": passed,
        "violations": violations,
        "rss_start_kib": rss_start,
        "rss_end_kib": rss_end,
        "working_set": (options.soak_seconds > 0).then_some(options.working_set),
        "rss_samples": samples.iter().map(|(at, requests, kib)| json!({"seconds": at, "requests": requests, "rss_kib": kib})).collect::<Vec<_>>(),
        "rss_growth_after_warmup": growth_after_warmup(&samples),
        "cpu_seconds": cpu_seconds,
        "cpu_us_per_request": cpu_seconds.map(|s| s * 1e6 / requests.max(1) as f64),
        "creates_only": options.creates_only,
        "bare": bare,
        "throughput_vs_bare": throughput_vs_bare,
    });
    println!("{figures}");
    if let Some(path) = &options.json {
        std::fs::write(path, figures.to_string())?;
    }
    for violation in &violations {
        eprintln!("load-bench: VIOLATION {violation}");
    }
    Ok(violations.is_empty())
}

/// The same creates (same seed, users and requests) sent to the bare endpoint `binary`, started
/// after the stack has stopped: its figures, and what it answered other than 201.
async fn bare_round(
    binary: &str,
    options: &Options,
    seed: u64,
) -> Result<(serde_json::Value, Vec<String>), Box<dyn std::error::Error>> {
    let server = LocalStack::start_bare(binary)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.users)
        .build()?;
    let started = Instant::now();
    let outcome = round(
        &client,
        &server.base,
        options,
        seed,
        0,
        &mut BTreeMap::new(),
    )
    .await;
    let load_time = started.elapsed();
    let cpu_seconds = server.cpu_seconds();
    let mut latencies = outcome.latencies;
    latencies.sort();
    let mut problems = Vec::new();
    let other: u64 = outcome
        .by_status
        .iter()
        .filter(|(status, _)| **status != 201)
        .map(|(_, n)| n)
        .sum();
    if other > 0 || outcome.unanswered > 0 {
        problems.push(format!(
            "the bare endpoint answered {other} creates other than 201 and left {} unanswered",
            outcome.unanswered
        ));
    }
    let figures = json!({
        "requests": latencies.len(),
        "answers": outcome.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "load_seconds": load_time.as_secs_f64(),
        "throughput_per_second": latencies.len() as f64 / load_time.as_secs_f64(),
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "cpu_seconds": cpu_seconds,
        "cpu_us_per_request": cpu_seconds.map(|s| s * 1e6 / latencies.len().max(1) as f64),
    });
    Ok((figures, problems))
}

/// How resident memory grew over the second half of a soak, when the working set is full and
/// the allocator warmed up: KiB from the middle sample to the last, and bytes per request. A
/// store that keeps what it should drop, or a log that only grows, shows here as a steady
/// slope; a bounded working set shows as a flat line.
fn growth_after_warmup(samples: &[RssSample]) -> serde_json::Value {
    let measured: Vec<(usize, u64)> = samples
        .iter()
        .filter_map(|(_, requests, kib)| kib.map(|kib| (*requests, kib)))
        .collect();
    if measured.len() < 4 {
        return serde_json::Value::Null;
    }
    let (from_requests, from_kib) = measured[measured.len() / 2];
    let (to_requests, to_kib) = measured[measured.len() - 1];
    let requests = to_requests.saturating_sub(from_requests).max(1);
    let grown_kib = to_kib as i64 - from_kib as i64;
    json!({
        "from_requests": from_requests,
        "to_requests": to_requests,
        "from_kib": from_kib,
        "to_kib": to_kib,
        "grown_kib": grown_kib,
        "bytes_per_request": grown_kib as f64 * 1024.0 / requests as f64,
    })
}
