//! `template.yaml` and the code must describe the same system. These tests read the template and
//! fail when the two disagree: a function without a resource (or the reverse), an environment
//! variable the code does not read, a route, rule or queue that the code routes differently, a
//! table key the DynamoDB adapter does not use, a function without sample events.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use activelog::adapters::memory::{ManualClock, MemoryEventBus, rules_from_template};
use activelog::application::OutboxRecord;
use activelog::configuration::ALL_VARIABLES;
use activelog::domain::ACTIVITY_SOURCE;
use activelog::domain::EventType;
use activelog::functions::ConsumerFunction;
use serde_norway::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml exists");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn resources(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The function resources, by crate name (their `BuildProperties.Binary`).
fn functions(template: &Value) -> BTreeMap<String, (String, Value)> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no BuildProperties.Binary"))
                .to_owned();
            (binary, (id, r))
        })
        .collect()
}

fn crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().into_string().unwrap())
        .collect()
}

fn pascal_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `!GetAtt X.Arn` → `X`.
fn get_att(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) => tagged
            .value
            .as_str()
            .and_then(|s| s.strip_suffix(".Arn"))
            .map(str::to_owned),
        _ => None,
    }
}

#[test]
fn every_function_crate_has_a_resource_and_every_resource_a_crate() {
    let template = template();
    let functions = functions(&template);
    let declared: BTreeSet<String> = functions.keys().cloned().collect();
    assert_eq!(
        declared,
        crates(),
        "functions/ and template.yaml must list the same functions"
    );
    for (name, (id, resource)) in &functions {
        assert_eq!(
            *id,
            format!("{}Function", pascal_case(name)),
            "logical id of {name}"
        );
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
        assert_eq!(
            resource["Properties"]["CodeUri"],
            format!("functions/{name}").as_str(),
            "{name}"
        );
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Tracing"], "Active");
}

#[test]
fn environment_variables_are_the_ones_the_code_reads() {
    let template = template();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let globals = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    names.extend(globals.keys().map(|k| k.as_str().unwrap().to_owned()));
    for (name, (_, resource)) in functions(&template) {
        if let Some(variables) = resource["Properties"]["Environment"]["Variables"].as_mapping() {
            for key in variables.keys() {
                let key = key.as_str().unwrap();
                assert!(
                    ALL_VARIABLES.contains(&key) || key == "RUST_LOG",
                    "{name} sets {key}, which the code never reads"
                );
                names.insert(key.to_owned());
            }
        }
    }
    for key in &names {
        assert!(
            ALL_VARIABLES.contains(&key.as_str()) || key == "RUST_LOG",
            "template sets {key}, which the code never reads"
        );
    }
    // Variables only the local stack reads (queue URLs for --aws) need not be in the template.
    for required in [
        "TABLE_NAME",
        "EVENT_BUS_NAME",
        "CURSOR_SECRET",
        "OUTBOX_GRACE_SECONDS",
        "ACTIVELOG_ADAPTERS",
    ] {
        assert!(names.contains(required), "template never sets {required}");
    }
}

#[test]
fn http_routes_match_the_route_table() {
    let template = template();
    let mut declared: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (name, (_, resource)) in functions(&template) {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"] == "HttpApi" {
                let p = &event["Properties"];
                assert_eq!(p["PayloadFormatVersion"], "2.0", "{name}");
                declared.insert((
                    p["Method"].as_str().unwrap().to_owned(),
                    p["Path"].as_str().unwrap().to_owned(),
                    name.clone(),
                ));
            }
        }
    }
    let routed = activelog_tests::http::route_table();
    assert_eq!(
        declared, routed,
        "template HttpApi events and http::ROUTES differ"
    );
}

#[test]
fn queues_feed_the_consumers_the_code_wires_and_report_partial_failures() {
    let template = template();
    let resources = resources(&template);
    let mut declared: BTreeSet<(String, String)> = BTreeSet::new();
    for (name, (_, resource)) in functions(&template) {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values().filter(|e| e["Type"] == "SQS") {
            let p = &event["Properties"];
            let queue = get_att(&p["Queue"]).expect("SQS event names its queue with !GetAtt");
            assert!(
                p["FunctionResponseTypes"]
                    .as_sequence()
                    .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures")),
                "{name} must report partial batch failures"
            );
            let timeout = resource["Properties"]["Timeout"]
                .as_u64()
                .expect("consumer timeout");
            let visibility = resources[&queue]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .expect("queue visibility timeout");
            assert!(
                visibility >= 6 * timeout,
                "{queue}: visibility {visibility} s < 6 x {timeout} s"
            );
            let redrive = &resources[&queue]["Properties"]["RedrivePolicy"];
            assert!(
                get_att(&redrive["deadLetterTargetArn"]).is_some(),
                "{queue} has a dead-letter queue"
            );
            declared.insert((queue, name.clone()));
        }
    }
    let wired: BTreeSet<(String, String)> = ConsumerFunction::ALL
        .iter()
        .map(|c| (c.queue().to_string(), c.name().to_string()))
        .collect();
    assert_eq!(
        declared, wired,
        "template SQS event sources and functions::ConsumerFunction differ"
    );
}

/// Each rule, evaluated with EventBridge semantics on the events the code publishes, routes to the
/// queue whose consumer handles those event types — and nothing else.
#[test]
fn rules_route_the_published_event_types_to_the_consumers_that_handle_them() {
    use activelog::application::Clock;
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let rules = rules_from_template(&text).unwrap();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["AchievementsRule", "StatsRule"]));

    let clock = std::sync::Arc::new(ManualClock::new(time::OffsetDateTime::UNIX_EPOCH));
    let stack = activelog::startup::InMemoryStack::new(
        &rules,
        &Default::default(),
        clock.clone(),
        std::sync::Arc::new(activelog::adapters::memory::SequentialIds::default()),
    )
    .unwrap();
    let expected: BTreeMap<&str, BTreeSet<EventType>> = BTreeMap::from([
        (
            "StatsQueue",
            BTreeSet::from([
                EventType::ActivityCreated,
                EventType::ActivityUpdated,
                EventType::ActivityDeleted,
            ]),
        ),
        (
            "AchievementsQueue",
            BTreeSet::from([EventType::ActivityCreated]),
        ),
    ]);
    for event_type in EventType::ALL {
        let record = OutboxRecord {
            event_id: activelog::domain::EventId::from_ulid(ulid::Ulid::new()),
            event_type,
            occurred_at: clock.now(),
            detail: "{}".into(),
            trace_header: None,
        };
        let event = stack.bus.eventbridge_event(&record);
        assert_eq!(event["source"], event_type.source());
        for (queue, handled) in &expected {
            let before = stack.queues[*queue].len();
            futures_publish(&stack.bus, &record);
            let delivered = stack.queues[*queue].len() > before;
            assert_eq!(
                delivered,
                handled.contains(&event_type),
                "{event_type} → {queue}"
            );
        }
    }
    assert_eq!(EventType::ActivityCreated.source(), ACTIVITY_SOURCE);
}

fn futures_publish(bus: &MemoryEventBus, record: &OutboxRecord) {
    use activelog::application::EventPublisher;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(bus.publish(std::slice::from_ref(record)))
        .unwrap();
}

#[test]
fn every_function_has_sample_events_with_expectations() {
    for name in crates() {
        let dir = root().join("events").join(&name);
        let expected = dir.join("expected.json");
        assert!(expected.exists(), "events/{name}/expected.json is missing");
        let expectations: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();
        assert!(
            !expectations.as_object().unwrap().is_empty(),
            "events/{name} has no samples"
        );
        for sample in expectations.as_object().unwrap().keys() {
            assert!(
                dir.join(sample).exists(),
                "events/{name}/{sample} is expected but missing"
            );
        }
    }
}

/// A key schema as (attribute, key type) pairs.
fn key_schema(value: &Value) -> Vec<(String, String)> {
    value
        .as_sequence()
        .expect("KeySchema")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_table_has_the_keys_indexes_and_ttl_the_dynamodb_adapter_uses() {
    use activelog::adapters::dynamodb::{attributes, indexes};
    let template = template();
    let table = &resources(&template)["ActivityTable"]["Properties"];
    let pair = |name: &str, kind: &str| (name.to_owned(), kind.to_owned());
    assert_eq!(
        key_schema(&table["KeySchema"]),
        vec![pair(attributes::PK, "HASH"), pair(attributes::SK, "RANGE")]
    );
    let gsis: BTreeMap<String, Vec<(String, String)>> = table["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["IndexName"].as_str().unwrap().to_owned(),
                key_schema(&g["KeySchema"]),
            )
        })
        .collect();
    assert_eq!(
        gsis,
        BTreeMap::from([
            (
                indexes::GSI1.to_owned(),
                vec![
                    pair(attributes::GSI1PK, "HASH"),
                    pair(attributes::GSI1SK, "RANGE")
                ]
            ),
            (
                indexes::GSI2.to_owned(),
                vec![
                    pair(attributes::GSI2PK, "HASH"),
                    pair(attributes::GSI2SK, "RANGE")
                ]
            ),
        ])
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        attributes::EXPIRES_AT
    );
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
}

/// The environment a function gets in AWS: Globals plus its own variables, `!Ref`s replaced by
/// placeholders long enough to pass the parameters' own constraints.
fn function_environment(template: &Value, resource: &Value) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    for variables in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &resource["Properties"]["Environment"]["Variables"],
    ] {
        for (key, value) in variables.as_mapping().into_iter().flatten() {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                // `!Ref Parameter` takes the parameter's default; any other reference (a table
                // name, a bus name, a secret without default) a placeholder that passes the
                // parameters' own constraints (CursorSecret: at least 32 characters).
                Value::Tagged(tagged) => {
                    let target = tagged.value.as_str().unwrap_or_default();
                    match &template["Parameters"][target]["Default"] {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => format!("placeholder-for-{target}-at-least-32-bytes-long"),
                    }
                }
                other => panic!("unexpected environment value {other:?}"),
            };
            environment.insert(key.as_str().unwrap().to_owned(), value);
        }
    }
    environment
}

/// Every function starts (in AWS mode, with the real start-up code) on exactly the environment
/// the template gives it: a variable the code needs but the template forgot fails here, not at
/// the first cold start after a deploy.
#[tokio::test]
async fn every_function_starts_with_the_environment_the_template_gives_it() {
    use activelog::configuration::Settings;
    use activelog::startup::{ReadScope, aws};
    // SDK clients are built, never called: an unroutable endpoint and fake credentials suffice.
    // SAFETY: no other test in this binary reads the process environment.
    unsafe {
        std::env::set_var("AWS_REGION", "eu-west-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    }
    let template = template();
    for (name, (_, resource)) in functions(&template) {
        let environment = function_environment(&template, &resource);
        let settings = Settings::from_lookup(|key| environment.get(key).cloned());
        assert_eq!(
            settings.adapter_mode(),
            Ok(activelog::configuration::AdapterMode::Aws),
            "{name}"
        );
        let started = match name.as_str() {
            "create-activity" | "update-activity" | "delete-activity" => {
                aws::activity_service(&settings).await.map(drop)
            }
            "get-activity" => aws::activity_queries(&settings, ReadScope::ById)
                .await
                .map(drop),
            "list-activities" => aws::activity_queries(&settings, ReadScope::Listing)
                .await
                .map(drop),
            "get-stats" => aws::stats_queries(&settings).await.map(drop),
            "get-achievements" => aws::achievement_queries(&settings).await.map(drop),
            "update-stats" => aws::stats_updater(&settings).await.map(drop),
            "record-achievements" => aws::achievement_recorder(&settings).await.map(drop),
            "relay-outbox" => match settings.outbox_grace() {
                Ok(grace) => aws::outbox_relay(&settings, grace).await.map(drop),
                Err(error) => Err(error.into()),
            },
            other => panic!("{other}: no start-up known to this test; add it"),
        };
        assert!(
            started.is_ok(),
            "{name} does not start with the template's environment {environment:?}: {:?}",
            started.err()
        );
    }
}

/// Every `Allow` statement of a function's policies, from its inline `Policies` or its own role.
fn allow_statements(resources: &BTreeMap<String, Value>, function: &Value) -> Vec<Value> {
    let mut statements: Vec<Value> = Vec::new();
    let properties = &function["Properties"];
    for policy in properties["Policies"].as_sequence().into_iter().flatten() {
        statements.extend(
            policy["Statement"]
                .as_sequence()
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    if let Some(role) = get_att(&properties["Role"]) {
        for policy in resources[&role]["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            statements.extend(
                policy["PolicyDocument"]["Statement"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    statements.retain(|s| s["Effect"] == "Allow");
    statements
}

fn actions_of(statement: &Value) -> BTreeSet<String> {
    match &statement["Action"] {
        Value::String(action) => BTreeSet::from([action.clone()]),
        Value::Sequence(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Every IAM action a function's policies allow.
fn allowed_actions(resources: &BTreeMap<String, Value>, function: &Value) -> BTreeSet<String> {
    allow_statements(resources, function)
        .iter()
        .flat_map(actions_of)
        .collect()
}

/// Least privilege, checked against what the code does: readers cannot write or publish, only
/// publishers may `PutEvents`, and whoever publishes through the outbox may also remove the
/// records it published (or the relay would publish them again every minute).
#[test]
fn each_function_may_do_what_its_code_does_and_no_more() {
    let template = template();
    let resources = resources(&template);
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ];
    for (name, (_, resource)) in functions(&template) {
        let actions = allowed_actions(&resources, &resource);
        assert!(
            !actions.iter().any(|a| a.ends_with('*')),
            "{name} has a wildcard action: {actions:?}"
        );
        let publishes = [
            "create-activity",
            "update-activity",
            "delete-activity",
            "record-achievements",
            "relay-outbox",
        ]
        .contains(&name.as_str());
        let reads_only = [
            "get-activity",
            "list-activities",
            "get-stats",
            "get-achievements",
        ]
        .contains(&name.as_str());
        assert_eq!(
            actions.contains("events:PutEvents"),
            publishes,
            "{name}: events:PutEvents"
        );
        if publishes {
            assert!(
                actions.contains("dynamodb:DeleteItem"),
                "{name} publishes through the outbox but cannot acknowledge"
            );
        }
        // Only delete-activity deletes anything but outbox records.
        if name != "delete-activity" {
            for statement in allow_statements(&resources, &resource) {
                if actions_of(&statement).contains("dynamodb:DeleteItem") {
                    let keys =
                        &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                    assert_eq!(
                        keys.as_sequence().map(Vec::len),
                        Some(1),
                        "{name}: DeleteItem limited to outbox records"
                    );
                    assert_eq!(
                        keys[0], "OUTBOX#*",
                        "{name}: DeleteItem limited to outbox records"
                    );
                }
            }
        }
        if reads_only {
            for write in writes {
                assert!(
                    !actions.contains(write),
                    "{name} only reads but may {write}"
                );
            }
        }
    }
}

/// A processed-event marker must outlive every way its event can come back: an archive replay
/// plus the longest a message can then wait in a queue and its dead-letter queue.
#[test]
fn deduplication_outlives_archive_replays_and_queue_retention() {
    use activelog::adapters::dynamodb::MARKER_RETENTION;
    let template = template();
    let archive = &template["Parameters"]["EventArchiveRetentionDays"];
    let archive_days = archive["MaxValue"]
        .as_i64()
        .expect("archive retention is bounded");
    assert!(
        archive["MinValue"].as_i64().is_some_and(|min| min >= 1),
        "0 would keep events forever"
    );
    let longest_queue_seconds = resources(&template)
        .values()
        .filter(|r| r["Type"] == "AWS::SQS::Queue")
        .map(|q| {
            q["Properties"]["MessageRetentionPeriod"]
                .as_i64()
                .unwrap_or(345_600)
        })
        .max()
        .unwrap();
    let window =
        time::Duration::days(archive_days) + time::Duration::seconds(longest_queue_seconds);
    assert!(
        MARKER_RETENTION > window,
        "markers ({MARKER_RETENTION}) must outlive {window}"
    );
}

/// The DynamoDB actions each function may use are exactly the calls its code makes (read from the
/// DynamoDB adapter; a transaction needs the action of each of its parts): a new call fails here
/// until the template allows it, and an action nobody uses fails here until it is removed.
#[test]
fn each_function_may_make_exactly_the_dynamodb_calls_its_code_makes() {
    let template = template();
    let resources = resources(&template);
    let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
        // find_idempotency: GetItem; create: transaction of Puts; acknowledge: DeleteItem.
        (
            "create-activity",
            &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
            ][..],
        ),
        // get: GetItem.
        ("get-activity", &["dynamodb:GetItem"][..]),
        // list: Query on GSI1.
        ("list-activities", &["dynamodb:Query"][..]),
        // get (current version): GetItem; update: transaction of Puts; acknowledge: DeleteItem.
        (
            "update-activity",
            &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
            ][..],
        ),
        // get: GetItem; delete: transaction of Delete + Put; acknowledge: DeleteItem.
        (
            "delete-activity",
            &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
            ][..],
        ),
        // stats get: GetItem.
        ("get-stats", &["dynamodb:GetItem"][..]),
        // standing: Query.
        ("get-achievements", &["dynamodb:Query"][..]),
        // apply_batch / apply_once: transactions of Put (markers) + Update (ADD).
        (
            "update-stats",
            &["dynamodb:PutItem", "dynamodb:UpdateItem"][..],
        ),
        // record_progress: Put + Update; standing: Query; award: Puts; acknowledge: DeleteItem.
        (
            "record-achievements",
            &[
                "dynamodb:DeleteItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ][..],
        ),
        // pending: Query on GSI2; acknowledge: DeleteItem.
        (
            "relay-outbox",
            &["dynamodb:DeleteItem", "dynamodb:Query"][..],
        ),
    ]);
    for (name, (_, resource)) in functions(&template) {
        let dynamodb: BTreeSet<String> = allowed_actions(&resources, &resource)
            .into_iter()
            .filter(|a| a.starts_with("dynamodb:"))
            .collect();
        let wanted: BTreeSet<String> = expected[name.as_str()]
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(dynamodb, wanted, "{name}");
    }
}
