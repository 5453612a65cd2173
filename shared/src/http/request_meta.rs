//! What ties a request's logs, responses and events together: its request id, its correlation id
//! and its X-Ray trace header, read once when the request arrives. Every other part of the HTTP
//! edge (reading the request, answering it, logging it) depends on this and on nothing else here.

use lambda_http::request::RequestContext as LambdaRequestContext;
use lambda_http::{Request, RequestExt};

use crate::application::RequestContext;
use crate::domain::{CorrelationId, TraceParent, UserId};

pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
pub const TRACE_HEADER: &str = "x-amzn-trace-id";
/// The W3C Trace Context header a traced client sends.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Set on a response that replays an earlier one for the same `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";
/// Where Lambda puts the X-Ray trace header when the request did not carry one.
const TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// What ties a request's logs, responses and events together.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// API Gateway's request id (the Lambda request id when there is none).
    pub request_id: String,
    /// From a valid `x-correlation-id` header, else the request id.
    pub correlation_id: CorrelationId,
    pub trace_header: Option<String>,
    /// Where the request's span continues a trace: the client's W3C `traceparent` header when
    /// valid, else the X-Ray trace header's parent (in Lambda, the function's own segment).
    pub trace_parent: Option<TraceParent>,
}

impl RequestMeta {
    pub fn of(request: &Request) -> Self {
        let gateway_id = match request.request_context_ref() {
            Some(LambdaRequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
            _ => None,
        };
        let lambda = request.lambda_context_ref();
        let request_id = gateway_id
            .filter(|id| !id.is_empty())
            .or_else(|| lambda.map(|c| c.request_id.clone()))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| ulid::Ulid::new().to_string());
        let correlation_id = header(request, CORRELATION_ID_HEADER)
            .and_then(|raw| CorrelationId::parse(raw).ok())
            .or_else(|| CorrelationId::parse(&request_id).ok())
            .unwrap_or_else(CorrelationId::generate);
        // Lambda's own trace id first; a header only when it looks like an X-Ray header and fits
        // EventBridge's TraceHeader (at most 500 characters): a client-chosen value must never make
        // PutEvents refuse the event.
        let trace_header = lambda
            .and_then(|c| c.xray_trace_id.clone())
            .or_else(|| std::env::var(TRACE_ENV).ok())
            .or_else(|| header(request, TRACE_HEADER).map(str::to_owned))
            .filter(|t| is_trace_header(t));
        let trace_parent = header(request, TRACEPARENT_HEADER)
            .and_then(|raw| TraceParent::parse(raw).ok())
            .or_else(|| {
                trace_header
                    .as_deref()
                    .and_then(TraceParent::from_xray_header)
            });
        Self {
            request_id,
            correlation_id,
            trace_header,
            trace_parent,
        }
    }

    /// The use cases' view of this request, for `user_id`.
    pub fn context(&self, user_id: UserId) -> RequestContext {
        RequestContext {
            user_id,
            correlation_id: self.correlation_id.clone(),
            request_id: Some(self.request_id.clone()),
            trace_header: self.trace_header.clone(),
        }
    }
}

/// A header's value, when present and visible ASCII.
fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// An X-Ray trace header EventBridge accepts: `Root=1-…`, printable ASCII, 1 to 500 characters.
fn is_trace_header(raw: &str) -> bool {
    raw.starts_with("Root=1-") && raw.len() <= 500 && raw.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod trace_header_tests {
    use super::is_trace_header;

    #[test]
    fn only_plausible_xray_headers_are_carried_into_events() {
        assert!(is_trace_header(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        ));
        assert!(!is_trace_header(""));
        assert!(!is_trace_header("anything the client likes"));
        assert!(!is_trace_header(&format!("Root=1-{}", "a".repeat(500))));
    }
}
