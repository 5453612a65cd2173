//! The local stack's flows through Redis Streams (`--broker redis://…`), each test under a key
//! prefix of its own on the shared server. The flows are `local_stack`'s, shared by every
//! transport; what is checked here is what Redis says of itself (its adapters' name, why it
//! dead-lettered a message).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use activelog_tests::redis::{Namespace, shared_url};

use crate::local_stack::{
    LocalStack, a_poison_message_is_dead_lettered_and_can_be_redriven_on,
    one_dead_letter_is_redriven_by_its_id_on, refused_start_logs,
    the_flows_hold_through_the_broker,
};

fn redis_stack() -> (Namespace, LocalStack) {
    let url = shared_url();
    let namespace = Namespace::new(&url);
    let stack = LocalStack::start_with(
        1,
        &["--broker", &url, "--broker-namespace", &namespace.name],
    );
    (namespace, stack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_redis_create_update_delete_and_stats_follow() {
    let (_namespace, stack) = redis_stack();
    the_flows_hold_through_the_broker(&stack, "memory+redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_redis_one_dead_letter_is_redriven_by_its_id_and_the_other_stays() {
    let (_namespace, stack) = redis_stack();
    one_dead_letter_is_redriven_by_its_id_on(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_redis_a_poison_message_is_dead_lettered_and_can_be_redriven() {
    let (_namespace, stack) = redis_stack();
    a_poison_message_is_dead_lettered_and_can_be_redriven_on(
        &stack,
        |dead| {
            assert_eq!(
                dead["reason"], "poison",
                "dead-lettered on its first verdict"
            );
        },
        false,
    )
    .await;
}

#[test]
fn an_unreachable_redis_is_a_clear_start_up_error_without_the_password() {
    let logs = refused_start_logs(
        "redis://:hunter2-secret@127.0.0.1:1",
        Duration::from_secs(20),
    );
    assert!(!logs.contains("hunter2-secret"), "{logs}");
    assert!(
        logs.contains("Redis at redis://:***@127.0.0.1:1 is unreachable"),
        "{logs}"
    );
}
