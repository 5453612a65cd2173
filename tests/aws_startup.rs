//! Start-up in AWS mode, configured the way a Lambda is: only environment variables. Proves that
//! a missing variable is named, and that `AWS_ENDPOINT_URL` (honoured by aws-config) points every
//! client at a local endpoint, with aws-config's chains (the tests' build) and with the Lambda
//! functions' configuration from the environment alone. One test in its own binary, because it
//! sets the process environment.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::application::{CreateOutcome, Outbox, RequestContext};
use activelog::configuration::{ConfigError, TABLE_NAME};
use activelog::domain::{ActivityType, CorrelationId};
use activelog::startup::{self, StartupError};
use activelog_tests::activity_fixtures::{draft, user};
use activelog_tests::moto::{Clients, REGION, unique};
use activelog_tests::traces::{Collector, named};
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
        request_id: None,
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

    // list-activities reads its cursor key ring from Secrets Manager once, at start-up (the
    // template gives it CURSOR_SECRET_ARN, never the keys), and seals cursors with the current key.
    let secrets = aws_sdk_secretsmanager::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    );
    let secret_name = unique("cursor-keys");
    let secret = secrets
        .create_secret()
        .name(&secret_name)
        .secret_string(
            serde_json::json!({
                "current": "k2",
                "k2": "the-new-key-of-at-least-32-bytes-0002",
                "k1": "the-old-key-of-at-least-32-bytes-0001"
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    set("CURSOR_SECRET", "");
    set("CURSOR_SECRET_ARN", secret.arn().unwrap());
    let queries = startup::activity_queries(startup::ReadScope::Listing)
        .await
        .unwrap();
    for _ in 0..2 {
        service
            .create(
                &ctx,
                draft(ActivityType::Hiking, date!(2026 - 11 - 21), 30),
                None,
            )
            .await
            .unwrap();
    }
    let page = queries
        .list(
            &ctx,
            activelog::application::ListRequest {
                from: None,
                to: None,
                activity_type: None,
                limit: 1,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let cursor = page.next_cursor.expect("a next page");
    assert!(
        cursor.starts_with("k2."),
        "sealed with the current key: {cursor}"
    );
    // The read is an AWS call like any other: one client span naming the secret.
    let collector = Collector::install();
    startup::aws::cursor_keys(secret.arn().unwrap())
        .await
        .unwrap();
    let spans = collector.spans();
    // The SDK's own span of the same name (at debug level, its target the SDK's) is not ours.
    let ours: Vec<_> = named(&spans, "SecretsManager.GetSecretValue")
        .into_iter()
        .filter(|s| s.attribute("target") == Some("activelog::adapters::aws_call"))
        .collect();
    assert_eq!(ours.len(), 1, "one adapter span: {spans:#?}");
    let read = ours[0];
    assert_eq!(read.attribute("rpc.system"), Some("aws-api"));
    assert_eq!(read.attribute("rpc.service"), Some("SecretsManager"));
    assert_eq!(read.attribute("rpc.method"), Some("GetSecretValue"));
    assert_eq!(
        read.attribute("aws.secretsmanager.secret.arn"),
        secret.arn()
    );
    drop(collector);
    // A ring without a current key stops start-up, naming the secret.
    let broken = secrets
        .create_secret()
        .name(unique("cursor-keys-broken"))
        .secret_string(r#"{"k1": "the-old-key-of-at-least-32-bytes-0001"}"#)
        .send()
        .await
        .unwrap();
    set("CURSOR_SECRET_ARN", broken.arn().unwrap());
    match startup::activity_queries(startup::ReadScope::Listing).await {
        Err(StartupError::CursorKeys(reason)) => assert!(reason.contains("current"), "{reason}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("started without a current cursor key"),
    }

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

    // The Lambda functions build their configuration from the environment alone, without
    // aws-config's chains (feature `aws-default-chain` off): the same credentials sign, the same
    // endpoint answers, and a service's own endpoint variable wins over the general one.
    let from_lambda = startup::aws::lambda_environment_config(|name| std::env::var(name).ok());
    assert_eq!(from_lambda.region().map(|r| r.as_ref()), Some(REGION));
    let described = aws_sdk_dynamodb::Client::new(&from_lambda)
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert!(described.table().is_some());
    let endpoint = clients.endpoint.clone();
    let service_first = startup::aws::lambda_environment_config(move |name| match name {
        // Nothing listens on the discard port: a client sent there would fail.
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9".into()),
        "AWS_ENDPOINT_URL_DYNAMODB" => Some(endpoint.clone()),
        other => std::env::var(other).ok(),
    });
    aws_sdk_dynamodb::Client::new(&service_first)
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let eventbridge = aws_sdk_eventbridge::Client::new(&service_first)
        .describe_event_bus()
        .name(&bus)
        .send()
        .await;
    assert!(
        eventbridge.is_err(),
        "EventBridge went past AWS_ENDPOINT_URL"
    );
}
