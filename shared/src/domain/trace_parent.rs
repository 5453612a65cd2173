//! Where an event sits in a distributed trace: the W3C Trace Context `traceparent` of the span that
//! wrote it. Events cross asynchronous hops (outbox, bus, queue, broker) that keep no call stack,
//! so the event itself carries the position of its writer, and a consumer's span can hang under it
//! (or link to it) whatever transport delivered the event.
//!
//! AWS spells the same position as an X-Ray trace header (`Root=1-…;Parent=…;Sampled=1`), which
//! EventBridge, SQS and Lambda carry; both spellings are read and written here. Pure text, no
//! tracing library: what a span context is belongs to `crate::traces`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A W3C `traceparent` (version `00`): the 128-bit trace id, the 64-bit id of the span that is the
/// parent of what follows, and whether the trace is sampled. Neither id is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

/// A `traceparent` that is not `00-<32 hex>-<16 hex>-<2 hex>` with non-zero ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("traceparent must be 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, ids not zero")]
pub struct InvalidTraceParent;

impl TraceParent {
    /// The header that carries a `traceparent` on an HTTP request and on the brokers' messages
    /// (AMQP, Kafka and NATS headers).
    pub const HEADER: &'static str = "traceparent";

    /// `None` when either id is zero (an invalid span context).
    pub fn new(trace_id: u128, span_id: u64, sampled: bool) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled,
        })
    }

    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// Reads a `traceparent` header value. Future versions are read by their version-00 prefix,
    /// as the W3C specification asks; version `ff` is invalid.
    pub fn parse(raw: &str) -> Result<Self, InvalidTraceParent> {
        let mut parts = raw.trim().splitn(4, '-');
        let (Some(version), Some(trace), Some(span), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidTraceParent);
        };
        let flags = rest.get(..2).ok_or(InvalidTraceParent)?;
        let exact = version == "00" && rest.len() == 2;
        let future = version != "00" && (rest.len() == 2 || rest.as_bytes().get(2) == Some(&b'-'));
        if !(exact || future) || version.len() != 2 || version.eq_ignore_ascii_case("ff") {
            return Err(InvalidTraceParent);
        }
        let trace_id = lower_hex(trace, 32)?;
        let span_id = lower_hex(span, 16)?;
        let flags = lower_hex(flags, 2)?;
        lower_hex(version, 2)?;
        Self::new(trace_id, span_id as u64, flags & 1 == 1).ok_or(InvalidTraceParent)
    }

    /// The X-Ray trace header of this position: `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`
    /// (EventBridge's `TraceHeader`, SQS's `AWSTraceHeader`). X-Ray reads the first 8 hex digits of
    /// the trace id as the trace's start time, which `crate::traces` makes true of the ids it
    /// generates.
    pub fn to_xray_header(&self) -> String {
        format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled={}",
            (self.trace_id >> 96) as u32,
            self.trace_id & ((1u128 << 96) - 1),
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// Reads an X-Ray trace header that names a parent (`Root=1-…;Parent=…`); a header with only
    /// a root names no span to continue from, and is `None`. Unknown keys are ignored.
    pub fn from_xray_header(raw: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = false;
        for part in raw.split(';') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key {
                "Root" => {
                    let mut pieces = value.split('-');
                    let (Some("1"), Some(time), Some(random), None) =
                        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
                    else {
                        return None;
                    };
                    let time = lower_hex(time, 8).ok()?;
                    let random = lower_hex(random, 24).ok()?;
                    root = Some((time << 96) | random);
                }
                "Parent" => parent = Some(lower_hex(value, 16).ok()? as u64),
                "Sampled" => sampled = value == "1",
                _ => {}
            }
        }
        Self::new(root?, parent?, sampled)
    }
}

/// `digits` lowercase hex digits exactly, as W3C and X-Ray write them.
fn lower_hex(raw: &str, digits: usize) -> Result<u128, InvalidTraceParent> {
    let valid = raw.len() == digits && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !valid {
        return Err(InvalidTraceParent);
    }
    u128::from_str_radix(raw, 16).map_err(|_| InvalidTraceParent)
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceParent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Reads an optional `traceparent` leniently: absent, `null`, or not a valid value all read as
/// `None`. A trace position is a hint for observability; an event must never become poison (or
/// lose its statistics) because of it.
pub(crate) fn lenient<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<TraceParent>, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(raw
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(|raw| TraceParent::parse(raw).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_round_trips() {
        let parsed = TraceParent::parse(W3C).unwrap();
        assert_eq!(parsed.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.span_id(), 0x00f067aa0ba902b7);
        assert!(parsed.sampled());
        assert_eq!(parsed.to_string(), W3C);
        let unsampled = TraceParent::parse(&W3C.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn malformed_or_zero_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), Err(InvalidTraceParent), "{bad:?}");
        }
        // A later version may append fields after the flags.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_ok()
        );
    }

    #[test]
    fn the_xray_header_spells_the_same_position() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let parsed = TraceParent::from_xray_header(header).unwrap();
        assert_eq!(parsed.trace_id(), 0x5759e988bd862e3fe1be46a994272793);
        assert_eq!(parsed.span_id(), 0x53995c3f42cd8ad8);
        assert!(parsed.sampled());
        assert_eq!(parsed.to_xray_header(), header);
        assert_eq!(
            TraceParent::from_xray_header("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
            None,
            "a root alone names no parent span"
        );
        assert_eq!(TraceParent::from_xray_header("anything"), None);
    }
}
