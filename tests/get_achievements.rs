//! `GET /achievements` through its handler: what the caller sees once the achievements consumer
//! has awarded milestones — their own, never another user's. (What each checked-in sample answers
//! is checked with every other HTTP sample, in `http_samples.rs` and `sample_binaries.rs`.)

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use activelog::adapters::memory::ManualClock;
use activelog::consumer::AchievementsConsumer;
use activelog::domain::ActivityType;
use activelog::http::get_achievements;
use activelog::startup::InMemoryStack;
use activelog_tests::consumer::{batch_of, created, facts, samples_dir};
use lambda_http::Body;
use serde_json::{Value, json};
use time::macros::datetime;

fn stack() -> InMemoryStack {
    activelog_tests::stack::in_memory(
        &[],
        Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC))),
    )
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(samples_dir("get-achievements").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Status, headers and JSON body of the handler's answer to a sample.
async fn call(stack: &InMemoryStack, event: &Value) -> (u16, BTreeMap<String, String>, Value) {
    let request = activelog_tests::http::request_from_json(event);
    let response = get_achievements(&stack.achievements, request).await;
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (response.status().as_u16(), headers, body)
}

#[tokio::test]
async fn the_caller_sees_their_own_progress_and_unlocked_milestones() {
    let stack = stack();
    let consumer = AchievementsConsumer::new(stack.achievement_recorder.clone());
    let rides: Vec<_> = (1..=2)
        .map(|n| {
            created(
                n,
                "user-alice",
                facts(ActivityType::Cycling, 150, Some(60_000)),
            )
        })
        .collect();
    assert!(
        consumer
            .handle(batch_of(&rides))
            .await
            .batch_item_failures
            .is_empty()
    );

    let (status, _, body) = call(&stack, &sample("valid.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "progress": {"activities": 2, "duration_minutes": 300, "distance_km": 120.0},
            "achievements": [
                {"achievement": "first_activity", "description": "Recorded a first activity",
                 "unlocked_at": "2026-11-26T12:00:00Z"},
                {"achievement": "hundred_kilometres", "description": "Covered 100 km",
                 "unlocked_at": "2026-11-26T12:00:00Z"}
            ]
        })
    );

    let (status, _, body) = call(&stack, &sample("as-bob.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["progress"]["activities"], 0,
        "bob sees nothing of alice's"
    );
    assert_eq!(body["achievements"], json!([]));
}

#[test]
fn the_documented_milestones_are_the_domain_s() {
    let text =
        std::fs::read_to_string(samples_dir("get-achievements").join("../../docs/openapi.yaml"))
            .unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let documented = doc.pointer(
        "/components/schemas/Achievements/properties/achievements/items/properties/achievement/enum",
    );
    let ids: Vec<&str> = activelog::domain::Milestone::ALL
        .iter()
        .map(|m| m.id())
        .collect();
    assert_eq!(documented, Some(&json!(ids)));
}
