//! What API Gateway does in front of the functions: match the route, take the caller from the
//! token, and hand the function an HTTP API payload 2.0 event. The event is built as JSON and
//! converted as the functions convert it in Lambda (`http::gateway_event`), so a handler sees
//! exactly what it would see there.
//!
//! Local mode authenticates nobody: the `x-user-id` header becomes the authorizer's `sub` claim.

use std::collections::BTreeMap;

use activelog::http::{Route, route_for};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;

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
    let path = uri.path();
    let Some((route, path_parameters)) = route_for(method.as_str(), path) else {
        return Err(GatewayResponse {
            status: StatusCode::NOT_FOUND,
            message: "Not Found",
        });
    };
    let request_id = ulid::Ulid::new().to_string();
    let event = api_gateway_event(
        &route,
        &request_id,
        method,
        uri,
        headers,
        body,
        &path_parameters,
    );
    let event = serde_json::from_value(event).map_err(|error| {
        tracing::error!(%error, "could not build the API Gateway event");
        GatewayResponse {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Internal Server Error",
        }
    })?;
    Ok(RoutedRequest {
        route,
        request_id,
        event: activelog::http::request_from_event(event),
    })
}

/// The HTTP API payload format 2.0 event for this request.
fn api_gateway_event(
    route: &Route,
    request_id: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    path_parameters: &[(&'static str, String)],
) -> Value {
    // API Gateway joins repeated headers and query parameters with commas.
    let mut header_map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = uri.query().unwrap_or_default();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in form_pairs(raw_query) {
        query
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let now = OffsetDateTime::now_utc();
    let mut request_context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "http": {
            "method": method.as_str(),
            "path": uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": header_map.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": request_id,
        "routeKey": route.route_key(),
        "stage": "$default",
        "time": now.format(time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000")).unwrap_or_default(),
        "timeEpoch": now.unix_timestamp() * 1000,
    });
    if let Some(user) = headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        request_context["authorizer"] = json!({
            "jwt": {"claims": {"sub": user, "iss": "activelog-local"}, "scopes": null}
        });
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (STANDARD.encode(body), true),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.route_key(),
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": request_context,
        "isBase64Encoded": is_base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !path_parameters.is_empty() {
        let parameters: BTreeMap<&str, &String> =
            path_parameters.iter().map(|(k, v)| (*k, v)).collect();
        event["pathParameters"] = json!(parameters);
    }
    if !body.is_empty() {
        event["body"] = Value::String(body);
    }
    event
}

/// Decodes `application/x-www-form-urlencoded` pairs, as API Gateway decodes a query string.
fn form_pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded_like_api_gateway() {
        assert_eq!(
            form_pairs("from=2026-11-01&type=running&tag=a%20b&x=1+2&empty="),
            vec![
                ("from".to_owned(), "2026-11-01".to_owned()),
                ("type".to_owned(), "running".to_owned()),
                ("tag".to_owned(), "a b".to_owned()),
                ("x".to_owned(), "1 2".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        assert_eq!(
            form_pairs("a=%zz&b=50%"),
            vec![
                ("a".to_owned(), "%zz".to_owned()),
                ("b".to_owned(), "50%".to_owned()),
            ]
        );
    }
}
