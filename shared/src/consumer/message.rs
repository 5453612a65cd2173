//! Reading one delivered message as a domain event. Every way a body can be unreadable is a [`Poison`]:
//! the same bytes fail the same way on every receive, so retrying cannot help.

use serde::Deserialize;
use tracing::Span;

use crate::domain::{DomainEvent, EventDecodeError};

use super::event_source::RawMessage;

/// Why a message can never be processed.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Poison {
    #[error("message has no body")]
    MissingBody,
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not an EventBridge event: {0}")]
    NotAnEventBridgeEvent(String),
    #[error(transparent)]
    Event(#[from] EventDecodeError),
    /// The EventBridge `source`/`detail-type` routed the event as something its envelope is not.
    #[error(
        "EventBridge source `{event_source}` and detail-type `{detail_type}` do not match the envelope's event type `{event_type}`"
    )]
    HeaderMismatch {
        event_source: String,
        detail_type: String,
        event_type: String,
    },
}

/// The fields of an EventBridge event this edge relies on; the others are not needed.
#[derive(Deserialize)]
struct EventBridgeEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    detail: serde_json::Value,
}

/// Reads a message body: JSON, an EventBridge event, an activelog envelope of a known type and
/// version whose header agrees with it.
fn decode(body: Option<&str>) -> Result<DomainEvent, Poison> {
    let body = body.ok_or(Poison::MissingBody)?;
    // Straight into the EventBridge fields: reading the whole body into a `Value` first, then
    // that into the struct, built every map of the event twice (a quarter of a consumer's
    // instructions per message, issue 15). serde_json tells a body that is not JSON (syntax, end
    // of input) from JSON that is not an EventBridge event (data) as the two steps did.
    let delivered: EventBridgeEvent = serde_json::from_str(body).map_err(|e| {
        if e.is_data() {
            Poison::NotAnEventBridgeEvent(e.to_string())
        } else {
            Poison::NotJson(e.to_string())
        }
    })?;
    if !delivered.detail.is_object() {
        return Err(Poison::NotAnEventBridgeEvent(
            "`detail` is not an object".into(),
        ));
    }
    let event = DomainEvent::from_value(delivered.detail)?;
    let event_type = event.event_type();
    if delivered.detail_type != event_type.as_str() || delivered.source != event_type.source() {
        return Err(Poison::HeaderMismatch {
            event_source: delivered.source,
            detail_type: delivered.detail_type,
            event_type: event_type.as_str().to_owned(),
        });
    }
    Ok(event)
}

/// Reads a message body as the consumers do: the event it carries, or why it can never be
/// processed. For tools that show messages (the local stack's console), so that they say what a
/// consumer would say of a body without running one.
pub fn read_event(body: Option<&str>) -> Result<DomainEvent, Poison> {
    decode(body)
}

/// One message of a batch, with the span its logs are written in.
pub(crate) struct Received {
    pub index: usize,
    /// Empty when the transport gave none, which makes Lambda retry the whole SQS batch if it is
    /// reported: the safe side when a message cannot be named.
    pub message_id: String,
    pub span: Span,
}

impl Received {
    /// Reads the body, then opens the message's span with the message id and receive count and,
    /// when the body was readable, the event and correlation ids, so every line about the message
    /// links back to the request that caused its event. The span is made once with all its
    /// fields: recording a field later re-parses and re-writes the span's JSON fields each time
    /// (tracing-subscriber's JSON format), three times per message (issue 15, handler CPU). A
    /// readable event's span continues the trace of the span that wrote the event (its
    /// envelope's `traceparent`), one message having one true parent. The transport's own trace
    /// header (when it names another position, or the envelope names none, or the body is
    /// unreadable) becomes a link, never a parent: the transport says where the message
    /// travelled, not who wrote the event.
    pub fn read(index: usize, message: &RawMessage) -> (Self, Result<DomainEvent, Poison>) {
        let decoded = decode(message.body.as_deref());
        let event = decoded.as_ref().ok();
        let message_id = message.message_id.clone();
        let span = tracing::info_span!(
            "message",
            message_id = %message_id,
            receive_count = message.delivery_count,
            event_id = event.map(|e| tracing::field::display(e.event_id)),
            event_type = event.map(|e| e.event_type().as_str()),
            correlation_id = event.map(|e| e.correlation_id.as_str()),
        );
        let writer = event.and_then(|e| e.trace_parent);
        if let Some(writer) = &writer {
            crate::traces::follow(&span, writer);
        }
        if let Some(transport) = message.transport_trace.filter(|t| Some(*t) != writer) {
            crate::traces::link(&span, &transport);
        }
        let received = Self {
            index,
            message_id,
            span,
        };
        (received, decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eventbridge(detail: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "activity.deleted",
            "source": "activelog.activities",
            "account": "123456789012",
            "time": "2026-11-23T10:00:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": detail
        })
        .to_string()
    }

    fn deleted() -> serde_json::Value {
        serde_json::json!({
            "event_id": "01JDQ7Z8R0A4X6T3V9N2B5C7D1",
            "event_type": "activity.deleted",
            "event_version": 1,
            "occurred_at": "2026-11-23T10:00:00Z",
            "aggregate_id": "01JDQ7Z8R0A4X6T3V9N2B5C7D2",
            "user_id": "alice",
            "correlation_id": "req-1",
            "data": {"deleted": {"type": "running", "duration_minutes": 30, "distance_m": 5000,
                     "calories_burned": null, "activity_date": "2026-11-22"}, "version": 2}
        })
    }

    #[test]
    fn reads_an_eventbridge_event_with_an_envelope() {
        let event = decode(Some(&eventbridge(deleted()))).unwrap();
        assert_eq!(event.user_id.as_str(), "alice");
    }

    #[test]
    fn every_unreadable_body_is_named_poison() {
        assert_eq!(decode(None), Err(Poison::MissingBody));
        assert!(matches!(decode(Some("{oops")), Err(Poison::NotJson(_))));
        assert!(matches!(
            decode(Some(&deleted().to_string())),
            Err(Poison::NotAnEventBridgeEvent(_))
        ));
        assert!(matches!(
            decode(Some(&eventbridge("text".into()))),
            Err(Poison::NotAnEventBridgeEvent(_))
        ));
        let mut future = deleted();
        future["event_version"] = 7.into();
        assert!(matches!(
            decode(Some(&eventbridge(future))),
            Err(Poison::Event(EventDecodeError::UnsupportedVersion {
                version: 7,
                ..
            }))
        ));
        let mut unknown = deleted();
        unknown["event_type"] = "activity.liked".into();
        assert!(matches!(
            decode(Some(&eventbridge(unknown))),
            Err(Poison::Event(EventDecodeError::UnknownEventType(_)))
        ));
        let mut invalid = deleted();
        invalid["data"]["deleted"]["duration_minutes"] = "long".into();
        assert!(matches!(
            decode(Some(&eventbridge(invalid))),
            Err(Poison::Event(EventDecodeError::InvalidData { .. }))
        ));
    }

    #[test]
    fn a_header_that_disagrees_with_the_envelope_is_poison() {
        let mut body: serde_json::Value = serde_json::from_str(&eventbridge(deleted())).unwrap();
        body["detail-type"] = "activity.created".into();
        assert!(matches!(
            decode(Some(&body.to_string())),
            Err(Poison::HeaderMismatch { .. })
        ));
    }
}
