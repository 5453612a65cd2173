//! Who is asking, as every use case receives it. A module of its own so that the use cases depend
//! on it and not on each other.

use crate::domain::{CorrelationId, UserId};

/// Who is asking and how to tie what follows to this request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub user_id: UserId,
    pub correlation_id: CorrelationId,
    /// The X-Ray trace header, carried into the events this request causes.
    pub trace_header: Option<String>,
}
