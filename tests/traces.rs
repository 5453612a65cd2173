//! One activity change makes one connected trace (issue #19), read from an in-process collector:
//! the HTTP request, its use case and the outbox publish; the relay pass that publishes what the
//! request could not, linked to the request's trace; and the consumer batch, whose span for the
//! message is a child of the span that wrote the event, while the batch and its projection write
//! link to every trace they serve (three requests, three links — never one false parent). The
//! transport's own trace header (SQS's `AWSTraceHeader`) adds a link, never a parent, and its
//! X-Ray spelling converts to and from W3C's exactly.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use activelog::adapters::memory::{ManualClock, Poller, rules_from_template};
use activelog::application::PublishError;
use activelog::consumer::{
    SqsEvent, SqsMessage, StatsConsumer, aws_trace_header, traceparent_header,
};
use activelog::domain::TraceParent;
use activelog::startup::{InMemoryStack, QueueOptions};
use activelog_tests::http::api_request;
use activelog_tests::traces::{Collector, Span, named, only};
use proptest::prelude::*;
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
    assert_eq!(
        create.attribute("request_id"),
        Some("req-traced"),
        "a log line's request id finds the use case's trace"
    );
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

fn sqs_message(id: &str, event: &serde_json::Value, aws_trace_header: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(event.to_string());
    message.attributes = HashMap::from([
        ("ApproximateReceiveCount".to_owned(), "1".to_owned()),
        ("AWSTraceHeader".to_owned(), aws_trace_header.to_owned()),
    ]);
    message
}

fn message_with_id<'a>(spans: &'a [Span], message_id: &str) -> &'a Span {
    named(spans, "message")
        .into_iter()
        .find(|s| s.attribute("message_id") == Some(message_id))
        .unwrap_or_else(|| panic!("no message span for {message_id}"))
}

/// The transport's own trace header (here SQS's `AWSTraceHeader`, as Lambda's SQS trigger hands
/// it over) is a link, never a parent: a message whose envelope has no `traceparent` stays its
/// batch's child and links to the header's position; one whose envelope names another position stays the envelope's child and
/// links to the header's too; the same position in both is one parent and no link; an unreadable
/// header is no link at all.
#[tokio::test]
async fn the_transports_trace_header_is_linked_when_the_envelope_does_not_name_it() {
    let (stack, _clock) = stack();
    // Before the collector is installed nothing is traced: this event's envelope has no position.
    create(&stack, "req-untraced").await;
    let untraced = stack.bus.accepted_events()[0].clone();
    assert!(
        untraced["detail"].get("traceparent").is_none(),
        "{untraced}"
    );
    let collector = Collector::install();
    create(&stack, "req-traced").await;
    let traced = stack.bus.accepted_events()[1].clone();
    let envelope = TraceParent::parse(traced["detail"]["traceparent"].as_str().unwrap()).unwrap();

    let header = "Root=1-6756f1a0-0123456789abcdef01234567;Parent=89abcdef01234567;Sampled=1";
    let header_position = (
        "6756f1a00123456789abcdef01234567".to_owned(),
        "89abcdef01234567".to_owned(),
    );
    let mut event = SqsEvent::default();
    event.records = vec![
        sqs_message("m-untraced", &untraced, header),
        sqs_message("m-traced", &traced, header),
        sqs_message("m-same", &traced, &envelope.to_xray_header()),
        sqs_message(
            "m-bad",
            &untraced,
            "Root=1-6756f1a0-0123456789ABCDEF01234567;Parent=89abcdef01234567",
        ),
    ];
    StatsConsumer::new(stack.stats_updater.clone())
        .handle(event)
        .await;

    let spans = collector.spans();
    let create_span = only(&spans, "create activity");
    // Without a position in the envelope, a message's span is its batch's child, as in any
    // consumer; the header's position is a link.
    let batch = only(&spans, "consume batch");
    let untraced_message = message_with_id(&spans, "m-untraced");
    assert!(
        untraced_message.is_child_of(batch),
        "no false parent: {untraced_message:#?}"
    );
    assert_eq!(untraced_message.links, vec![header_position.clone()]);
    let traced_message = message_with_id(&spans, "m-traced");
    assert!(
        traced_message.is_child_of(create_span),
        "{traced_message:#?}"
    );
    assert_eq!(traced_message.links, vec![header_position]);
    let same = message_with_id(&spans, "m-same");
    assert!(same.is_child_of(create_span));
    assert!(
        same.links.is_empty(),
        "one context, one reference: {same:#?}"
    );
    let bad = message_with_id(&spans, "m-bad");
    assert!(bad.is_child_of(batch) && bad.links.is_empty(), "{bad:#?}");
}

proptest! {
    /// Every position reads back from its X-Ray spelling (what EventBridge writes and SQS hands
    /// over as `AWSTraceHeader`) and from its W3C spelling, and the consumer's reading of the
    /// SQS attribute is the same position.
    #[test]
    fn a_position_round_trips_through_its_xray_and_w3c_spellings(
        trace_id in 1u128..,
        span_id in 1u64..,
        sampled: bool,
    ) {
        let position = TraceParent::new(trace_id, span_id, sampled).unwrap();
        let xray = position.to_xray_header();
        prop_assert_eq!(TraceParent::from_xray_header(&xray), Some(position));
        prop_assert_eq!(aws_trace_header(Some(&xray)), Some(position));
        let w3c = position.to_string();
        prop_assert_eq!(TraceParent::parse(&w3c), Ok(position));
        prop_assert_eq!(traceparent_header(Some(&w3c)), Some(position));
    }

    /// And the other way: an X-Ray header with a parent, read as a W3C position, is written back
    /// exactly.
    #[test]
    fn an_xray_header_round_trips_through_w3c(
        header in "Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]",
    ) {
        let Some(position) = aws_trace_header(Some(&header)) else {
            // Only an all-zero id is refused.
            prop_assert!(header.contains("-00000000-000000000000000000000000") || header.contains("Parent=0000000000000000"));
            return Ok(());
        };
        let w3c = TraceParent::parse(&position.to_string()).unwrap();
        prop_assert_eq!(w3c.to_xray_header(), header);
    }
}
