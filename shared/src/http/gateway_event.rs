//! The HTTP functions' Lambda edge: API Gateway's payload 2.0 event becomes the [`Request`] the
//! handlers take, and their [`Response`] becomes API Gateway's response.
//!
//! Converted here rather than by `lambda_http::run` because its conversion panics on events it
//! cannot convert — a body flagged base64 that does not decode, a path or `Host` that makes no
//! valid URI — and a panic under the release profile's `panic = "abort"` ends the execution
//! environment: the invocation dies without an answer and the next request pays a cold start.
//! This conversion cannot fail: whatever deserialises as a payload 2.0 event is answered. A body
//! that does not decode is kept out of the request and reported where a handler reads the body
//! (`400 malformed-request`); a URI that cannot be built is left at `/` (the handlers read path
//! parameters, never the URI). An event that does not even deserialise is refused by the runtime
//! as an invocation error, which the environment survives.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::header::{COOKIE, SET_COOKIE};
use lambda_http::http::{HeaderMap, HeaderValue, Uri};
use lambda_http::lambda_runtime::{self, Context, LambdaEvent};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// Marks a request whose body was flagged base64 but did not decode; its body is left empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndecodableBody;

/// Serves one HTTP function on the Lambda runtime: every event through [`answer_event`].
pub async fn run_on_lambda<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            let response = answer_event(event.payload, Some(event.context), handler).await;
            // The environment may be frozen once the function answers: the spans go out first.
            crate::traces::flush();
            Ok::<_, lambda_runtime::Error>(response)
        },
    ))
    .await
}

/// The API Gateway response to one event: converted, handled, converted back.
pub async fn answer_event<F, Fut>(
    event: ApiGatewayV2httpRequest,
    context: Option<Context>,
    handler: &F,
) -> ApiGatewayV2httpResponse
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let mut request = request_from_event(event);
    if let Some(context) = context {
        request = request.with_lambda_context(context);
    }
    gateway_response(handler(request).await)
}

/// The request a handler sees for an event, built without anything that can fail.
pub fn request_from_event(event: ApiGatewayV2httpRequest) -> Request {
    let raw_path = event.raw_path.unwrap_or_default();
    let raw_query = event.raw_query_string.unwrap_or_default();
    let target = if raw_query.is_empty() {
        raw_path.clone()
    } else {
        format!("{raw_path}?{raw_query}")
    };
    // API Gateway sends the query as raw text too; decoded here as it decodes it.
    let query = if raw_query.is_empty() {
        event.query_string_parameters
    } else {
        raw_query.parse::<QueryMap>().unwrap_or_default()
    };
    let (body, undecodable) = match (event.body, event.is_base64_encoded) {
        (None, _) => (Body::Empty, false),
        (Some(text), false) => (Body::Text(text), false),
        (Some(encoded), true) => match STANDARD.decode(encoded.as_bytes()) {
            Ok(bytes) => (Body::Binary(bytes), false),
            Err(_) => (Body::Empty, true),
        },
    };
    let mut headers: HeaderMap = event.headers;
    if let Some(cookies) = event.cookies
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(COOKIE, value);
    }
    let method = event.request_context.http.method.clone();

    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = target
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    *request.headers_mut() = headers;
    if undecodable {
        request.extensions_mut().insert(UndecodableBody);
    }
    request
        .with_raw_http_path(raw_path)
        .with_query_string_parameters(query)
        .with_path_parameters(QueryMap::from(event.path_parameters))
        .with_stage_variables(QueryMap::from(event.stage_variables))
        .with_request_context(RequestContext::ApiGatewayV2(event.request_context))
}

/// API Gateway's response for a handler's: cookies apart, as payload 2.0 wants them.
pub fn gateway_response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    headers.remove(SET_COOKIE);
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = headers;
    answer.cookies = cookies;
    match body {
        Body::Empty => {}
        Body::Text(text) => answer.body = Some(Body::Text(text)),
        Body::Binary(bytes) => {
            answer.is_base64_encoded = true;
            answer.body = Some(Body::Binary(bytes));
        }
        // `Body` is non-exhaustive; nothing here produces another kind.
        _ => {}
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(extra: serde_json::Value) -> ApiGatewayV2httpRequest {
        let mut event = super::super::GatewayEventBuilder::new("POST", "/activities")
            .header("content-type", "application/json")
            .event();
        for (key, value) in extra.as_object().into_iter().flatten() {
            event[key] = value.clone();
        }
        serde_json::from_value(event).expect("a payload 2.0 event")
    }

    /// Why this module exists: `lambda_http`'s own conversion panics on these events (with the
    /// release profile's `panic = "abort"`, the process dies). If a release of lambda_http stops
    /// panicking, this test says so and the module can be reconsidered.
    #[test]
    fn lambda_http_panics_where_this_conversion_answers() {
        for extra in [
            serde_json::json!({"body": "%%%", "isBase64Encoded": true}),
            serde_json::json!({"headers": {"host": "not a host name"}}),
        ] {
            let event = serde_json::to_string(&event(extra.clone())).unwrap();
            let converted = std::panic::catch_unwind(|| lambda_http::request::from_str(&event));
            assert!(
                converted.is_err(),
                "lambda_http no longer panics on {extra}"
            );
            let _ = request_from_event(serde_json::from_str(&event).unwrap());
        }
    }

    #[test]
    fn an_undecodable_base64_body_is_marked_not_a_panic() {
        let request = request_from_event(event(
            serde_json::json!({"body": "%%%", "isBase64Encoded": true}),
        ));
        assert_eq!(request.extensions().get(), Some(&UndecodableBody));
        assert!(request.body().is_empty());
        let request = request_from_event(event(
            serde_json::json!({"body": "eyJhIjoxfQ==", "isBase64Encoded": true}),
        ));
        assert_eq!(request.body().as_ref(), br#"{"a":1}"#);
        assert_eq!(request.extensions().get::<UndecodableBody>(), None);
    }

    #[test]
    fn a_path_or_host_that_makes_no_uri_still_gives_a_request() {
        let request = request_from_event(event(serde_json::json!({
            "rawPath": "/activities/a b", "rawQueryString": "x=1 2",
            "headers": {"host": "bad host"}, "pathParameters": {"id": "a b"}
        })));
        assert_eq!(request.uri(), "/");
        assert_eq!(request.path_parameters().first("id"), Some("a b"));
        assert_eq!(request.query_string_parameters().first("x"), Some("1 2"));
    }

    #[test]
    fn responses_keep_status_headers_body_and_cookies_apart() {
        let mut response = Response::new(Body::Text("{}".into()));
        *response.status_mut() = lambda_http::http::StatusCode::CREATED;
        response
            .headers_mut()
            .insert("etag", HeaderValue::from_static("\"1\""));
        response
            .headers_mut()
            .append(SET_COOKIE, HeaderValue::from_static("a=1"));
        let answer = gateway_response(response);
        assert_eq!(answer.status_code, 201);
        assert_eq!(answer.headers["etag"], "\"1\"");
        assert_eq!(answer.cookies, vec!["a=1".to_owned()]);
        assert!(!answer.is_base64_encoded);
        assert_eq!(answer.body, Some(Body::Text("{}".into())));
    }
}
