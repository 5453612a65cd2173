//! The local stack's flows through RabbitMQ (`--broker rabbitmq://…`), each test in a virtual host
//! of its own. The flows are `local_stack`'s, shared by every transport; what is checked here is
//! what RabbitMQ says of itself (its adapters' name, why it dead-lettered a message).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use crate::local_stack::{
    LocalStack, a_poison_message_is_dead_lettered_and_can_be_redriven_on,
    two_users_create_update_delete_and_stats_follow_on,
};

async fn rabbitmq_stack() -> (activelog_tests::rabbitmq::Vhost, LocalStack) {
    let vhost = activelog_tests::rabbitmq::Vhost::new().await;
    let url = vhost.amqp_url();
    let stack = LocalStack::start_with(1, &["--broker", &url]);
    (vhost, stack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_rabbitmq_create_update_delete_and_stats_follow() {
    let (_vhost, stack) = rabbitmq_stack().await;
    let listening = stack.log_with_message("activelog-local listening").unwrap();
    assert_eq!(listening["adapters"], "memory+rabbitmq");
    two_users_create_update_delete_and_stats_follow_on(&stack).await;
    let (_, depths) = stack
        .call(reqwest::Method::GET, "/_local/queues", None, None)
        .await;
    assert_eq!(depths["StatsQueue"]["dead_lettered"], 0, "{depths}");
    assert!(depths["AchievementsQueue"].is_object(), "{depths}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_rabbitmq_a_poison_message_is_dead_lettered_and_can_be_redriven() {
    let (_vhost, stack) = rabbitmq_stack().await;
    a_poison_message_is_dead_lettered_and_can_be_redriven_on(
        &stack,
        |dead| {
            assert_eq!(
                dead["reason"], "rejected",
                "poison is rejected to the dead-letter queue at once"
            );
        },
        false,
    )
    .await;
}

#[test]
fn an_unreachable_broker_is_a_clear_start_up_error_without_the_password() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_activelog-local"))
        .args([
            "--port",
            "0",
            "--broker",
            "rabbitmq://guest:hunter2-secret@127.0.0.1:1/%2f",
        ])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it must not start");
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(!logs.contains("hunter2-secret"), "{logs}");
    assert!(
        logs.contains("RabbitMQ broker at amqp://guest:***@127.0.0.1:1/%2f is unreachable"),
        "{logs}"
    );
}
