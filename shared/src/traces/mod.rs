//! Traces: one activity change makes one connected trace, from the HTTP request through the outbox,
//! the bus and the queue to every consumer's projection write.
//!
//! Spans are plain `tracing` spans (the same ones the JSON logs name); with the `otel` feature and
//! an OTLP endpoint configured, `tracing-opentelemetry` turns them into OpenTelemetry spans and
//! [`export`] sends them over OTLP/HTTP (locally to any collector; in AWS to the ADOT collector
//! layer, which forwards to X-Ray). Without the feature, or without an endpoint, nothing is
//! exported and every function here is a no-op that answers `None`.
//!
//! The asynchronous hops keep no call stack, so the position of the span that wrote an event rides
//! in the event's envelope ([`TraceParent`], `traceparent`) and, where the transport has one, in its
//! own header (EventBridge's `TraceHeader`, which SQS hands on as `AWSTraceHeader`; a
//! `traceparent` header on RabbitMQ, Kafka and NATS). A consumer's span for one message is a child
//! of the envelope's position ([`follow`]) and links to the transport header's when that is
//! another one; a span that serves many messages at once (a consumer batch, a relay pass) links
//! to each of them ([`link`]) instead of pretending to have one parent.

#[cfg(feature = "otel")]
pub mod export;
#[cfg(feature = "otel")]
mod otlp_http;

/// A process environment of `pairs` only, for the tests of what the export reads from it.
#[cfg(all(test, feature = "otel"))]
fn test_variables(
    pairs: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

use crate::domain::TraceParent;
use crate::telemetry::LogFormat;

/// Installs the process's subscriber: the JSON (or pretty) logs of [`crate::telemetry::init`],
/// plus span export when the `otel` feature is built and `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. `service` names the process in the traces
/// (`OTEL_SERVICE_NAME` overrides it).
pub fn init(format: LogFormat, service: &str) {
    #[cfg(feature = "otel")]
    if export::init(format, service) {
        return;
    }
    let _ = service;
    crate::telemetry::init(format);
}

/// Sends the spans that ended so far and waits for the collector to take them: a Lambda execution
/// environment is frozen between invocations, so each invocation flushes before it answers. A
/// no-op when nothing is exported.
pub fn flush() {
    #[cfg(feature = "otel")]
    export::flush();
}

/// Flushes and stops the export, for a process about to exit. A no-op when nothing is exported.
pub fn shutdown() {
    #[cfg(feature = "otel")]
    export::shutdown();
}

/// The trace position of the current span: what an event written now carries.
pub fn current() -> Option<TraceParent> {
    of(&tracing::Span::current())
}

/// The trace position of `span`, when it is exported (`None` otherwise).
pub fn of(span: &tracing::Span) -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    {
        context::of(span)
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        None
    }
}

/// Makes `span` a child of `parent` (a position from another process). Call it before the span is
/// first entered.
pub fn follow(span: &tracing::Span, parent: &TraceParent) {
    #[cfg(feature = "otel")]
    context::follow(span, parent);
    #[cfg(not(feature = "otel"))]
    let _ = (span, parent);
}

/// Links `span` to `to`: the span works for that position without being its child (one of many
/// messages of a batch, one of many records of a relay pass).
pub fn link(span: &tracing::Span, to: &TraceParent) {
    #[cfg(feature = "otel")]
    context::link(span, to);
    #[cfg(not(feature = "otel"))]
    let _ = (span, to);
}

/// Links `span` to every distinct position of `positions`, once each.
pub fn link_all(span: &tracing::Span, positions: impl IntoIterator<Item = TraceParent>) {
    let mut seen: Vec<TraceParent> = Vec::new();
    for position in positions {
        if !seen.contains(&position) {
            link(span, &position);
            seen.push(position);
        }
    }
}

#[cfg(feature = "otel")]
mod context {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::domain::TraceParent;

    fn span_context(position: &TraceParent) -> SpanContext {
        let flags = match position.sampled() {
            true => TraceFlags::SAMPLED,
            false => TraceFlags::default(),
        };
        SpanContext::new(
            TraceId::from_bytes(position.trace_id().to_be_bytes()),
            SpanId::from_bytes(position.span_id().to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        )
    }

    pub(super) fn of(span: &tracing::Span) -> Option<TraceParent> {
        let context = span.context();
        let span_ref = context.span();
        let span_context = span_ref.span_context();
        if !span_context.is_valid() {
            return None;
        }
        TraceParent::new(
            u128::from_be_bytes(span_context.trace_id().to_bytes()),
            u64::from_be_bytes(span_context.span_id().to_bytes()),
            span_context.is_sampled(),
        )
    }

    pub(super) fn follow(span: &tracing::Span, parent: &TraceParent) {
        let parent = opentelemetry::Context::new().with_remote_span_context(span_context(parent));
        // Refused only when no OpenTelemetry layer is installed or the span started already;
        // either way the span keeps its own parent, which is all that can be done.
        let _refused = span.set_parent(parent);
    }

    pub(super) fn link(span: &tracing::Span, to: &TraceParent) {
        span.add_link(span_context(to));
    }
}
