//! Speaking HTTP to the API the way API Gateway does: requests are built as HTTP API (payload 2.0)
//! events, routed with the same route table the functions are deployed from, and handed to the
//! functions' handlers over the whole system in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use activelog::adapters::memory::{ManualClock, SequentialIds};
use activelog::functions::HttpFunction;
use activelog::http;
use activelog::startup::{InMemoryStack, QueueOptions, load_seed};
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

/// Noon (UTC) of the day the sample events were written for: their dates are valid then.
pub const SAMPLES_NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

/// Ids of the seed file's activities.
pub const ALICE_RUN: &str = "01KAW3D5R8M2N4P6Q8S0T2V4W6";
pub const ALICE_RIDE: &str = "01KAW3D5R8M2N4P6Q8S0T2V4W7";
pub const ALICE_SWIM: &str = "01KAW3D5R8M2N4P6Q8S0T2V4W8";
/// At version 3.
pub const ALICE_YOGA: &str = "01KAW3D5R8M2N4P6Q8S0T2V4W9";
pub const BOB_RUN: &str = "01KAW3D5R8M2N4P6Q8S0T2V4XB";
pub const ALICE: &str = "user-alice";
pub const BOB: &str = "user-bob";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

pub fn events_dir() -> PathBuf {
    workspace_root().join("events")
}

/// The HTTP functions, once each, in route-table order.
pub fn http_functions() -> Vec<HttpFunction> {
    let mut functions: Vec<HttpFunction> = Vec::new();
    for route in http::ROUTES {
        if !functions.contains(&route.function) {
            functions.push(route.function);
        }
    }
    functions
}

/// One sample event of `events/<function>/` with its entry of `expected.json`.
/// `http::ROUTES` as (method, path template, function) triples, the shape the OpenAPI document and
/// `template.yaml` are compared against.
pub fn route_table() -> std::collections::BTreeSet<(String, String, String)> {
    http::ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                r.path.to_owned(),
                r.function.name().to_owned(),
            )
        })
        .collect()
}

pub struct Sample {
    pub function: HttpFunction,
    pub name: String,
    pub event: Value,
    pub expected: Value,
}

impl Sample {
    /// Runs the sample through its function's handler on a freshly seeded stack, as a function
    /// started with `ACTIVELOG_SEED_FILE=events/seed.json` would.
    pub async fn run(&self) -> TestResponse {
        let request = lambda_http::request::from_str(&self.event.to_string())
            .expect("lambda_http reads the sample");
        TestApi::seeded().invoke(self.function, request).await
    }
}

/// Every HTTP sample event; panics when a sample has no expectation or an expectation no sample.
pub fn samples() -> Vec<Sample> {
    let mut samples = Vec::new();
    for function in http_functions() {
        let dir = events_dir().join(function.name());
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("expected.json"))
                .unwrap_or_else(|e| panic!("{}/expected.json: {e}", function.name())),
        )
        .expect("expected.json is JSON");
        let expected = expected.as_object().expect("expected.json is an object");
        let mut files = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("events folder") {
            let name = entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".json") && name != "expected.json" {
                files.insert(name);
            }
        }
        let expected_names: std::collections::BTreeSet<String> = expected.keys().cloned().collect();
        assert_eq!(
            files,
            expected_names,
            "events/{}: every sample needs an expectation and every expectation a sample",
            function.name()
        );
        for name in files {
            let text = std::fs::read_to_string(dir.join(&name)).expect("sample readable");
            samples.push(Sample {
                function,
                event: serde_json::from_str(&text).expect("sample is JSON"),
                expected: expected[&name].clone(),
                name,
            });
        }
    }
    samples
}

/// The system in memory behind the HTTP handlers, with a clock that only moves when told.
pub struct TestApi {
    pub stack: InMemoryStack,
    pub clock: Arc<ManualClock>,
}

impl TestApi {
    pub fn empty() -> Self {
        let clock = Arc::new(ManualClock::new(SAMPLES_NOW));
        let stack = InMemoryStack::new(
            &[],
            &QueueOptions::default(),
            clock.clone(),
            Arc::new(SequentialIds::default()),
        )
        .expect("in-memory stack");
        Self { stack, clock }
    }

    /// Seeded with `events/seed.json`, as the read samples expect.
    pub fn seeded() -> Self {
        let api = Self::empty();
        let activities = load_seed(&events_dir().join("seed.json")).expect("seed file loads");
        api.stack.activity_store.seed(activities);
        api
    }

    /// Hands the request to the function API Gateway would route it to.
    pub async fn call(&self, request: Request) -> TestResponse {
        let method = request.method().as_str().to_owned();
        let path = lambda_http::RequestExt::raw_http_path(&request).to_owned();
        let (route, _) = http::route_for(&method, &path)
            .unwrap_or_else(|| panic!("no route serves {method} {path}"));
        self.invoke(route.function, request).await
    }

    /// Hands the request to `function`'s handler, as its Lambda would.
    pub async fn invoke(&self, function: HttpFunction, request: Request) -> TestResponse {
        let activities = &self.stack.activities;
        let response = match function {
            HttpFunction::CreateActivity => http::create_activity(activities, request).await,
            HttpFunction::GetActivity => {
                http::get_activity(&self.stack.activity_queries, request).await
            }
            HttpFunction::ListActivities => {
                http::list_activities(&self.stack.activity_queries, request).await
            }
            HttpFunction::UpdateActivity => http::update_activity(activities, request).await,
            HttpFunction::DeleteActivity => http::delete_activity(activities, request).await,
            HttpFunction::GetStats => http::get_stats(&self.stack.stats, request).await,
            HttpFunction::GetAchievements => {
                http::get_achievements(&self.stack.achievements, request).await
            }
        };
        TestResponse::from(response)
    }

    /// The EventBridge events the bus accepted so far, as (detail-type, detail).
    pub fn published(&self) -> Vec<(String, Value)> {
        self.stack
            .bus
            .accepted_events()
            .into_iter()
            .map(|e| {
                (
                    e["detail-type"].as_str().unwrap_or_default().to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect()
    }

    /// How many writes (creates, updates, deletes) reached the store.
    pub fn activity_writes(&self) -> usize {
        use activelog::adapters::memory::ActivityStoreCall as Call;
        self.stack
            .activity_store
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Create | Call::Update | Call::Delete))
            .count()
    }
}

/// A response with its body parsed, for assertions.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl From<Response<Body>> for TestResponse {
    fn from(response: Response<Body>) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
        };
        Self {
            status,
            headers,
            text,
            body,
        }
    }
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `type` slug (after `https://activelog.dev/problems/`), if this is a problem.
    pub fn problem(&self) -> Option<&str> {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix(activelog::http::PROBLEM_BASE))
    }

    /// Asserts the status and, for errors, that the answer is a problem of type `slug`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.problem(), Some(slug), "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], status);
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text);
    }
}

/// A request as API Gateway hands it to a function: an HTTP API payload 2.0 event with the JWT
/// authorizer's claims.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    user: Option<String>,
    body: Option<String>,
    request_id: String,
}

impl ApiRequest {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: Vec::new(),
            headers: Vec::new(),
            user: Some(ALICE.to_owned()),
            body: None,
            request_id: format!("req-{}", ulid::Ulid::new()),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }
    pub fn patch(path: &str) -> Self {
        Self::new("PATCH", path)
    }
    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    /// The caller (`sub` claim); `None` sends no authorizer claims at all.
    pub fn user(mut self, user: Option<&str>) -> Self {
        self.user = user.map(str::to_owned);
        self
    }

    pub fn as_user(self, user: &str) -> Self {
        self.user(Some(user))
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = id.to_owned();
        self
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json(self, body: &Value) -> Self {
        self.raw_body(&body.to_string())
            .header("content-type", "application/json")
    }

    /// A body as given, with no content type added.
    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    /// The event JSON; the route key and path parameters come from the route table, as API
    /// Gateway fills them from the deployed routes.
    pub fn event(&self) -> Value {
        let route = http::route_for(&self.method, &self.path);
        let route_key = route
            .as_ref()
            .map(|(r, _)| r.route_key())
            .unwrap_or_else(|| "$default".to_owned());
        let mut headers = serde_json::Map::new();
        headers.insert("host".into(), json!("api.example.com"));
        for (name, value) in &self.headers {
            headers.insert(name.clone(), json!(value));
        }
        let raw_query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let mut context = json!({
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {"method": self.method, "path": self.path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "activelog-tests"},
            "requestId": self.request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_694_400_000_i64,
        });
        if let Some(user) = &self.user {
            context["authorizer"] = json!({"jwt": {"claims": {"sub": user}, "scopes": null}});
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.path,
            "rawQueryString": raw_query.join("&"),
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": false,
        });
        if let Some((_, parameters)) = route
            && !parameters.is_empty()
        {
            let parameters: serde_json::Map<String, Value> = parameters
                .into_iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            event["pathParameters"] = Value::Object(parameters);
        }
        if let Some(body) = &self.body {
            event["body"] = json!(body);
        }
        event
    }

    pub fn build(&self) -> Request {
        lambda_http::request::from_str(&self.event().to_string()).expect("a valid HTTP API event")
    }
}

/// Percent-encodes a query component (everything but unreserved characters).
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// True when `actual` holds everything in `expected`: objects may have more members, arrays must
/// have the same length with each element matching.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| contains(av, ev))
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}
