//! The local stack exports its traces (issue #19): started with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at an OTLP/HTTP receiver on loopback (the real protocol, decoded by the test), one
//! POST yields the request's spans and the consumers' message spans in one trace.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use activelog_tests::traces::{OtlpReceiver, Span};
use reqwest::Method;
use serde_json::json;

use crate::local_stack::LocalStack;

#[tokio::test]
async fn the_local_stack_exports_one_trace_from_post_to_stats_over_otlp() {
    let receiver = OtlpReceiver::start().await;
    let stack = LocalStack::start_with_env(
        1,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            // Batches leave every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let (status, _) = stack
        .call(
            Method::POST,
            "/activities",
            Some("dora"),
            Some(
                json!({"type": "running", "title": "traced", "duration_minutes": 30,
                        "distance_km": 5.0, "activity_date": "2026-11-20"}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    stack
        .eventually("/stats?period=all", Some("dora"), |b| {
            b["totals"]["activities"] == 1
        })
        .await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let (service, request, create, message) = loop {
        let spans = receiver.spans();
        let find = |name: &str, accept: &dyn Fn(&Span) -> bool| {
            spans
                .iter()
                .find(|(_, s)| s.name == name && accept(s))
                .cloned()
        };
        let request = find("request", &|s| {
            s.attribute("function") == Some("create-activity")
        });
        let create = request
            .as_ref()
            .and_then(|(_, r)| find("create activity", &|s| s.is_child_of(r)));
        let message = create.as_ref().and_then(|(_, c)| {
            find("message", &|s| {
                s.is_child_of(c) && s.attribute("event_type") == Some("activity.created")
            })
        });
        if let (Some((service, request)), Some((_, create)), Some((_, message))) =
            (request, create, message)
        {
            break (service, request, create, message);
        }
        assert!(
            Instant::now() < deadline,
            "no connected trace exported within 15 s; received: {:#?}",
            spans
                .iter()
                .map(|(_, s)| (&s.name, &s.trace_id, &s.parent_span_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(service, "activelog-local");
    assert_eq!(
        message.trace_id, request.trace_id,
        "one trace from POST to the consumer"
    );
    assert_eq!(create.attribute("user_id"), Some("dora"));
    assert!(
        message.attribute("correlation_id").is_some(),
        "the message span names the request's correlation id"
    );
    // X-Ray's id shape: the first 8 hex digits are the trace's start, in epoch seconds.
    let started = u64::from_str_radix(&request.trace_id[..8], 16).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(started) < 120, "trace id {}", request.trace_id);
}
