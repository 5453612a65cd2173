//! `activelog-admin` run as the operator runs it: a process, its exit code and what it prints.
//! `--help` lists the subcommands; a `stats rebuild --dry-run` against moto prints the
//! differences it found (with no terminal, so on standard output, as in a CI log) and writes
//! nothing; and the same dry run on projection version 2 sees only v2's (empty) items.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use activelog_tests::moto::{Clients, REGION, unique};
use aws_sdk_dynamodb::types::AttributeValue;

fn admin(args: &[&str], clients: Option<(&Clients, &str)>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_activelog-admin"));
    command.args(args).env_remove("TABLE_NAME");
    if let Some((clients, table)) = clients {
        command
            .env("AWS_ENDPOINT_URL", &clients.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("TABLE_NAME", table);
    }
    command.output().expect("activelog-admin runs")
}

#[test]
fn help_lists_the_subcommands() {
    let output = admin(&["--help"], None);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["stats", "achievements", "replay"] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(subcommand)),
            "`{subcommand}` missing from:\n{help}"
        );
    }
    let rebuild = admin(&["stats", "rebuild", "--help"], None);
    assert!(rebuild.status.success());
    let rebuild = String::from_utf8_lossy(&rebuild.stdout);
    for flag in ["--dry-run", "--rate", "--projection-version", "--resume"] {
        assert!(rebuild.contains(flag), "`{flag}` missing from:\n{rebuild}");
    }
    assert!(!admin(&["stats", "rebuild"], None).status.success(), "who?");
}

async fn all_time_item(clients: &Clients, table: &str, user: &str) -> Option<String> {
    clients
        .dynamodb
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(format!("USER#{user}")))
        .key("SK", AttributeValue::S("STATS#all".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .and_then(|item| item.get("activities").cloned())
        .and_then(|value| value.as_n().ok().cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_differences_and_writes_nothing() {
    let clients = Clients::new();
    let table = unique("admin");
    clients.create_table(&table).await;
    // Statistics for a user with no activity: wrong by 5 activities.
    let user = "dry-run-0";
    clients
        .dynamodb
        .update_item()
        .table_name(&table)
        .key("PK", AttributeValue::S(format!("USER#{user}")))
        .key("SK", AttributeValue::S("STATS#all".into()))
        .update_expression("SET activities = :a, minutes = :m")
        .expression_attribute_values(":a", AttributeValue::N("5".into()))
        .expression_attribute_values(":m", AttributeValue::N("500".into()))
        .send()
        .await
        .unwrap();

    let args = [
        "stats",
        "rebuild",
        "--user",
        user,
        "--dry-run",
        "--settle-seconds",
        "10",
        "--max-clock-skew",
        "0",
    ];
    let output = tokio::task::spawn_blocking({
        let clients_endpoint = (clients.endpoint.clone(), table.clone());
        move || {
            let clients = Clients::at(&clients_endpoint.0);
            admin(&args, Some((&clients, &clients_endpoint.1)))
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(&format!(
            "{user} all: stored 5 activities / 500 min / 0 m / 0 kcal, recomputed 0 / 0 / 0 / 0"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("would correct 1"), "{stdout}");
    assert_eq!(
        all_time_item(&clients, &table, user).await.as_deref(),
        Some("5"),
        "a dry run writes nothing"
    );

    let mut v2 = args.to_vec();
    v2.extend(["--projection-version", "2"]);
    let output = tokio::task::spawn_blocking({
        let (endpoint, table) = (clients.endpoint.clone(), table.clone());
        move || admin(&v2, Some((&Clients::at(&endpoint), &table)))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("stats-v2 rebuild (dry run): 1 users, would correct 0, unchanged 1"),
        "v2 holds nothing, and nothing is due: {stdout}"
    );
}
