//! The HTTP API as its users meet it: isolation between users, every class of bad input, optimistic
//! concurrency, idempotent creates, and the events each change publishes — all through the
//! handlers, over the whole system in memory.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use activelog::application::{PublishError, StoreError};
use activelog::domain::DomainEvent;
use activelog::http::GatewayEventBuilder;
use activelog_tests::http::{
    ALICE, ALICE_RIDE, ALICE_RUN, ALICE_SWIM, ALICE_YOGA, BOB, BOB_RUN, TestApi, api_request,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn run_body() -> Value {
    json!({
        "type": "running",
        "title": "Intervals",
        "duration_minutes": 50,
        "distance_km": 9.5,
        "calories_burned": 610,
        "tags": ["track"],
        "activity_date": "2026-11-26"
    })
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect()
}

// ---------------------------------------------------------------- create, read, events

#[tokio::test]
async fn a_created_activity_can_be_read_back_and_publishes_one_event() {
    let api = TestApi::empty();
    let created = api
        .call(
            api_request("POST", "/activities")
                .json(&run_body())
                .request()
                .unwrap(),
        )
        .await;
    created.assert_status(201);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/activities/{id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(created.body["distance_km"], 9.5);
    assert_eq!(created.body["description"], Value::Null);
    assert_eq!(created.body["created_at"], "2026-11-26T12:00:00Z");

    let read = api
        .call(
            api_request("GET", &format!("/activities/{id}"))
                .request()
                .unwrap(),
        )
        .await;
    read.assert_status(200);
    assert_eq!(read.body, created.body);
    assert_eq!(read.header("etag"), Some("\"1\""));

    let published = api.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, "activity.created");
    assert_eq!(published[0].1["aggregate_id"], id.as_str());
    assert_eq!(published[0].1["user_id"], ALICE);
    assert!(
        api.stack.activity_store.outbox_records().is_empty(),
        "published events leave the outbox"
    );
}

#[tokio::test]
async fn the_correlation_id_travels_from_the_request_into_the_event_and_back() {
    let api = TestApi::empty();
    let response = api
        .call(
            api_request("POST", "/activities")
                .request_id("gw-req-1")
                .header("x-correlation-id", "checkout-42")
                .header(
                    "x-amzn-trace-id",
                    "Root=1-6746ea40-0123456789abcdef01234567",
                )
                .json(&run_body())
                .request()
                .unwrap(),
        )
        .await;
    response.assert_status(201);
    assert_eq!(response.header("x-correlation-id"), Some("checkout-42"));
    assert_eq!(api.published()[0].1["correlation_id"], "checkout-42");

    // An unusable header is replaced by the request id, never echoed.
    let response = api
        .call(
            api_request("POST", "/activities")
                .request_id("gw-req-2")
                .header("x-correlation-id", "bad value with spaces")
                .json(&run_body())
                .request()
                .unwrap(),
        )
        .await;
    assert_eq!(response.header("x-correlation-id"), Some("gw-req-2"));
    assert_eq!(api.published()[1].1["correlation_id"], "gw-req-2");
}

#[tokio::test]
async fn the_trace_header_is_kept_with_the_event_for_the_relay() {
    let api = TestApi::empty();
    api.stack
        .bus
        .fail_calls_with(Some(PublishError::Unavailable("bus down".into())));
    let trace = "Root=1-6746ea40-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1";
    api.call(
        api_request("POST", "/activities")
            .header("x-amzn-trace-id", trace)
            .json(&run_body())
            .request()
            .unwrap(),
    )
    .await
    .assert_status(201);
    let records = api.stack.activity_store.outbox_records();
    assert_eq!(records[0].trace_header.as_deref(), Some(trace));
}

#[tokio::test]
async fn a_failed_publish_still_answers_201_and_leaves_the_event_for_the_relay() {
    let api = TestApi::empty();
    api.stack
        .bus
        .fail_calls_with(Some(PublishError::Unavailable("bus down".into())));
    let created = api
        .call(
            api_request("POST", "/activities")
                .json(&run_body())
                .request()
                .unwrap(),
        )
        .await;
    created.assert_status(201);
    assert!(api.published().is_empty());
    let records = api.stack.activity_store.outbox_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_type.as_str(), "activity.created");

    // Once the bus is back, the relay publishes it and empties the outbox.
    api.stack.bus.fail_calls_with(None);
    api.clock.advance(time::Duration::minutes(5));
    api.stack.relay.relay_pending().await.expect("relay runs");
    assert_eq!(api.published().len(), 1);
    assert!(api.stack.activity_store.outbox_records().is_empty());
}

#[tokio::test]
async fn update_and_delete_publish_their_events_and_a_no_op_update_publishes_none() {
    let api = TestApi::seeded();
    let path = format!("/activities/{ALICE_RUN}");

    let unchanged = api
        .call(
            api_request("PATCH", &path)
                .json(&json!({"title": "Morning run", "tags": ["easy", "river"]}))
                .request()
                .unwrap(),
        )
        .await;
    unchanged.assert_status(200);
    assert_eq!(unchanged.body["version"], 1);
    assert_eq!(unchanged.body["updated_at"], "2026-11-24T07:15:00Z");
    assert!(
        api.published().is_empty(),
        "a no-op update publishes nothing"
    );
    assert_eq!(api.activity_writes(), 0, "a no-op update writes nothing");

    let updated = api
        .call(
            api_request("PATCH", &path)
                .json(&json!({"duration_minutes": 50}))
                .request()
                .unwrap(),
        )
        .await;
    updated.assert_status(200);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    let deleted = api
        .call(api_request("DELETE", &path).request().unwrap())
        .await;
    deleted.assert_status(204);
    assert!(deleted.text.is_empty());

    let published = api.published();
    let types: Vec<&str> = published.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["activity.updated", "activity.deleted"]);
    let update = DomainEvent::from_value(published[0].1.clone()).expect("event decodes");
    assert_eq!(update.aggregate_id, ALICE_RUN);
    assert_eq!(published[0].1["data"]["before"]["duration_minutes"], 45);
    assert_eq!(published[0].1["data"]["after"]["duration_minutes"], 50);
    assert_eq!(published[1].1["data"]["deleted"]["duration_minutes"], 50);

    api.call(api_request("GET", &path).request().unwrap())
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn stats_reflect_the_events_once_the_consumer_applied_them() {
    let api = TestApi::empty();
    for (kind, minutes, km, date) in [
        ("running", 30, 5.0, "2026-11-24"),
        ("running", 45, 8.25, "2026-11-25"),
        ("cycling", 60, 20.0, "2026-11-10"),
    ] {
        let body = json!({"type": kind, "title": "x", "duration_minutes": minutes,
                          "distance_km": km, "activity_date": date});
        api.call(
            api_request("POST", "/activities")
                .json(&body)
                .request()
                .unwrap(),
        )
        .await
        .assert_status(201);
    }
    let events: Vec<DomainEvent> = api
        .published()
        .into_iter()
        .map(|(_, detail)| DomainEvent::from_value(detail).expect("event decodes"))
        .collect();
    api.stack.stats_updater.apply(&events).await;

    let week = api
        .call(
            api_request("GET", "/stats")
                .query("period", "week")
                .query("date", "2026-11-26")
                .request()
                .unwrap(),
        )
        .await;
    week.assert_status(200);
    assert_eq!(
        week.body,
        json!({"period": "2026-W48",
               "totals": {"activities": 2, "duration_minutes": 75, "distance_km": 13.25, "calories_burned": 0},
               "by_type": {"running": {"activities": 2, "duration_minutes": 75, "distance_km": 13.25, "calories_burned": 0}}})
    );
    let all = api
        .call(api_request("GET", "/stats").request().unwrap())
        .await;
    assert_eq!(all.body["totals"]["activities"], 3);
    assert_eq!(all.body["by_type"]["cycling"]["distance_km"], 20.0);
    let bob = api
        .call(api_request("GET", "/stats").caller(BOB).request().unwrap())
        .await;
    assert_eq!(bob.body["totals"]["activities"], 0, "stats are per user");
}

// ---------------------------------------------------------------- isolation

#[tokio::test]
async fn another_users_activity_is_answered_exactly_like_a_missing_one() {
    let api = TestApi::seeded();
    let missing = "01KAW3D5R8M2N4P6Q8S0T2V4ZZ";
    for (theirs, absent) in [
        (
            api_request("GET", &format!("/activities/{BOB_RUN}")),
            api_request("GET", &format!("/activities/{missing}")),
        ),
        (
            api_request("PATCH", &format!("/activities/{BOB_RUN}")).json(&json!({"title": "mine"})),
            api_request("PATCH", &format!("/activities/{missing}")).json(&json!({"title": "mine"})),
        ),
        (
            api_request("DELETE", &format!("/activities/{BOB_RUN}")),
            api_request("DELETE", &format!("/activities/{missing}")),
        ),
    ] {
        let theirs = api.call(theirs.request_id("same").request().unwrap()).await;
        let absent = api.call(absent.request_id("same").request().unwrap()).await;
        theirs.assert_problem(404, "not-found");
        assert_eq!(theirs.body, absent.body);
    }
    let bobs = api
        .stack
        .activity_store
        .all_activities()
        .into_iter()
        .find(|a| a.id.to_string() == BOB_RUN)
        .expect("bob's activity is still there");
    assert_eq!(bobs.title.as_str(), "Bob's tempo run");
    assert!(api.published().is_empty());
}

#[tokio::test]
async fn a_list_never_shows_another_users_activities() {
    let api = TestApi::seeded();
    let alice = api
        .call(
            api_request("GET", "/activities")
                .query("limit", "100")
                .request()
                .unwrap(),
        )
        .await;
    assert_eq!(
        ids(&alice.body),
        [ALICE_RUN, ALICE_RIDE, ALICE_SWIM, ALICE_YOGA]
    );
    let bob = api
        .call(
            api_request("GET", "/activities")
                .caller(BOB)
                .request()
                .unwrap(),
        )
        .await;
    assert_eq!(ids(&bob.body), [BOB_RUN]);
    let carol = api
        .call(
            api_request("GET", "/activities")
                .caller("user-carol")
                .request()
                .unwrap(),
        )
        .await;
    assert_eq!(carol.body, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn identity_comes_from_the_claim_only() {
    let api = TestApi::seeded();
    // A user id in the headers or query is no identity.
    let response = api
        .call(
            api_request("GET", "/activities")
                .without_caller()
                .header("x-user-id", BOB)
                .request()
                .unwrap(),
        )
        .await;
    response.assert_problem(401, "unauthenticated");
    let response = api
        .call(
            api_request("GET", "/activities")
                .query("user_id", BOB)
                .request()
                .unwrap(),
        )
        .await;
    response.assert_problem(400, "invalid-parameter");
    // Nor is one in the body.
    let mut body = run_body();
    body["user_id"] = json!(BOB);
    api.call(
        api_request("POST", "/activities")
            .json(&body)
            .request()
            .unwrap(),
    )
    .await
    .assert_problem(400, "malformed-request");
    assert_eq!(api.activity_writes(), 0);
}

// ---------------------------------------------------------------- pagination

#[tokio::test]
async fn cursors_page_through_newest_first_and_only_for_their_owner_and_filters() {
    let api = TestApi::seeded();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = api_request("GET", "/activities").query("limit", "1");
        if let Some(cursor) = &cursor {
            request = request.query("cursor", cursor);
        }
        let page = api.call(request.request().unwrap()).await;
        page.assert_status(200);
        seen.extend(ids(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, [ALICE_RUN, ALICE_RIDE, ALICE_SWIM, ALICE_YOGA]);

    let first = api
        .call(
            api_request("GET", "/activities")
                .query("limit", "2")
                .request()
                .unwrap(),
        )
        .await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    api.call(
        api_request("GET", "/activities")
            .caller(BOB)
            .query("cursor", &cursor)
            .request()
            .unwrap(),
    )
    .await
    .assert_problem(400, "invalid-cursor");
    api.call(
        api_request("GET", "/activities")
            .query("type", "running")
            .query("cursor", &cursor)
            .request()
            .unwrap(),
    )
    .await
    .assert_problem(400, "invalid-cursor");
    let mut forged = cursor.clone();
    forged.insert(3, 'x');
    api.call(
        api_request("GET", "/activities")
            .query("cursor", &forged)
            .request()
            .unwrap(),
    )
    .await
    .assert_problem(400, "invalid-cursor");
}

#[tokio::test]
async fn list_filters_by_date_range_and_type() {
    let api = TestApi::seeded();
    let page = api
        .call(
            api_request("GET", "/activities")
                .query("from", "2026-11-20")
                .query("to", "2026-11-22")
                .request()
                .unwrap(),
        )
        .await;
    assert_eq!(ids(&page.body), [ALICE_RIDE, ALICE_SWIM]);
    let page = api
        .call(
            api_request("GET", "/activities")
                .query("type", "yoga")
                .request()
                .unwrap(),
        )
        .await;
    assert_eq!(ids(&page.body), [ALICE_YOGA]);
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn every_class_of_bad_input_is_a_precise_problem_and_writes_nothing() {
    let api = TestApi::seeded();
    let run = format!("/activities/{ALICE_RUN}");
    let cases: Vec<(GatewayEventBuilder, u16, &str, &str)> = vec![
        (api_request("POST", "/activities").body("{\"title\": ").header("content-type", "application/json"), 400, "malformed-request", "EOF while parsing"),
        (api_request("POST", "/activities").json(&json!({"type": "running", "title": 5})), 400, "malformed-request", "invalid type: integer `5`"),
        (api_request("POST", "/activities").json(&json!({"type": "running", "colour": "red"})), 400, "malformed-request", "unknown field `colour`"),
        (api_request("POST", "/activities").json(&json!({"title": "a", "title2": 1})), 400, "malformed-request", "title2"),
        (api_request("POST", "/activities").body("[1, 2]"), 400, "malformed-request", "JSON object"),
        (api_request("POST", "/activities").body(""), 400, "malformed-request", "empty"),
        (api_request("POST", "/activities").body(run_body().to_string()).header("content-type", "text/csv"), 415, "unsupported-media-type", "text/csv"),
        (api_request("POST", "/activities").json(&json!({"type": "running", "title": "x", "duration_minutes": 1441, "activity_date": "2026-11-26"})), 422, "validation-failed", "duration_minutes: must be between 1 and 1440"),
        (api_request("POST", "/activities").json(&json!({"type": "running", "title": "x", "duration_minutes": 30.5, "activity_date": "2026-11-26"})), 422, "validation-failed", "duration_minutes: must be a whole number"),
        (api_request("POST", "/activities").json(&json!({"type": "running", "title": "x", "duration_minutes": 30, "activity_date": "26/11/2026"})), 422, "validation-failed", "activity_date: must be a calendar date"),
        (api_request("POST", "/activities").json(&json!({"type": "running", "title": "x", "duration_minutes": 30, "activity_date": "2026-11-28"})), 422, "validation-failed", "future"),
        (api_request("PATCH", &run).json(&json!({"distance_km": 1000.5})), 422, "validation-failed", "distance_km"),
        (api_request("PATCH", &run).json(&json!({"type": null})), 422, "validation-failed", "type: is required and cannot be cleared"),
        (api_request("PATCH", &run).json(&json!({"id": "01KAW3D5R8M2N4P6Q8S0T2V4W7"})), 400, "malformed-request", "unknown field `id`"),
        (api_request("PATCH", &run).header("if-match", "W/\"1\"").json(&json!({"title": "x"})), 400, "invalid-parameter", "If-Match"),
        (api_request("PATCH", "/activities/123").json(&json!({"title": "x"})), 400, "invalid-parameter", "id: must be a 26-character ULID"),
        (api_request("DELETE", "/activities/..."), 400, "invalid-parameter", "id"),
        (api_request("GET", "/activities").query("from", "2026-02-29"), 400, "invalid-parameter", "from: must be a calendar date"),
        (api_request("GET", "/activities").query("limit", "101"), 400, "invalid-parameter", "limit: must be a whole number from 1 to 100"),
        (api_request("GET", "/activities").query("limit", "ten"), 400, "invalid-parameter", "limit"),
        (api_request("GET", "/activities").query("type", "run").query("type", "swim"), 400, "invalid-parameter", "type"),
        (api_request("GET", "/activities").query("cursor", "not-a-cursor"), 400, "invalid-cursor", "cursor"),
        (api_request("GET", "/stats").query("period", "month").query("date", "2026-11"), 400, "invalid-parameter", "date"),
        (api_request("GET", "/stats").query("date", "2026-11-26"), 400, "invalid-parameter", "date: must not be given"),
    ];
    for (request, status, slug, detail) in cases {
        let event = request.event();
        let response = api.call(request.request().unwrap()).await;
        assert_eq!(response.status, status, "{event}\n{}", response.text);
        assert_eq!(response.problem(), Some(slug), "{event}\n{}", response.text);
        let text = format!("{} {}", response.body["detail"], response.body["errors"]);
        assert!(
            text.contains(detail),
            "{event}\nexpected `{detail}` in {text}"
        );
    }
    assert_eq!(api.activity_writes(), 0, "bad input writes nothing");
    assert!(api.published().is_empty());
}

#[tokio::test]
async fn validation_lists_every_offending_field() {
    let api = TestApi::empty();
    let response = api
        .call(
            api_request("POST", "/activities")
                .json(&json!({"type": "Running", "title": "", "duration_minutes": -1,
                              "calories_burned": 20001, "tags": ["ok", ""], "description": "é".repeat(2001)}))
                .request().unwrap(),
        )
        .await;
    response.assert_problem(422, "validation-failed");
    let fields: Vec<&str> = response.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        [
            "type",
            "title",
            "description",
            "duration_minutes",
            "calories_burned",
            "tags[1]",
            "activity_date"
        ]
    );
    assert!(
        response.body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("running")
    );
}

#[tokio::test]
async fn the_body_limit_is_64_kib() {
    let api = TestApi::empty();
    let body = run_body().to_string();
    // Padding with whitespace keeps the JSON valid: the limit is on bytes, not on content.
    let at_limit = format!("{body}{}", " ".repeat(64 * 1024 - body.len()));
    api.call(
        api_request("POST", "/activities")
            .body(&at_limit)
            .request()
            .unwrap(),
    )
    .await
    .assert_status(201);
    let over = format!("{at_limit} ");
    let response = api
        .call(
            api_request("POST", "/activities")
                .body(&over)
                .request()
                .unwrap(),
        )
        .await;
    response.assert_problem(413, "payload-too-large");
    let response = api
        .call(
            api_request(
                "PATCH",
                &format!("/activities/{}", "01KAW3D5R8M2N4P6Q8S0T2V4W6"),
            )
            .body(&over)
            .request()
            .unwrap(),
        )
        .await;
    response.assert_problem(413, "payload-too-large");
    assert_eq!(api.stack.activity_store.all_activities().len(), 1);
}

// ---------------------------------------------------------------- concurrency

#[tokio::test]
async fn if_match_guards_updates_and_deletes() {
    let api = TestApi::seeded();
    let yoga = format!("/activities/{ALICE_YOGA}");
    let stale = api
        .call(
            api_request("PATCH", &yoga)
                .header("if-match", "\"2\"")
                .json(&json!({"duration_minutes": 70}))
                .request()
                .unwrap(),
        )
        .await;
    stale.assert_problem(412, "precondition-failed");
    assert!(
        stale.body["detail"]
            .as_str()
            .expect("detail")
            .contains("\"3\"")
    );
    api.call(
        api_request("DELETE", &yoga)
            .header("if-match", "\"2\"")
            .request()
            .unwrap(),
    )
    .await
    .assert_problem(412, "precondition-failed");
    assert_eq!(api.activity_writes(), 0);

    let fresh = api
        .call(
            api_request("PATCH", &yoga)
                .header("if-match", "\"3\"")
                .json(&json!({"duration_minutes": 70}))
                .request()
                .unwrap(),
        )
        .await;
    fresh.assert_status(200);
    assert_eq!(fresh.header("etag"), Some("\"4\""));
    api.call(
        api_request("PATCH", &yoga)
            .header("if-match", "*")
            .json(&json!({"notes": null}))
            .request()
            .unwrap(),
    )
    .await
    .assert_status(200);
    api.call(
        api_request("DELETE", &yoga)
            .header("if-match", "\"5\"")
            .request()
            .unwrap(),
    )
    .await
    .assert_status(204);
}

#[tokio::test]
async fn a_merge_patch_keeps_absent_fields_and_clears_null_ones() {
    let api = TestApi::seeded();
    let run = format!("/activities/{ALICE_RUN}");
    let patched = api
        .call(
            api_request("PATCH", &run)
                .header("content-type", "application/merge-patch+json")
                .body(r#"{"description": null, "calories_burned": null, "tags": [], "notes": "windy"}"#)
                .request().unwrap(),
        )
        .await;
    patched.assert_status(200);
    assert_eq!(patched.body["description"], Value::Null);
    assert_eq!(patched.body["calories_burned"], Value::Null);
    assert_eq!(patched.body["tags"], json!([]));
    assert_eq!(patched.body["notes"], "windy");
    assert_eq!(patched.body["title"], "Morning run");
    assert_eq!(patched.body["distance_km"], 8.2);
    assert_eq!(patched.body["updated_at"], "2026-11-26T12:00:00Z");
}

// ---------------------------------------------------------------- idempotency

#[tokio::test]
async fn an_idempotent_retry_replays_the_first_answer_and_creates_nothing() {
    let api = TestApi::empty();
    let first = api
        .call(
            api_request("POST", "/activities")
                .header("idempotency-key", "k-1")
                .json(&run_body())
                .request()
                .unwrap(),
        )
        .await;
    first.assert_status(201);
    assert_eq!(first.header("idempotent-replayed"), None);

    // The same object re-serialised (other key order and spacing) is the same request.
    let reordered = r#"{ "activity_date": "2026-11-26", "tags": ["track"], "calories_burned": 610,
        "distance_km": 9.5, "duration_minutes": 50, "title": "Intervals", "type": "running" }"#;
    api.clock.advance(time::Duration::minutes(10));
    let retry = api
        .call(
            api_request("POST", "/activities")
                .header("idempotency-key", "k-1")
                .header("content-type", "application/json")
                .body(reordered)
                .request()
                .unwrap(),
        )
        .await;
    retry.assert_status(201);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));

    let other_body = api
        .call(
            api_request("POST", "/activities")
                .header("idempotency-key", "k-1")
                .json(&json!({"type": "yoga", "title": "x", "duration_minutes": 10, "activity_date": "2026-11-26"}))
                .request().unwrap(),
        )
        .await;
    other_body.assert_problem(422, "idempotency-key-reused");

    assert_eq!(api.stack.activity_store.all_activities().len(), 1);
    assert_eq!(api.activity_writes(), 1);
    assert_eq!(api.published().len(), 1);

    // Keys are per user: Bob's "k-1" is his own.
    api.call(
        api_request("POST", "/activities")
            .caller(BOB)
            .header("idempotency-key", "k-1")
            .json(&run_body())
            .request()
            .unwrap(),
    )
    .await
    .assert_status(201);
    assert_eq!(api.stack.activity_store.all_activities().len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_expires_after_a_day() {
    let api = TestApi::empty();
    let request = api_request("POST", "/activities")
        .header("idempotency-key", "k-2")
        .json(&run_body());
    api.call(request.request().unwrap())
        .await
        .assert_status(201);
    api.clock.advance(time::Duration::hours(25));
    let later = api.call(request.request().unwrap()).await;
    later.assert_status(201);
    assert_eq!(later.header("idempotent-replayed"), None);
    assert_eq!(api.stack.activity_store.all_activities().len(), 2);
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn a_store_failure_is_a_500_without_internal_detail_and_names_the_request() {
    let api = TestApi::seeded();
    api.stack
        .activity_store
        .fail_writes_with(Some(StoreError::Failed(
            "AccessDenied on arn:aws:dynamodb:secret-table".into(),
        )));
    let response = api
        .call(
            api_request("POST", "/activities")
                .request_id("req-500")
                .json(&run_body())
                .request()
                .unwrap(),
        )
        .await;
    response.assert_problem(500, "internal-error");
    assert!(!response.text.contains("secret"), "{}", response.text);
    assert!(!response.text.contains("AccessDenied"), "{}", response.text);
    assert_eq!(response.body["instance"], "req-500");

    api.stack
        .activity_store
        .fail_writes_with(Some(StoreError::Unavailable("throttled: secret".into())));
    let response = api
        .call(
            api_request("DELETE", &format!("/activities/{ALICE_RUN}"))
                .request()
                .unwrap(),
        )
        .await;
    response.assert_problem(503, "service-unavailable");
    assert!(!response.text.contains("secret"));
}

// ---------------------------------------------------------------- properties

/// Arbitrary JSON, biased towards the API's own field names so that many bodies get past serde.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z0-9 -]{0,12}".prop_map(Value::from),
        Just(json!("2026-11-25")),
        Just(json!("running")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("type".to_owned()),
            Just("title".to_owned()),
            Just("duration_minutes".to_owned()),
            Just("distance_km".to_owned()),
            Just("calories_burned".to_owned()),
            Just("tags".to_owned()),
            Just("activity_date".to_owned()),
            Just("notes".to_owned()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_body_makes_a_writing_route_fail_with_a_5xx(body in json_value(), raw in ".{0,40}") {
        // Timers on, as in every runtime that runs the handlers: the publish after a commit
        // runs under a time budget.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let api = TestApi::seeded();
            let run = format!("/activities/{ALICE_RUN}");
            for request in [
                api_request("POST", "/activities").json(&body),
                api_request("PATCH", &run).json(&body),
                api_request("POST", "/activities").body(&raw),
                api_request("PATCH", &run).body(&raw),
            ] {
                let response = api.call(request.request().unwrap()).await;
                prop_assert!(
                    matches!(response.status, 200 | 201 | 400 | 422),
                    "{} for {}", response.status, response.text
                );
            }
            Ok(())
        })?;
    }
}
