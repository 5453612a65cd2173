//! Every sample event under `events/` through its function's real binary, as Lambda runs it: the
//! binary is started with Lambda's environment (in-memory adapters, seeded with
//! `events/seed.json`), polls a loopback Runtime API (`activelog-runtime-api`, the cold-start
//! benchmark's) for the sample, and its answer is judged by the same check as the in-process tests
//! (`support/samples.rs`). This is what the in-process tests cannot see: `main.rs`, the runtime's
//! own (de)serialisation of the event and the answer, and start-up from the environment.
//!
//! Each sample gets a fresh process, so each meets the seeded store as it is on a cold start.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use activelog_runtime_api::{ColdInvocation, Ended, Outcome, RuntimeApi, Start};
use activelog_tests::http::workspace_root;
use activelog_tests::samples::{Answer, Sample, samples_of};
use bytes::Bytes;

/// How long one binary may take from start to answer: a debug build on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The function crates, by their folders under `functions/`.
fn functions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Builds the function binaries (debug) with `scripts/function-binaries.sh`, the command the
/// benchmark and `scripts/test.sh` use, so that one run of the test command builds them once (an
/// up-to-date build takes about a second), and returns them by name. Built here so that the test
/// never runs a stale binary.
fn build() -> BTreeMap<String, PathBuf> {
    let mut command = Command::new("bash");
    command.current_dir(workspace_root()).args([
        "scripts/function-binaries.sh",
        "--message-format=json-render-diagnostics",
    ]);
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "scripts/function-binaries.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut binaries = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(executable)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) && message["reason"] == "compiler-artifact"
        {
            binaries.insert(name.to_owned(), PathBuf::from(executable));
        }
    }
    binaries
}

/// What the binary answered, or why it gave no answer at all.
fn answer(invocation: &ColdInvocation) -> Result<Answer, String> {
    let text = |body: &Bytes| String::from_utf8_lossy(body).into_owned();
    match (&invocation.ended, &invocation.recorded.outcome) {
        (Ended::Outcome, Some((_, Outcome::Response(body)))) => serde_json::from_slice(body)
            .map(Answer::Response)
            .map_err(|e| format!("answered no JSON ({e}): {}", text(body))),
        (Ended::Outcome, Some((_, Outcome::InvocationError(body)))) => {
            Ok(Answer::InvocationError(text(body)))
        }
        (Ended::Outcome, Some((_, Outcome::InitError(body)))) => {
            Err(format!("init failed: {}", text(body)))
        }
        (Ended::Exited(code), _) => Err(format!("exited with {code:?} before answering")),
        (_, _) => Err(format!("no answer within {TIMEOUT:?}")),
    }
}

#[test]
fn every_sample_answers_as_expected_from_its_function_binary() {
    let functions = functions();
    assert!(functions.len() >= 10, "functions: {functions:?}");
    let binaries = build();
    let samples: Vec<Sample> = functions.iter().flat_map(|f| samples_of(f)).collect();
    for function in &functions {
        assert!(
            samples.iter().any(|s| &s.function == function),
            "functions/{function} has no sample events"
        );
    }
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sample-binaries");
    std::fs::create_dir_all(&logs).unwrap();
    let seed = workspace_root().join("events/seed.json");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failures = runtime.block_on(async {
        let api = RuntimeApi::start().await.unwrap();
        let mut failures = Vec::new();
        for (n, sample) in samples.iter().enumerate() {
            let binary = &binaries[&sample.function];
            let mut environment = activelog_runtime_api::lambda_environment(
                &sample.function,
                &api.address.to_string(),
            );
            environment.extend([
                ("ACTIVELOG_ADAPTERS".to_owned(), "memory".to_owned()),
                ("ACTIVELOG_SEED_FILE".to_owned(), seed.display().to_string()),
                ("RUST_LOG".to_owned(), "warn".to_owned()),
            ]);
            let log_path = logs.join(format!("{}.log", sample.function));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let invocation = activelog_runtime_api::invoke_cold(
                &api,
                Start {
                    binary,
                    function_name: &sample.function,
                    environment: &environment,
                    event: Bytes::from(sample.event.to_string()),
                    request_id: format!("00000000-0000-4000-8000-{n:012x}"),
                    log: &log,
                    timeout: TIMEOUT,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
            match answer(&invocation) {
                Ok(answer) => {
                    for problem in sample.expected.problems(&sample.event, &answer) {
                        failures.push(format!("{}: {problem}", sample.label()));
                    }
                }
                Err(why) => failures.push(format!(
                    "{}: {why} (log: {})",
                    sample.label(),
                    log_path.display()
                )),
            }
        }
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {} samples:\n{}",
        failures.len(),
        samples.len(),
        failures.join("\n")
    );
}
