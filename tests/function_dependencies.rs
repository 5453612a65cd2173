//! What each Lambda function links, from cargo's own resolution of that function alone (as
//! `cargo lambda build -p <function>` resolves it): code that only the local stack, the tests or
//! another HTTP stack need stays out of the zips (issue 15, every zipped arm64 function ≤ 2.0 MB;
//! the figures are in docs/benchmarks.md). A dependency that comes back shows here before it shows
//! in a size measurement.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;

use activelog_tests::http::workspace_root;

/// Crates no function may link, and why.
const KEPT_OUT: [(&str, &str); 2] = [
    (
        "reqwest",
        "span export posts over the hyper client the SDK adapters link (traces/otlp_http.rs)",
    ),
    (
        "quamina",
        "the in-memory bus matches patterns only with `memory-routing`, which no function enables",
    ),
];

/// What `cargo tree -p function <extra>` prints, one package or feature a line, without the tree.
fn tree(function: &str, extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .args(["-p", function])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree -p {function} {extra:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The packages `function` links (normal dependencies, its default features), by name.
fn linked(function: &str) -> BTreeSet<String> {
    tree(function, &["-e", "normal", "--format", "{p}"])
        .iter()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Every Lambda function's package name.
fn functions() -> Vec<String> {
    let root = workspace_root().join("functions");
    let mut functions: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| root.join(name).join("Cargo.toml").exists())
        .collect();
    functions.sort();
    assert!(functions.len() >= 10, "{functions:?}");
    functions
}

/// The functions build `log` with `release_max_level_off` (the workspace's `log` dependency says
/// why): that silences nothing only while tracing, which speaks `log` until a subscriber is set,
/// and tracing-subscriber's bridge are its only users in a function.
#[test]
fn every_function_turns_log_off_in_release_and_nothing_in_it_logs_through_log() {
    for function in functions() {
        let features = tree(&function, &["-e", "features", "-i", "log", "--depth", "1"]);
        assert!(
            features.contains(&"log feature \"release_max_level_off\"".to_owned()),
            "{function}: {features:#?}"
        );
        let users: BTreeSet<String> = tree(
            &function,
            &[
                "-e", "normal", "-i", "log", "--depth", "1", "--format", "{p}",
            ],
        )
        .iter()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|user| *user != "log" && *user != function)
        .collect();
        let expected: BTreeSet<String> = ["tracing", "tracing-log"].map(str::to_owned).into();
        assert_eq!(
            users, expected,
            "{function}: a new user of `log`, whose lines a release build of the function would drop"
        );
    }
}

#[test]
fn no_function_links_what_only_the_local_stack_or_a_second_http_stack_needs() {
    let functions = functions();
    let mut found = Vec::new();
    for function in &functions {
        let linked = linked(function);
        assert!(linked.contains("activelog"), "{function}: {linked:?}");
        for (name, why) in KEPT_OUT {
            if linked.contains(name) {
                found.push(format!("{function} links {name}; {why}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
