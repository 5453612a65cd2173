//! `template.yaml` and the code must describe the same system. These tests read the template and
//! fail when the two disagree: a function without a resource (or the reverse), an environment
//! variable the code does not read, a route, rule or queue that the code routes differently, a
//! table key the DynamoDB adapter does not use, a function without sample events.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
        "CURSOR_SECRET_ARN",
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

/// The headers `docs/openapi.yaml` declares: request header parameters and response headers,
/// lower-cased as CORS compares them.
fn openapi_headers() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).expect("openapi.yaml");
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("openapi.yaml is YAML");
    let resolve = |value: &serde_json::Value| -> serde_json::Value {
        match value.get("$ref").and_then(|r| r.as_str()) {
            Some(reference) => doc
                .pointer(reference.trim_start_matches('#'))
                .cloned()
                .unwrap_or_else(|| panic!("dangling {reference}")),
            None => value.clone(),
        }
    };
    let (mut request, mut response) = (BTreeSet::new(), BTreeSet::new());
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let parameter = resolve(parameter);
                if parameter["in"] == "header" {
                    request.insert(parameter["name"].as_str().unwrap().to_ascii_lowercase());
                }
            }
            for answer in operation["responses"].as_object().into_iter().flatten() {
                let answer = resolve(answer.1);
                for name in answer["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|h| h.0)
                {
                    response.insert(name.to_ascii_lowercase());
                }
            }
        }
    }
    (request, response)
}

/// A browser may send only the headers CORS allows and read only the ones it exposes: every
/// header the API documents (If-Match and ETag for optimistic concurrency, Idempotency-Key and
/// Idempotent-Replayed, Location) must be in the HTTP API's CORS configuration.
#[test]
fn cors_allows_every_documented_request_header_and_exposes_every_response_header() {
    let template = template();
    let cors = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    let Value::Tagged(condition) = cors else {
        panic!("CorsConfiguration is an !If on HasCors: {cors:?}");
    };
    let configuration = &condition.value[1];
    let list = |key: &str| -> BTreeSet<String> {
        configuration[key]
            .as_sequence()
            .unwrap_or_else(|| panic!("CorsConfiguration.{key}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let (request, response) = openapi_headers();
    let mut wanted_allowed = request;
    wanted_allowed.extend(["authorization".to_owned(), "content-type".to_owned()]);
    assert_eq!(list("AllowHeaders"), wanted_allowed);
    // `content-type` is a CORS-safelisted response header: readable without being exposed.
    let mut wanted_exposed = response;
    wanted_exposed.remove("content-type");
    assert_eq!(list("ExposeHeaders"), wanted_exposed);
    assert!(wanted_exposed.contains("etag") && list("AllowHeaders").contains("if-match"));
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
    let stack = activelog_tests::stack::in_memory(&rules, clock.clone());
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
    // Start-up builds SDK clients without calling them, except list-activities, which reads its
    // cursor keys from Secrets Manager at init: moto holds a secret under the placeholder name the
    // template's `!Ref CursorKeysSecret` becomes here.
    let moto = activelog_tests::moto::Clients::new();
    // SAFETY: no other test in this binary reads the process environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("AWS_REGION", activelog_tests::moto::REGION);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
    }
    let secrets = aws_sdk_secretsmanager::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    );
    let secret = "placeholder-for-CursorKeysSecret-at-least-32-bytes-long";
    if let Err(error) = secrets
        .create_secret()
        .name(secret)
        .secret_string(
            serde_json::json!({"current": "k1", "k1": "a-generated-key-of-at-least-32-bytes"})
                .to_string(),
        )
        .send()
        .await
    {
        // One moto serves every test binary: the secret may be there from an earlier run.
        let exists = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&error)
            == Some("ResourceExistsException");
        assert!(exists, "{error:?}");
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

/// `!Ref X` → `("Ref", "X")`, `!GetAtt X.Y` → `("GetAtt", "X.Y")`.
fn intrinsic(value: &Value) -> Option<(String, String)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            tagged.value.as_str()?.to_owned(),
        )),
        _ => None,
    }
}

fn alarms(template: &Value) -> BTreeMap<String, Value> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .collect()
}

/// The (namespace, metric, dimensions) of every single-metric alarm, and of every metric inside a
/// metric-math alarm. Dimension values are literals or rendered intrinsics (`!Ref X`).
fn watched_metrics(alarm: &Value) -> Vec<(String, String, BTreeMap<String, String>)> {
    fn dimensions(value: &Value) -> BTreeMap<String, String> {
        value
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|d| {
                let value = match intrinsic(&d["Value"]) {
                    Some((tag, target)) => format!("!{tag} {target}"),
                    None => d["Value"].as_str().unwrap_or_default().to_owned(),
                };
                (d["Name"].as_str().unwrap_or_default().to_owned(), value)
            })
            .collect()
    }
    let properties = &alarm["Properties"];
    let mut watched = Vec::new();
    if let Some(metric) = properties["MetricName"].as_str() {
        watched.push((
            properties["Namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            metric.to_owned(),
            dimensions(&properties["Dimensions"]),
        ));
    }
    for query in properties["Metrics"].as_sequence().into_iter().flatten() {
        let metric = &query["MetricStat"]["Metric"];
        if let Some(name) = metric["MetricName"].as_str() {
            watched.push((
                metric["Namespace"].as_str().unwrap_or_default().to_owned(),
                name.to_owned(),
                dimensions(&metric["Dimensions"]),
            ));
        }
    }
    watched
}

fn watches(template: &Value, namespace: &str, metric: &str, dims: &[(&str, &str)]) -> bool {
    let wanted: BTreeMap<String, String> = dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    alarms(template).values().any(|alarm| {
        watched_metrics(alarm)
            .iter()
            .any(|(ns, m, d)| ns == namespace && m == metric && *d == wanted)
    })
}

/// An alarm without an action is a page nobody receives: every alarm notifies `AlarmTopicArn`
/// on ALARM and on OK, and the parameter has no default to silently leave it empty.
#[test]
fn every_alarm_notifies_a_topic_that_must_be_given() {
    let template = template();
    let parameter = &template["Parameters"]["AlarmTopicArn"];
    assert!(
        parameter.get("Default").is_none(),
        "AlarmTopicArn must not default to nothing"
    );
    assert!(
        parameter["AllowedPattern"]
            .as_str()
            .is_some_and(|p| p.contains(":sns:")),
        "AlarmTopicArn must be an SNS topic ARN"
    );
    let alarms = alarms(&template);
    assert!(alarms.len() > 10);
    for (id, alarm) in alarms {
        for key in ["AlarmActions", "OKActions"] {
            let actions: Vec<Option<(String, String)>> = alarm["Properties"][key]
                .as_sequence()
                .unwrap_or_else(|| panic!("{id}: {key} is not a plain list (conditional?)"))
                .iter()
                .map(intrinsic)
                .collect();
            assert_eq!(
                actions,
                [Some(("Ref".to_owned(), "AlarmTopicArn".to_owned()))],
                "{id}: {key}"
            );
        }
    }
}

/// Every failure signal has an alarm: 5xx answers per HTTP function (the handlers answer 5xx as
/// responses, which Lambda's `Errors` never counts) and at the API, invocation errors of every
/// function, the oldest message of every consumer queue, every dead-letter queue, throttling of
/// the table and each of its indexes, and the relay's refusals and oldest pending record.
#[test]
fn the_alarms_watch_every_failure_signal() {
    let template = template();
    let resources = resources(&template);
    for (name, (id, resource)) in functions(&template) {
        assert!(
            watches(
                &template,
                "AWS/Lambda",
                "Errors",
                &[("FunctionName", &format!("!Ref {id}"))]
            ),
            "{name}: no Errors alarm"
        );
        let events = resource["Properties"]["Events"].as_mapping().cloned();
        for (_, event) in events.into_iter().flatten() {
            match event["Type"].as_str() {
                Some("HttpApi") => assert!(
                    watches(
                        &template,
                        "activelog",
                        "ServerErrors",
                        &[("function", &name)]
                    ),
                    "{name}: no ServerErrors alarm"
                ),
                Some("SQS") => {
                    let queue = get_att(&event["Properties"]["Queue"]).expect("queue by GetAtt");
                    assert!(
                        watches(
                            &template,
                            "AWS/SQS",
                            "ApproximateAgeOfOldestMessage",
                            &[("QueueName", &format!("!GetAtt {queue}.QueueName"))]
                        ),
                        "{queue}: no oldest-message alarm"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(watches(
        &template,
        "AWS/ApiGateway",
        "5xx",
        &[("ApiId", "!Ref HttpApi")]
    ));
    let dead_letter_queues: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::SQS::Queue")
        .filter_map(|(_, r)| get_att(&r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .chain(["EventBridgeDeadLetterQueue".to_owned()])
        .collect();
    for queue in dead_letter_queues {
        assert!(
            watches(
                &template,
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &[("QueueName", &format!("!GetAtt {queue}.QueueName"))]
            ),
            "{queue}: no alarm"
        );
    }
    let indexes: Vec<String> = resources["ActivityTable"]["Properties"]["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["IndexName"].as_str().unwrap().to_owned())
        .collect();
    for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
        assert!(
            watches(
                &template,
                "AWS/DynamoDB",
                metric,
                &[("TableName", "!Ref ActivityTable")]
            ),
            "table {metric}"
        );
        for index in &indexes {
            assert!(
                watches(
                    &template,
                    "AWS/DynamoDB",
                    metric,
                    &[
                        ("TableName", "!Ref ActivityTable"),
                        ("GlobalSecondaryIndexName", index)
                    ]
                ),
                "{index} {metric}"
            );
        }
    }
    for metric in [
        activelog::relay::metric::REFUSED,
        activelog::relay::metric::OLDEST_PENDING,
    ] {
        assert!(
            watches(
                &template,
                "activelog",
                metric,
                &[("function", activelog::relay::FUNCTION)]
            ),
            "relay: no {metric} alarm"
        );
    }
}

/// One relay at a time (two would publish every pending record twice), and its timeout leaves
/// room for the margin it stops within.
#[test]
fn the_relay_runs_alone_and_stops_before_its_timeout() {
    let template = template();
    let (_, relay) = &functions(&template)["relay-outbox"];
    assert_eq!(
        relay["Properties"]["ReservedConcurrentExecutions"].as_i64(),
        Some(1)
    );
    let timeout = relay["Properties"]["Timeout"].as_i64().unwrap();
    assert!(
        timeout > 2 * activelog::relay::DEADLINE_MARGIN.whole_seconds(),
        "a {timeout} s timeout leaves no time to relay"
    );
}

/// The table outlives the stack (Retain) and refuses a DeleteTable until protection is turned off.
#[test]
fn the_table_cannot_be_deleted_by_accident() {
    let template = template();
    let table = &resources(&template)["ActivityTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(
        table["Properties"]["DeletionProtectionEnabled"].as_bool(),
        Some(true)
    );
}

/// The bus's resource policy denies `PutEvents` of activelog events to every principal but the
/// roles of exactly the functions whose IAM policies allow them to publish.
#[test]
fn only_the_publishing_functions_may_put_activelog_events_on_the_bus() {
    let template = template();
    let resources = resources(&template);
    let policies: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::Events::EventBusPolicy")
        .collect();
    assert_eq!(policies.len(), 1, "one bus policy");
    let properties = &policies[0]["Properties"];
    assert_eq!(
        intrinsic(&properties["EventBusName"]),
        Some(("Ref".into(), "EventBus".into()))
    );
    let statement = &properties["Statement"];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Principal"], "*");
    assert_eq!(statement["Action"], "events:PutEvents");
    assert_eq!(
        statement["Condition"]["StringLike"]["events:source"],
        serde_norway::from_str::<Value>("[\"activelog.*\"]").unwrap()
    );
    let exempt: BTreeSet<String> = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        .as_sequence()
        .expect("a list of role ARNs")
        .iter()
        .map(|arn| get_att(arn).expect("!GetAtt <Role>.Arn"))
        .collect();
    let publishers: BTreeSet<String> = functions(&template)
        .into_values()
        .filter(|(_, f)| allowed_actions(&resources, f).contains("events:PutEvents"))
        .map(|(id, f)| get_att(&f["Properties"]["Role"]).unwrap_or(format!("{id}Role")))
        .collect();
    assert_eq!(exempt, publishers);
}

/// Every function logs JSON at the template's `LogLevel` (Lambda hands it to the code as
/// `AWS_LAMBDA_LOG_LEVEL`), and each allowed level is one the code understands.
#[test]
fn every_function_logs_json_at_the_templates_level() {
    let template = template();
    for (name, (_, function)) in functions(&template) {
        let logging = &function["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{name}");
        assert_eq!(
            intrinsic(&logging["ApplicationLogLevel"]),
            Some(("Ref".into(), "LogLevel".into())),
            "{name}"
        );
    }
    let levels = template["Parameters"]["LogLevel"]["AllowedValues"]
        .as_sequence()
        .unwrap();
    for level in levels {
        let level = level.as_str().unwrap();
        let directive = activelog::telemetry::filter_directive(None, Some(level));
        assert!(
            level == "FATAL" && directive == "error" || directive == level.to_ascii_lowercase(),
            "{level} → {directive}"
        );
    }
    assert!(
        template["Globals"]["Function"]["Environment"]["Variables"]
            .get("RUST_LOG")
            .is_none(),
        "RUST_LOG would override the level"
    );
}

/// The cursor keys are never in a function's configuration: list-activities gets the ARN of the
/// secret that holds them, may read that secret and no other, and no other function may read it.
#[test]
fn cursor_keys_come_from_a_secret_only_list_activities_reads() {
    let template = template();
    let resources = resources(&template);
    assert!(
        template["Parameters"].get("CursorSecret").is_none(),
        "no secret as a parameter"
    );
    for (name, (_, function)) in functions(&template) {
        let environment = &function["Properties"]["Environment"]["Variables"];
        assert!(
            environment.get("CURSOR_SECRET").is_none(),
            "{name}: a plain CURSOR_SECRET"
        );
        let reads_secret: Vec<Value> = allow_statements(&resources, &function)
            .into_iter()
            .filter(|s| {
                actions_of(s)
                    .iter()
                    .any(|a| a.starts_with("secretsmanager:"))
            })
            .collect();
        if name == "list-activities" {
            assert_eq!(
                intrinsic(&environment["CURSOR_SECRET_ARN"]),
                Some(("Ref".into(), "CursorKeysSecret".into()))
            );
            assert_eq!(reads_secret.len(), 1, "{reads_secret:?}");
            assert_eq!(
                actions_of(&reads_secret[0]),
                BTreeSet::from(["secretsmanager:GetSecretValue".to_owned()])
            );
            assert_eq!(
                intrinsic(&reads_secret[0]["Resource"]),
                Some(("Ref".into(), "CursorKeysSecret".into()))
            );
        } else {
            assert!(reads_secret.is_empty(), "{name} may read secrets");
        }
    }
    let secret = &resources["CursorKeysSecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    let generated = &secret["Properties"]["GenerateSecretString"];
    let template_json: serde_json::Value =
        serde_json::from_str(generated["SecretStringTemplate"].as_str().unwrap()).unwrap();
    let key = generated["GenerateStringKey"].as_str().unwrap();
    assert_eq!(
        template_json["current"], key,
        "the generated key is the current one"
    );
    assert!(
        generated["PasswordLength"].as_u64().unwrap()
            >= activelog::application::MIN_KEY_BYTES as u64
    );
}
