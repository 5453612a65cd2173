//! The local stack's flows through Kafka (`--broker kafka://…`), each test on a tansu broker of
//! its own (started like the conformance suite's). The flows are `local_stack`'s, shared by every
//! transport; what is checked here is what Kafka says of itself (its adapters' name, why it
//! dead-lettered a message, a refused or unreachable cluster).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use activelog_tests::kafka::Tansu;

use crate::local_stack::{
    LocalStack, a_poison_message_is_dead_lettered_and_can_be_redriven_on,
    one_dead_letter_is_redriven_by_its_id_on, refused_start_logs,
    the_flows_hold_through_the_broker,
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
    the_flows_hold_through_the_broker(&stack, "memory+kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_kafka_one_dead_letter_is_redriven_by_its_id_and_the_other_stays() {
    let (_broker, stack) = kafka_stack();
    one_dead_letter_is_redriven_by_its_id_on(&stack).await;
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
        // Like every broker, Kafka hands the redriven poison back and dead-letters it again
        // within milliseconds, so its dead-letter topic is not seen empty in between; the flow
        // still requires exactly one dead letter afterwards (the redriven one was consumed).
        false,
    )
    .await;
}

#[test]
fn an_unreachable_cluster_is_a_clear_start_up_error() {
    let logs = refused_start_logs("kafka://127.0.0.1:1", Duration::from_secs(30));
    assert!(
        logs.contains("Kafka cluster at kafka://127.0.0.1:1 is unreachable"),
        "{logs}"
    );
}

#[test]
fn credentials_in_a_kafka_url_are_refused_without_being_shown() {
    let logs = refused_start_logs(
        "kafka://u:hunter2-secret@127.0.0.1:9092",
        Duration::from_secs(30),
    );
    assert!(!logs.contains("hunter2-secret"), "{logs}");
    assert!(logs.contains("credentials are not supported"), "{logs}");
}
