//! `docs/openapi.yaml` against the code: every documented operation is served by the function the
//! route table deploys for it and every route is documented; every problem type is documented;
//! and the answers to all sample events (and the bodies the samples send) validate against the
//! document's schemas.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use activelog::http::{ProblemType, ROUTES};
use activelog_tests::http::{http_samples, workspace_root};
use serde_json::{Value, json};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

fn document() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("docs/openapi.yaml"))
        .expect("docs/openapi.yaml");
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

/// Follows a local `$ref` (`#/components/...`) to what it points at.
fn resolve<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local reference");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {reference}")),
            )
        }
        None => value,
    }
}

/// A validator for `schema`, with the document's components beside it so that
/// `#/components/schemas/...` references resolve (OpenAPI 3.1 schemas are JSON Schema 2020-12).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

fn operation<'d>(doc: &'d Value, method: &str, path: &str) -> &'d Value {
    doc["paths"][path]
        .get(method.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
}

#[test]
fn every_documented_operation_is_a_route_and_every_route_is_documented() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let function = op["x-activelog-function"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} names no x-activelog-function"));
                documented.insert((
                    method.to_ascii_uppercase(),
                    path.clone(),
                    function.to_owned(),
                ));
            }
        }
    }
    let routed = activelog_tests::http::route_table();
    assert_eq!(documented, routed);
}

#[test]
fn every_problem_type_is_documented_with_its_status() {
    let doc = document();
    let problem = resolve(&doc, &doc["components"]["schemas"]["Problem"]);
    let documented: BTreeSet<String> = problem["properties"]["type"]["enum"]
        .as_array()
        .expect("Problem.type enum")
        .iter()
        .map(|v| v.as_str().expect("uri").to_owned())
        .collect();
    let coded: BTreeSet<String> = ProblemType::ALL.iter().map(|p| p.uri()).collect();
    assert_eq!(documented, coded);

    // Each type is described under a response of its own status code somewhere.
    for problem_type in ProblemType::ALL {
        let status = problem_type.status().to_string();
        let described = ROUTES.iter().any(|route| {
            let response = &operation(&doc, route.method, route.path)["responses"][&status];
            resolve(&doc, response)["description"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("`{}`", problem_type.slug())))
        });
        assert!(
            described,
            "{} is not described under any {status} response",
            problem_type.slug()
        );
    }
}

#[tokio::test]
async fn the_answers_to_every_sample_validate_against_the_document() {
    let doc = document();
    let mut checked = 0;
    for sample in http_samples() {
        let label = format!("{}/{}", sample.function, sample.name);
        let route_key = sample.event["routeKey"].as_str().expect("routeKey");
        let (method, path) = route_key.split_once(' ').expect("METHOD /path");
        let op = operation(&doc, method, path);
        let response = sample.run().await;
        let documented = resolve(&doc, &op["responses"][response.status.to_string()]);
        assert!(
            documented.is_object(),
            "{label}: status {} is not documented",
            response.status
        );

        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            if resolve(&doc, header)["required"] == json!(true) {
                assert!(
                    response.header(name).is_some(),
                    "{label}: header {name} missing"
                );
            }
        }
        match documented.get("content") {
            None => assert!(response.text.is_empty(), "{label}: undocumented body"),
            Some(content) => {
                let media_type = response.header("content-type").expect("content type");
                let schema = &content[media_type]["schema"];
                assert!(schema.is_object(), "{label}: {media_type} not documented");
                let validator = validator(&doc, schema);
                let errors: Vec<String> = validator
                    .iter_errors(&response.body)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "{label}: {}\n{errors:#?}", response.text);
                checked += 1;
            }
        }

        // A body the API accepted is one the document allows.
        if response.status < 300
            && let Some(body) = sample.event["body"].as_str()
        {
            let media_type = sample.event["headers"]["content-type"]
                .as_str()
                .unwrap_or("application/json");
            let schema = &op["requestBody"]["content"][media_type]["schema"];
            assert!(
                schema.is_object(),
                "{label}: request {media_type} not documented"
            );
            let body: Value = serde_json::from_str(body).expect("JSON body");
            assert!(
                validator(&doc, schema).is_valid(&body),
                "{label}: request body invalid"
            );
        }
    }
    assert!(checked >= 40, "only {checked} bodies checked");
}

#[test]
fn the_schemas_are_strict_enough_to_catch_a_wrong_answer() {
    let doc = document();
    let activity = validator(&doc, &json!({"$ref": "#/components/schemas/Activity"}));
    let problem = validator(&doc, &json!({"$ref": "#/components/schemas/Problem"}));
    assert!(!activity.is_valid(&json!({"id": "01KAW3D5R8M2N4P6Q8S0T2V4W6"})));
    assert!(
        !problem.is_valid(&json!({"type": "https://activelog.dev/problems/teapot",
        "title": "t", "status": 418, "detail": "d", "instance": "i"}))
    );
}
