//! Who is asking, as every use case receives it. A module of its own so that the use cases depend
//! on it and not on each other.

use crate::domain::{CorrelationId, UserId};

/// Who is asking and how to tie what follows to this request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub user_id: UserId,
    pub correlation_id: CorrelationId,
    /// The HTTP edge's request id (API Gateway's), named on the use case's span so that a log
    /// line's request id finds its trace; `None` for work no request caused (tools, tests).
    pub request_id: Option<String>,
    /// The X-Ray trace header, carried into the events this request causes.
    pub trace_header: Option<String>,
}
