//! The local stack's flows through RabbitMQ (`--broker rabbitmq://…`), each test in a virtual host
//! of its own. The flows are `local_stack`'s, shared by every transport; what is checked here is
//! what RabbitMQ says of itself (its adapters' name, why it dead-lettered a message), and the same
//! flows with `--aws` on DynamoDB (moto) as the store.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::local_stack::{
    LocalStack, a_poison_message_is_dead_lettered_and_can_be_redriven_on,
    one_dead_letter_is_redriven_by_its_id_on, refused_start_logs,
    the_flows_hold_through_the_broker, two_users_create_update_delete_and_stats_follow_on,
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
    the_flows_hold_through_the_broker(&stack, "memory+rabbitmq").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_rabbitmq_one_dead_letter_is_redriven_by_its_id_and_the_other_stays() {
    let (_vhost, stack) = rabbitmq_stack().await;
    one_dead_letter_is_redriven_by_its_id_on(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_rabbitmq_a_poison_message_is_dead_lettered_and_can_be_redriven() {
    let (_vhost, stack) = rabbitmq_stack().await;
    a_poison_message_is_dead_lettered_and_can_be_redriven_on(&stack, rejected_at_once, false).await;
}

/// What RabbitMQ says of a poison message: rejected by the consumer, dead-lettered at once.
fn rejected_at_once(dead: &Value) {
    assert_eq!(
        dead["reason"], "rejected",
        "poison is rejected to the dead-letter queue at once"
    );
}

#[test]
fn an_unreachable_broker_is_a_clear_start_up_error_without_the_password() {
    let logs = refused_start_logs(
        "rabbitmq://guest:hunter2-secret@127.0.0.1:1/%2f",
        Duration::from_secs(20),
    );
    assert!(!logs.contains("hunter2-secret"), "{logs}");
    assert!(
        logs.contains("RabbitMQ broker at amqp://guest:***@127.0.0.1:1/%2f is unreachable"),
        "{logs}"
    );
}

/// `--aws --broker`: DynamoDB (on moto) is the store and RabbitMQ the transport. The same flows
/// hold, and once they have, the table's outbox is empty: every event was confirmed by the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_rabbitmq_on_dynamodb_the_flows_hold_and_the_outbox_empties() {
    use activelog::adapters::dynamodb::DynamoDbStore;
    use activelog::application::Outbox;
    use activelog_tests::moto::{self, Clients, unique};

    let endpoint = moto::endpoint();
    let clients = Clients::at(&endpoint);
    let table = unique("activelog");
    clients.create_table(&table).await;
    let vhost = activelog_tests::rabbitmq::Vhost::new().await;
    let url = vhost.amqp_url();
    let stack = LocalStack::start_with_env(
        1,
        &["--aws", "--broker", &url],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", moto::REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("TABLE_NAME", table.as_str()),
            ("CURSOR_SECRET", "a-local-cursor-secret-of-32-bytes-or-more"),
        ],
    );
    let listening = stack.log_with_message("activelog-local listening").unwrap();
    assert_eq!(listening["adapters"], "dynamodb+rabbitmq");

    two_users_create_update_delete_and_stats_follow_on(&stack).await;
    a_poison_message_is_dead_lettered_and_can_be_redriven_on(&stack, rejected_at_once, false).await;

    let outbox = DynamoDbStore::new(clients.dynamodb.clone(), table);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let horizon = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
        let pending = outbox.pending(horizon, 10).await.unwrap();
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox still holds {} records",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
