//! The one place that writes API Gateway HTTP API (payload format 2.0) events the way API Gateway
//! writes them: route key and path parameters from [`ROUTES`](super::ROUTES), repeated headers
//! joined with commas, the query decoded into `queryStringParameters`, a body that is not UTF-8
//! sent as base64, and the JWT authorizer's claims in the request context.
//!
//! Whoever stands in for API Gateway builds its events here: the local stack for every request
//! it serves, and the tests for the requests they send. The event is built as JSON and read back
//! as the Lambda runtime reads it, then converted by [`request_from_event`], so a handler sees
//! what it would see in Lambda.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::Request;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::gateway_event::request_from_event;
use super::routes::{Route, route_for};

/// The JSON built is not an event the Lambda runtime would accept (a header value that is no
/// valid HTTP header value, for instance).
#[derive(Debug, thiserror::Error)]
#[error("not an HTTP API payload 2.0 event: {0}")]
pub struct UnreadableEvent(#[from] serde_json::Error);

/// One request as API Gateway hands it to a function. Starts with no caller, no query, no headers
/// and no body, at the example deployment `api.example.com` of account `123456789012`.
#[derive(Debug, Clone)]
pub struct GatewayEventBuilder {
    method: String,
    path: String,
    route: Option<(Route, Vec<(&'static str, String)>)>,
    raw_query: String,
    headers: BTreeMap<String, String>,
    claims: Option<Map<String, Value>>,
    body: Option<Vec<u8>>,
    request_id: String,
    account_id: String,
    api_id: String,
    domain_name: String,
    source_ip: String,
    received_at: OffsetDateTime,
}

impl GatewayEventBuilder {
    /// A `method` request for `path` (without its query), routed as the deployed routes would.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            route: route_for(method, path),
            raw_query: String::new(),
            headers: BTreeMap::new(),
            claims: None,
            body: None,
            request_id: ulid::Ulid::new().to_string(),
            account_id: "123456789012".to_owned(),
            api_id: "api".to_owned(),
            domain_name: "api.example.com".to_owned(),
            source_ip: "192.0.2.1".to_owned(),
            received_at: OffsetDateTime::now_utc(),
        }
    }

    /// The route API Gateway matched, with its path parameters; `None` when no route serves the
    /// request (API Gateway itself would answer 404; the event then carries `$default`).
    pub fn route(&self) -> Option<&(Route, Vec<(&'static str, String)>)> {
        self.route.as_ref()
    }

    /// The deployment the request reached: its account, API id and domain name.
    pub fn deployment(mut self, account_id: &str, api_id: &str, domain_name: &str) -> Self {
        account_id.clone_into(&mut self.account_id);
        api_id.clone_into(&mut self.api_id);
        domain_name.clone_into(&mut self.domain_name);
        self
    }

    pub fn source_ip(mut self, source_ip: &str) -> Self {
        source_ip.clone_into(&mut self.source_ip);
        self
    }

    pub fn received_at(mut self, at: OffsetDateTime) -> Self {
        self.received_at = at;
        self
    }

    pub fn request_id(mut self, request_id: &str) -> Self {
        request_id.clone_into(&mut self.request_id);
        self
    }

    /// The query string as the client sent it (percent-encoded).
    pub fn raw_query(mut self, raw_query: &str) -> Self {
        raw_query.clone_into(&mut self.raw_query);
        self
    }

    /// Appends one query parameter, percent-encoded.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let mut query = form_urlencoded::Serializer::new(std::mem::take(&mut self.raw_query));
        query.append_pair(name, value);
        self.raw_query = query.finish();
        self
    }

    /// One header as the client sent it; a repeated header is joined with a comma, as API
    /// Gateway joins it. Names are lower-cased, as payload 2.0 carries them.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
        self
    }

    /// The caller the JWT authorizer verified: its `sub` claim.
    pub fn caller(self, subject: &str) -> Self {
        self.claim(super::SUBJECT_CLAIM, subject)
    }

    /// Any other claim of the caller's token (`iss`, `email`, ...), without which there is none.
    pub fn claim(mut self, name: &str, value: &str) -> Self {
        self.claims
            .get_or_insert_with(Map::new)
            .insert(name.to_owned(), json!(value));
        self
    }

    /// No authorizer claims at all: the request of a caller without a token.
    pub fn without_caller(mut self) -> Self {
        self.claims = None;
        self
    }

    /// The body as sent; sent as base64 when it is not UTF-8, as API Gateway sends it.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json(self, body: &Value) -> Self {
        self.body(body.to_string())
            .header("content-type", "application/json")
    }

    /// The event JSON, as the Lambda runtime receives it.
    pub fn event(&self) -> Value {
        let route_key = self
            .route
            .as_ref()
            .map_or_else(|| "$default".to_owned(), |(route, _)| route.route_key());
        let mut context = json!({
            "accountId": self.account_id,
            "apiId": self.api_id,
            "domainName": self.domain_name,
            "domainPrefix": self.domain_name.split('.').next().unwrap_or_default(),
            "http": {
                "method": self.method,
                "path": self.path,
                "protocol": "HTTP/1.1",
                "sourceIp": self.source_ip,
                "userAgent": self.headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": self.request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": self.received_at
                .format(time::macros::format_description!(
                    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
                ))
                .unwrap_or_default(),
            "timeEpoch": self.received_at.unix_timestamp() * 1000,
        });
        if let Some(claims) = &self.claims {
            context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.path,
            "rawQueryString": self.raw_query,
            "headers": self.headers,
            "requestContext": context,
            "isBase64Encoded": false,
        });
        let query = joined_query(&self.raw_query);
        if !query.is_empty() {
            event["queryStringParameters"] = json!(query);
        }
        if let Some((_, parameters)) = &self.route
            && !parameters.is_empty()
        {
            let parameters: BTreeMap<&str, &String> = parameters
                .iter()
                .map(|(name, value)| (*name, value))
                .collect();
            event["pathParameters"] = json!(parameters);
        }
        match self.body.as_deref() {
            None | Some([]) => {}
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => event["body"] = json!(text),
                Err(_) => {
                    event["body"] = json!(STANDARD.encode(bytes));
                    event["isBase64Encoded"] = json!(true);
                }
            },
        }
        event
    }

    /// The request the function's handler gets for this event.
    pub fn request(&self) -> Result<Request, UnreadableEvent> {
        Ok(request_from_event(serde_json::from_value(self.event())?))
    }
}

/// The query decoded as API Gateway decodes it (`application/x-www-form-urlencoded`), a repeated
/// parameter's values joined with commas.
fn joined_query(raw: &str) -> BTreeMap<String, String> {
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        query
            .entry(name.into_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    query
}

#[cfg(test)]
mod tests {
    use lambda_http::RequestExt;

    use super::*;

    #[test]
    fn query_strings_are_decoded_like_api_gateway() {
        let decoded = joined_query("from=2026-11-01&type=running&tag=a%20b&x=1+2&empty=&tag=c");
        assert_eq!(decoded["from"], "2026-11-01");
        assert_eq!(decoded["tag"], "a b,c");
        assert_eq!(decoded["x"], "1 2");
        assert_eq!(decoded["empty"], "");
        let malformed = joined_query("a=%zz&b=50%");
        assert_eq!(malformed["a"], "%zz");
        assert_eq!(malformed["b"], "50%");
    }

    #[test]
    fn the_route_fills_route_key_and_path_parameters() {
        let event = GatewayEventBuilder::new("GET", "/activities/01ABC").event();
        assert_eq!(event["routeKey"], "GET /activities/{id}");
        assert_eq!(event["requestContext"]["routeKey"], "GET /activities/{id}");
        assert_eq!(event["pathParameters"]["id"], "01ABC");
        let unrouted = GatewayEventBuilder::new("PUT", "/nowhere");
        assert!(unrouted.route().is_none());
        assert_eq!(unrouted.event()["routeKey"], "$default");
    }

    #[test]
    fn headers_are_joined_and_bodies_that_are_not_text_go_as_base64() {
        let event = GatewayEventBuilder::new("POST", "/activities")
            .header("X-Tag", "a")
            .header("x-tag", "b")
            .body([0xff, 0x00])
            .event();
        assert_eq!(event["headers"]["x-tag"], "a,b");
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "/wA=");
    }

    #[test]
    fn the_handler_sees_caller_query_and_body() {
        let request = GatewayEventBuilder::new("GET", "/activities")
            .caller("user-alice")
            .query("tag", "a b")
            .query("limit", "5")
            .json(&json!({"a": 1}))
            .request()
            .unwrap();
        assert_eq!(
            super::super::caller(&request).unwrap().as_str(),
            "user-alice"
        );
        assert_eq!(request.query_string_parameters().first("tag"), Some("a b"));
        assert_eq!(request.query_string_parameters().first("limit"), Some("5"));
        assert_eq!(request.body().as_ref(), br#"{"a":1}"#);
        let anonymous = GatewayEventBuilder::new("GET", "/stats")
            .caller("user-alice")
            .without_caller()
            .request()
            .unwrap();
        assert!(super::super::caller(&anonymous).is_err());
    }
}
