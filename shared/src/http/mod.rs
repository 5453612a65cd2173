//! The HTTP edge: API Gateway HTTP API requests (payload format 2.0) in, use cases called, responses
//! out. This is the only place that sees raw JSON, query strings and headers; it parses them into
//! domain values once and turns every failure into an RFC 9457 problem.
//!
//! Dependencies run one way, from the handlers down:
//!
//! - `gateway_event`: API Gateway's event in and its response out, in Lambda, without anything
//!   that can panic; it hands the request to a handler.
//! - `gateway_event_builder`: events written as API Gateway writes them, for whoever stands in
//!   for it (the local stack, the tests).
//! - `handlers`: one function per route; each answers, whatever happens.
//! - `request` (body limits, JSON, query, path and header parameters), `identity` (the caller:
//!   the JWT authorizer's `sub` claim) and `response` (JSON and problem responses with the
//!   headers every answer carries).
//! - `activity_json`, `stats_json`, `achievements_json`: the JSON shapes of the API;
//!   `rfc3339`, their timestamps written without allocating.
//! - `problem`: the one mapping from errors to status codes and problem types.
//! - `request_meta` (request and correlation ids, trace header) and `entity_tag` (versions as
//!   `ETag` and `If-Match`), which depend on nothing else here.
//! - `routes`: [`ROUTES`], the single table of which function serves which route; the OpenAPI
//!   test, the template test and the local stack read it.
//!
//! The modules are private; what other crates use is re-exported here, one path per item.

mod achievements_json;
mod activity_json;
mod entity_tag;
mod gateway_event;
mod gateway_event_builder;
mod handlers;
mod identity;
mod problem;
mod request;
mod request_meta;
mod response;
mod rfc3339;
mod routes;
mod stats_json;

pub use gateway_event::{
    UndecodableBody, answer_event, gateway_response, request_from_event, run_on_lambda,
};
pub use gateway_event_builder::{GatewayEventBuilder, UnreadableEvent};
pub use handlers::{
    MERGE_PATCH_JSON, create_activity, delete_activity, get_achievements, get_activity, get_stats,
    list_activities, update_activity,
};
pub use identity::{SUBJECT_CLAIM, caller};
pub use problem::{HttpError, PROBLEM_BASE, Problem, ProblemType};
pub use request::{DEFAULT_LIMIT, IDEMPOTENCY_KEY_HEADER, MAX_BODY_BYTES, MAX_LIMIT};
pub use request_meta::{
    CORRELATION_ID_HEADER, IDEMPOTENT_REPLAYED_HEADER, RequestMeta, TRACE_HEADER,
};
pub use response::{JSON, PROBLEM_JSON};
pub use routes::{ROUTES, Route, route_for};
