//! Building responses: JSON bodies with their content type, problem responses for errors, and the
//! headers every response carries (`x-correlation-id`, so a client can quote it). Built without
//! fallible builders, so a response can always be produced.

use lambda_http::http::StatusCode;
use lambda_http::http::header::{CONTENT_TYPE, ETAG, HeaderName, HeaderValue, LOCATION};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::domain::Activity;

use super::activity_json::ActivityJson;
use super::entity_tag;
use super::problem::{HttpError, Problem};
use super::request_meta::{CORRELATION_ID_HEADER, IDEMPOTENT_REPLAYED_HEADER, RequestMeta};

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A last-resort body if serialising a response fails (it cannot for these types, but a
/// handler must answer whatever happens).
const SERIALISATION_FAILED: &str = r#"{"type":"https://activelog.dev/problems/internal-error","title":"Internal error","status":500,"detail":"The response could not be written."}"#;

fn with_headers(
    status: u16,
    content_type: Option<&'static str>,
    body: Body,
    meta: &RequestMeta,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Ok(value) = HeaderValue::from_str(meta.correlation_id.as_str()) {
        headers.insert(HeaderName::from_static(CORRELATION_ID_HEADER), value);
    }
    response
}

fn serialised<T: Serialize>(
    status: u16,
    content_type: &'static str,
    value: &T,
    meta: &RequestMeta,
) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => with_headers(status, Some(content_type), Body::Text(text), meta),
        Err(error) => {
            tracing::error!(request_id = %meta.request_id, %error, "response not serialisable");
            with_headers(
                500,
                Some(PROBLEM_JSON),
                Body::Text(SERIALISATION_FAILED.into()),
                meta,
            )
        }
    }
}

pub fn json<T: Serialize>(status: u16, value: &T, meta: &RequestMeta) -> Response<Body> {
    serialised(status, JSON, value, meta)
}

/// A JSON body already written as text (an activity, a page of them: see
/// [`ActivityJson`](super::activity_json::ActivityJson) for why they are not serialised here).
pub fn json_text(status: u16, text: String, meta: &RequestMeta) -> Response<Body> {
    with_headers(status, Some(JSON), Body::Text(text), meta)
}

pub fn problem(problem: &Problem, meta: &RequestMeta) -> Response<Body> {
    serialised(problem.status, PROBLEM_JSON, problem, meta)
}

/// The problem response of a failed request; server-side failures are logged here with the
/// error's full detail, which the response never carries.
pub fn error(error: HttpError, meta: &RequestMeta) -> Response<Body> {
    let (problem_type, detail, errors) = error.problem();
    let status = problem_type.status();
    // Client errors are logged once, by the handler's "request completed" line.
    if status >= 500 {
        tracing::error!(request_id = %meta.request_id, %error, problem = problem_type.slug(), status, "request failed");
    }
    let body = Problem {
        problem_type: problem_type.uri(),
        title: problem_type.title(),
        status,
        detail,
        instance: meta.request_id.clone(),
        errors,
    };
    problem(&body, meta)
}

pub fn no_content(meta: &RequestMeta) -> Response<Body> {
    with_headers(204, None, Body::Empty, meta)
}

/// One activity, with its version as a strong `ETag` for a later `If-Match`.
pub fn activity(status: u16, activity: &Activity, meta: &RequestMeta) -> Response<Body> {
    let mut response = json_text(status, ActivityJson(activity).to_json(), meta);
    if let Ok(value) = HeaderValue::from_str(&entity_tag::of(activity.version)) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// `201 Created` for a new activity (or the replay of its creation).
pub fn created(activity: &Activity, replayed: bool, meta: &RequestMeta) -> Response<Body> {
    let mut response = self::activity(201, activity, meta);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/activities/{}", activity.id)) {
        headers.insert(LOCATION, value);
    }
    if replayed {
        headers.insert(
            HeaderName::from_static(IDEMPOTENT_REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        );
    }
    response
}
