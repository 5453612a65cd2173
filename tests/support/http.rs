//! Speaking HTTP to the API the way API Gateway does: requests are built as HTTP API (payload 2.0)
//! events, routed with the same route table the functions are deployed from, and handed to the
//! functions' handlers over the whole system in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use activelog::adapters::memory::ManualClock;
use activelog::functions::HttpFunction;
use activelog::http::{self, GatewayEventBuilder};
use activelog::startup::{InMemoryStack, load_seed};

use crate::samples::{Answer, Sample, samples_of};
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
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

/// Every sample of the HTTP functions, in route-table order.
pub fn http_samples() -> Vec<Sample> {
    http_functions()
        .into_iter()
        .flat_map(|function| samples_of(function.name()))
        .collect()
}

impl Sample {
    /// The HTTP function the sample is for; panics for a sample of another function.
    pub fn http_function(&self) -> HttpFunction {
        HttpFunction::ALL
            .into_iter()
            .find(|f| f.name() == self.function)
            .unwrap_or_else(|| panic!("{} is no HTTP function", self.function))
    }

    /// Runs the sample through its function's handler on a freshly seeded stack, as a function
    /// started with `ACTIVELOG_SEED_FILE=events/seed.json` would.
    pub async fn run(&self) -> TestResponse {
        TestApi::seeded()
            .invoke(self.http_function(), request_from_json(&self.event))
            .await
    }

    /// API Gateway's response to the sample, from its function's handler on a freshly seeded
    /// stack: what the function's binary would answer in Lambda.
    pub async fn answer_in_process(&self) -> Answer {
        let api = TestApi::seeded();
        let function = self.http_function();
        let event = serde_json::from_value(self.event.clone()).expect("a payload 2.0 event");
        let response =
            http::answer_event(event, None, &|request| api.respond(function, request)).await;
        Answer::Response(serde_json::to_value(response).expect("a response serialises"))
    }
}

/// The system in memory behind the HTTP handlers, with a clock that only moves when told.
pub struct TestApi {
    pub stack: InMemoryStack,
    pub clock: Arc<ManualClock>,
}

impl TestApi {
    pub fn empty() -> Self {
        let clock = Arc::new(ManualClock::new(SAMPLES_NOW));
        let stack = crate::stack::in_memory(&[], clock.clone());
        Self { stack, clock }
    }

    /// Seeded with `events/seed.json`, as the read samples expect.
    pub fn seeded() -> Self {
        let api = Self::empty();
        let activities =
            load_seed(&crate::samples::events_dir().join("seed.json")).expect("seed file loads");
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
        TestResponse::from(self.respond(function, request).await)
    }

    /// `function`'s handler's response to the request.
    pub async fn respond(&self, function: HttpFunction, request: Request) -> Response<Body> {
        let activities = &self.stack.activities;
        match function {
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
        }
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

/// A request of the tests' API Gateway, written by the builder the local stack uses too: Alice
/// (the `sub` claim) calling `api.example.com` at [`SAMPLES_NOW`], with a fresh request id. The
/// builder's methods change any of it (`caller`, `without_caller`, `header`, `json`, ...).
pub fn api_request(method: &str, path: &str) -> GatewayEventBuilder {
    GatewayEventBuilder::new(method, path)
        .request_id(&format!("req-{}", ulid::Ulid::new()))
        .received_at(SAMPLES_NOW)
        .header("host", "api.example.com")
        .header("user-agent", "activelog-tests")
        .caller(ALICE)
}

/// The request a function's handler gets for an event, converted as the functions convert it
/// in Lambda (`http::gateway_event`), so tests see what production sees.
pub fn request_from_json(event: &Value) -> Request {
    let event = serde_json::from_value(event.clone()).expect("a payload 2.0 event");
    http::request_from_event(event)
}
