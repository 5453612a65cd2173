//! One activity change makes one connected trace (issue #19), read from an in-process collector:
//! the HTTP request, its use case and the outbox publish; the relay pass that publishes what the
//! request could not, linked to the request's trace; and the consumer batch, whose span for the
//! message is a child of the span that wrote the event, while the batch and its projection write
//! link to every trace they serve (three requests, three links — never one false parent).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use activelog::adapters::memory::{ManualClock, Poller, rules_from_template};
use activelog::application::PublishError;
use activelog::consumer::StatsConsumer;
use activelog::startup::{InMemoryStack, QueueOptions};
use activelog_tests::http::api_request;
use activelog_tests::traces::{Collector, Span, named, only};
use serde_json::json;
use time::Duration;
use time::macros::datetime;

fn stack() -> (InMemoryStack, Arc<ManualClock>) {
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
    let stack =
        activelog_tests::stack::in_memory_with(&rules, &QueueOptions::default(), clock.clone());
    (stack, clock)
}

async fn create(stack: &InMemoryStack, request_id: &str) {
    let request = api_request("POST", "/activities")
        .request_id(request_id)
        .json(&json!({
            "type": "running",
            "title": "Intervals",
            "duration_minutes": 50,
            "distance_km": 9.5,
            "activity_date": "2026-11-26"
        }))
        .request()
        .unwrap();
    let response = activelog::http::create_activity(&stack.activities, request).await;
    assert_eq!(response.status(), 201);
}

fn stats_poller(stack: &InMemoryStack) -> Poller {
    Poller::new(
        stack.queue("StatsQueue").unwrap().clone(),
        Arc::new(StatsConsumer::new(stack.stats_updater.clone())),
        10,
    )
}

fn request_with_id<'a>(spans: &'a [Span], request_id: &str) -> &'a Span {
    named(spans, "request")
        .into_iter()
        .find(|s| s.attribute("request_id") == Some(request_id))
        .unwrap_or_else(|| panic!("no request span for {request_id}"))
}

#[tokio::test]
async fn a_create_the_relay_and_the_consumer_batch_form_one_linked_trace() {
    let collector = Collector::install();
    let (stack, clock) = stack();
    // The bus is down for the request: the event stays in the outbox for the relay.
    stack
        .bus
        .fail_calls_with(Some(PublishError::Unavailable("bus down".into())));
    create(&stack, "req-traced").await;
    stack.bus.fail_calls_with(None);
    clock.advance(Duration::minutes(1));
    let relayed = stack.relay.relay_pending().await.unwrap();
    assert_eq!(relayed.published, 1);
    assert_eq!(stats_poller(&stack).poll_once().await, 1);

    let spans = collector.spans();
    // The request's trace: request → use case → outbox publish.
    let request = request_with_id(&spans, "req-traced");
    assert!(request.parent_span_id.is_empty(), "the request is the root");
    assert_eq!(request.attribute("function"), Some("create-activity"));
    let create = only(&spans, "create activity");
    assert!(create.is_child_of(request));
    assert_eq!(create.attribute("correlation_id"), Some("req-traced"));
    let publish = only(&spans, "outbox publish");
    assert!(publish.is_child_of(create));

    // The relay: its own run, a pass linked to the trace of the record it published.
    let relay = only(&spans, "outbox relay");
    let pass = only(&spans, "relay pass");
    assert!(pass.is_child_of(relay));
    assert_ne!(pass.trace_id, request.trace_id);
    assert!(pass.links_to(create), "{pass:#?} must link to {create:#?}");

    // The consumer: the message continues the request's trace under the span that wrote the
    // event; the batch and the projection write link to it.
    let message = only(&spans, "message");
    assert!(message.is_child_of(create), "{message:#?}");
    assert_eq!(
        message.trace_id, request.trace_id,
        "one trace from POST to stats"
    );
    assert_eq!(message.attribute("correlation_id"), Some("req-traced"));
    assert_eq!(message.attribute("event_type"), Some("activity.created"));
    assert!(message.attribute("event_id").is_some());
    let batch = only(&spans, "consume batch");
    assert_eq!(batch.attribute("function"), Some("update-stats"));
    assert!(
        batch.parent_span_id.is_empty(),
        "a batch has no false parent"
    );
    assert!(batch.links_to(create));
    let write = only(&spans, "apply_stats");
    assert!(write.is_child_of(batch));
    assert!(write.links_to(create));
}

#[tokio::test]
async fn a_batch_of_three_requests_messages_links_to_all_three() {
    let collector = Collector::install();
    let (stack, _clock) = stack();
    for request_id in ["req-a", "req-b", "req-c"] {
        create(&stack, request_id).await;
    }
    assert_eq!(
        stats_poller(&stack).poll_once().await,
        3,
        "one batch of three"
    );

    let spans = collector.spans();
    let batch = only(&spans, "consume batch");
    let write = only(&spans, "apply_stats");
    let messages = named(&spans, "message");
    assert_eq!(messages.len(), 3);
    let creates = named(&spans, "create activity");
    assert_eq!(creates.len(), 3);
    for request_id in ["req-a", "req-b", "req-c"] {
        let request = request_with_id(&spans, request_id);
        let create = creates
            .iter()
            .find(|c| c.is_child_of(request))
            .expect("the request's use case span");
        assert!(batch.links_to(create), "batch links to {request_id}");
        assert!(write.links_to(create), "write links to {request_id}");
        let message = messages
            .iter()
            .find(|m| m.trace_id == request.trace_id)
            .unwrap_or_else(|| panic!("no message span in {request_id}'s trace"));
        assert!(message.is_child_of(create));
        assert!(message.is_child_of(create) && !message.is_child_of(batch));
    }
    assert_eq!(batch.links.len(), 3, "one link per trace, each once");
}

/// The envelope's trace position survives the transport, and the X-Ray header spells the same
/// position: what EventBridge's `TraceHeader` carries for the same event.
#[tokio::test]
async fn the_event_carries_the_writers_position_in_its_envelope() {
    let collector = Collector::install();
    let (stack, _clock) = stack();
    create(&stack, "req-envelope").await;
    let event = &stack.bus.accepted_events()[0];
    let traceparent = event["detail"]["traceparent"].as_str().unwrap().to_owned();
    let spans = collector.spans();
    let create_span = only(&spans, "create activity");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", create_span.trace_id, create_span.span_id)
    );
}
