//! What API Gateway does in front of the functions: match the route, take the caller from the
//! token, and hand the function an HTTP API payload 2.0 event. The event is written by
//! `activelog::http::GatewayEventBuilder` (the tests' requests are written by it too) and
//! converted as the functions convert it in Lambda, so a handler sees exactly what it would see
//! there.
//!
//! Local mode authenticates nobody: the `x-user-id` header becomes the authorizer's `sub` claim.

use activelog::http::{GatewayEventBuilder, Route};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// The local stand-in for a JWT: this header names the caller.
pub const USER_HEADER: &str = "x-user-id";

/// A request matched to a route, ready for its function.
pub struct RoutedRequest {
    pub route: Route,
    pub request_id: String,
    pub event: lambda_http::Request,
}

/// Why API Gateway itself would answer, without invoking a function.
#[derive(Debug)]
pub struct GatewayResponse {
    pub status: StatusCode,
    pub message: &'static str,
}

/// Matches the route and builds the function's event, as API Gateway would.
pub fn route(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<RoutedRequest, GatewayResponse> {
    let request_id = ulid::Ulid::new().to_string();
    let mut event = GatewayEventBuilder::new(method.as_str(), uri.path())
        .deployment("000000000000", "local", "localhost")
        .source_ip("127.0.0.1")
        .request_id(&request_id)
        .raw_query(uri.query().unwrap_or_default())
        .body(body);
    let Some((route, _)) = event.route().cloned() else {
        return Err(GatewayResponse {
            status: StatusCode::NOT_FOUND,
            message: "Not Found",
        });
    };
    for (name, value) in headers {
        event = event.header(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
    }
    if let Some(user) = headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        event = event.caller(user).claim("iss", "activelog-local");
    }
    let event = event.request().map_err(|error| {
        tracing::error!(%error, "could not build the API Gateway event");
        GatewayResponse {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Internal Server Error",
        }
    })?;
    Ok(RoutedRequest {
        route,
        request_id,
        event,
    })
}
