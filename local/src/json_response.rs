//! The local stack's own JSON answers (a refused route, the operator endpoints): not the API's,
//! which the functions' handlers write. A module of its own so the server and the operator
//! endpoints both use it without depending on each other.

use axum::body::Body;
use axum::http::{Response, StatusCode};

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}
