//! What one request or one event costs inside a function, on in-memory adapters: the work
//! activelog adds on top of the Lambda runtime, without any network. Targets (issue 8): a median
//! of at most 50 µs per HTTP request and 20 µs per consumed event.
//!
//! An HTTP benchmark goes from the raw API Gateway JSON the runtime receives to the response JSON
//! it posts back, with the production JSON log subscriber installed (log lines go to stdout, as on
//! Lambda; `scripts/bench.sh` sends them to a file), installed as a function's `main` does
//! (`traces::init`): with the `otel` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans are
//! exported too, which is how `scripts/bench-tracing.sh --handlers` measures tracing's cost.

// A benchmark whose setup fails has nothing to measure: it stops, as a test would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use activelog::consumer::{SqsEvent, StatsConsumer};
use activelog::domain::{
    ActivityDate, ActivityFacts, ActivityType, CorrelationId, DomainEvent, EventId, EventPayload,
    UserId,
};
use activelog::startup::{InMemoryStack, QueueOptions};
use activelog::telemetry::LogFormat;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::{Body, Response};
use time::macros::{date, datetime};
use ulid::Ulid;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// `events/<function>/valid.json`, the sample of a request that succeeds (as its `expected.json`
/// says; the samples test checks it), so the benchmark measures the path a real request takes.
fn sample(function: &str) -> String {
    let path = events_dir().join(function).join("valid.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stack() -> InMemoryStack {
    InMemoryStack::with_system_clock(&[], &QueueOptions::default()).expect("an in-memory stack")
}

/// The production subscriber, once per process: a second exporter would only be built to be
/// dropped.
fn subscriber() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| activelog::traces::init(LogFormat::Json, "handler-benches"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// What `lambda_http` does with a handler's response before posting it: an API Gateway v2
/// response document, serialised.
fn response_json(response: Response<Body>) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    let mut document = ApiGatewayV2httpResponse::default();
    document.status_code = i64::from(parts.status.as_u16());
    document.headers = parts.headers;
    document.body = Some(body);
    serde_json::to_vec(&document).expect("a response document serialises")
}

fn status_of(response: &[u8]) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(response).expect("JSON");
    value["statusCode"].as_u64().unwrap_or(0)
}

fn http(c: &mut Criterion) {
    subscriber();
    let rt = runtime();
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));

    let create = sample("create-activity");
    let check = rt.block_on(async {
        let stack = stack();
        let request = lambda_http::request::from_str(&create).expect("an API Gateway event");
        response_json(activelog::http::create_activity(&stack.activities, request).await)
    });
    assert_eq!(
        status_of(&check),
        201,
        "{}",
        String::from_utf8_lossy(&check)
    );
    // A fresh store per sample: the store grows by one activity per iteration, as a warm
    // function's would, but never by more than one sample's worth.
    group.bench_function("create-activity", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let create = create.clone();
            async move {
                let stack = stack();
                let started = Instant::now();
                for _ in 0..iters {
                    let request = lambda_http::request::from_str(black_box(&create))
                        .expect("an API Gateway event");
                    let response =
                        activelog::http::create_activity(&stack.activities, request).await;
                    black_box(response_json(response));
                }
                started.elapsed()
            }
        })
    });

    // The list sample's caller is the create sample's: 25 activities, of which a page shows 20
    // (the API's default limit).
    let list = sample("list-activities");
    let listed = stack();
    rt.block_on(async {
        for _ in 0..25 {
            let request = lambda_http::request::from_str(&create).expect("an API Gateway event");
            activelog::http::create_activity(&listed.activities, request).await;
        }
    });
    let page = rt.block_on(async {
        let request = lambda_http::request::from_str(&list).expect("an API Gateway event");
        response_json(activelog::http::list_activities(&listed.activity_queries, request).await)
    });
    let body: serde_json::Value = serde_json::from_slice(&page).expect("JSON");
    let items = serde_json::from_str::<serde_json::Value>(body["body"].as_str().unwrap_or("{}"))
        .ok()
        .and_then(|page| page["items"].as_array().map(Vec::len));
    assert_eq!(items, Some(20), "a list of 20: {body}");
    group.bench_function("list-activities (20 items)", |b| {
        b.to_async(&rt).iter(|| async {
            let request =
                lambda_http::request::from_str(black_box(&list)).expect("an API Gateway event");
            black_box(response_json(
                activelog::http::list_activities(&listed.activity_queries, request).await,
            ))
        })
    });
    group.finish();
}

/// A batch of 10 SQS messages as the event source mapping delivers them, each with a fresh
/// `event_id`: the samples' five messages twice over, so that none is a duplicate.
fn stats_batch(template: &serde_json::Value, batch: u64) -> String {
    let records = template["Records"]
        .as_array()
        .expect("the batch sample has Records");
    let mut fresh = Vec::with_capacity(10);
    for i in 0..10u64 {
        let mut record = records[i as usize % records.len()].clone();
        let mut body: serde_json::Value =
            serde_json::from_str(record["body"].as_str().expect("a message body"))
                .expect("the body is an EventBridge event");
        body["detail"]["event_id"] = serde_json::Value::String(
            Ulid::from_parts(1_764_000_000_000 + batch, u128::from(i)).to_string(),
        );
        record["body"] = serde_json::Value::String(body.to_string());
        record["messageId"] = serde_json::Value::String(format!("bench-{batch}-{i}"));
        fresh.push(record);
    }
    serde_json::json!({ "Records": fresh }).to_string()
}

fn consumer(c: &mut Criterion) {
    subscriber();
    let rt = runtime();
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("update-stats/batch.json"))
            .expect("events/update-stats/batch.json"),
    )
    .expect("the batch sample is JSON");
    let stats = stack();
    let consumer = &StatsConsumer::new(stats.stats_updater.clone());
    let report = rt.block_on(async {
        let event: SqsEvent =
            serde_json::from_str(&stats_batch(&template, 0)).expect("an SQS event");
        consumer
            .process(&activelog::consumer::sqs::raw_messages(&event))
            .await
    });
    // Ten new events, none a duplicate: the benchmark measures the path that updates the stats.
    assert_eq!(
        (report.processed, report.duplicates, report.failures.len()),
        (10, 0, 0)
    );
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(10));
    let mut batch = 0;
    group.bench_function("update-stats (batch of 10)", |b| {
        b.to_async(&rt).iter_batched(
            || {
                batch += 1;
                stats_batch(&template, batch)
            },
            |raw| async move {
                let event: SqsEvent = serde_json::from_str(&raw).expect("an SQS event");
                let response = consumer.handle(event).await;
                black_box(serde_json::to_vec(&response).expect("a batch response serialises"))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn created_event() -> DomainEvent {
    DomainEvent {
        event_id: EventId::from_ulid(Ulid::from_parts(1_764_000_000_000, 42)),
        occurred_at: datetime!(2026-11-23 10:00 UTC),
        aggregate_id: "01JDQ7Z8R0A4X6T3V9N2B5C7D1".into(),
        user_id: UserId::parse("user-0001").expect("a valid user id"),
        correlation_id: CorrelationId::parse("req-0001").expect("a valid correlation id"),
        trace_parent: None,
        payload: EventPayload::ActivityCreated {
            title: "Morning ride along the river".into(),
            facts: ActivityFacts {
                activity_type: ActivityType::Cycling,
                duration_minutes: 60,
                distance_m: Some(25_500),
                calories_burned: Some(640),
                activity_date: ActivityDate::from_date(date!(2026 - 11 - 23)),
            },
            tags: vec!["commute".into(), "outdoor".into()],
        },
    }
}

fn envelope(c: &mut Criterion) {
    let event = created_event();
    let json = event.to_json();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("serialise activity.created", |b| {
        b.iter(|| black_box(&event).to_json())
    });
    group.bench_function("deserialise activity.created", |b| {
        b.iter(|| DomainEvent::from_json(black_box(&json)))
    });
    group.finish();
}

fn config() -> Criterion {
    // Enough for stable medians on a shared 2-core machine without taking all afternoon.
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
}

criterion_group!(name = benches; config = config(); targets = http, consumer, envelope);
criterion_main!(benches);
