//! The local stack's flows through Kafka (`--broker kafka://…`), each test on a tansu broker of
//! its own (started like the conformance suite's). The flows are `local_stack`'s, shared by every
//! transport; what is checked here is what Kafka says of itself (its adapters' name, why it
//! dead-lettered a message, a refused or unreachable cluster).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use activelog_tests::kafka::Tansu;

use crate::local_stack::{
    LocalStack, a_poison_message_is_dead_lettered_and_can_be_redriven_on,
    two_users_create_update_delete_and_stats_follow_on,
};

fn kafka_stack() -> (Tansu, LocalStack) {
    let broker = Tansu::start();
    let url = broker.url().to_string();
    let stack = LocalStack::start_with(1, &["--broker", &url]);
    (broker, stack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_kafka_create_update_delete_and_stats_follow() {
    let (_broker, stack) = kafka_stack();
    let listening = stack.log_with_message("activelog-local listening").unwrap();
    assert_eq!(listening["adapters"], "memory+kafka");
    two_users_create_update_delete_and_stats_follow_on(&stack).await;
    let (_, depths) = stack
        .call(reqwest::Method::GET, "/_local/queues", None, None)
        .await;
    assert_eq!(depths["StatsQueue"]["dead_lettered"], 0, "{depths}");
    assert!(depths["AchievementsQueue"].is_object(), "{depths}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_kafka_a_poison_message_is_dead_lettered_and_can_be_redriven() {
    let (_broker, stack) = kafka_stack();
    a_poison_message_is_dead_lettered_and_can_be_redriven_on(
        &stack,
        |dead| {
            assert_eq!(
                dead["reason"], "poison",
                "poison goes to the dead-letter topic at once, saying why"
            );
            assert_eq!(dead["attempts"], 1);
        },
        true,
    )
    .await;
}

#[test]
fn an_unreachable_cluster_is_a_clear_start_up_error() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
        .args(["--port", "0", "--broker", "kafka://127.0.0.1:1"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it must not start");
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("Kafka cluster at kafka://127.0.0.1:1 is unreachable"),
        "{logs}"
    );
}

#[test]
fn credentials_in_a_kafka_url_are_refused_without_being_shown() {
    let output = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
        .args([
            "--port",
            "0",
            "--broker",
            "kafka://u:hunter2-secret@127.0.0.1:9092",
        ])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it must not start");
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(!logs.contains("hunter2-secret"), "{logs}");
    assert!(logs.contains("credentials are not supported"), "{logs}");
}
