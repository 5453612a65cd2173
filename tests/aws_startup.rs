//! Start-up in AWS mode, configured the way a Lambda is: only environment variables. Proves that
//! a missing variable is named, and that `AWS_ENDPOINT_URL` (honoured by aws-config) points every
//! client at a local endpoint. One test in its own binary, because it sets the process
//! environment.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::application::{CreateOutcome, Outbox, RequestContext};
use activelog::configuration::{ConfigError, TABLE_NAME};
use activelog::domain::{ActivityType, CorrelationId};
use activelog::startup::{self, StartupError};
use activelog_tests::activity_fixtures::{draft, user};
use activelog_tests::moto::{Clients, REGION, unique};
use time::macros::date;

fn set(name: &str, value: &str) {
    // SAFETY: this binary's only test sets the environment before it starts any SDK client or
    // other thread that reads it.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(name, value)
    }
}

#[tokio::test]
async fn aws_mode_reads_its_resources_and_endpoint_from_the_environment() {
    let clients = Clients::new();
    let table = unique("activelog");
    clients.create_table(&table).await;
    let bus = unique("bus");
    clients.create_bus(&bus, &[]).await;

    set("ACTIVELOG_ADAPTERS", "aws");
    set("AWS_ENDPOINT_URL", &clients.endpoint);
    set("AWS_REGION", REGION);
    set("AWS_ACCESS_KEY_ID", "testing");
    set("AWS_SECRET_ACCESS_KEY", "testing");
    set("EVENT_BUS_NAME", &bus);
    set("CURSOR_SECRET", "a-cursor-secret-of-at-least-32-bytes");

    // TABLE_NAME is not set yet: start-up stops and names it.
    match startup::activity_service().await {
        Err(StartupError::Config(error)) => assert_eq!(error, ConfigError::Missing(TABLE_NAME)),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("started without TABLE_NAME"),
    }

    set(TABLE_NAME, &table);
    let service = startup::activity_service().await.unwrap();
    let ctx = RequestContext {
        user_id: user("alice"),
        correlation_id: CorrelationId::generate(),
        trace_header: None,
    };
    let created = service
        .create(
            &ctx,
            draft(ActivityType::Hiking, date!(2026 - 11 - 20), 90),
            None,
        )
        .await
        .unwrap();
    let CreateOutcome::Created(activity) = created else {
        panic!("{created:?}")
    };

    // The item is in moto's table: the client built from the environment went to AWS_ENDPOINT_URL.
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S("USER#alice".into()),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ACTIVITY#{}", activity.id)),
        )
        .send()
        .await
        .unwrap()
        .item;
    assert!(item.is_some());

    // The relay, the stats reads and the stats consumer start the same way.
    let relay = startup::outbox_relay().await.unwrap();
    assert_eq!(relay.relay_pending().await.unwrap().failed, 0);
    startup::stats_queries().await.unwrap();
    startup::stats_updater().await.unwrap();
    startup::achievement_recorder().await.unwrap();
    startup::achievement_queries().await.unwrap();
    let store = startup::aws::dynamodb_store(&activelog::configuration::Settings::from_env())
        .await
        .unwrap();
    assert!(
        store
            .pending(
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                10
            )
            .await
            .unwrap()
            .is_empty()
    );
}
