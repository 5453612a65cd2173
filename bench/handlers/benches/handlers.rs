//! What one request or one event costs inside a function, on in-memory adapters: the work
//! activelog adds on top of the Lambda runtime, without any network. Targets (issue 8): a median
//! of at most 50 µs per HTTP request and 20 µs per consumed event.

use activelog::domain::{
    ActivityDate, ActivityFacts, ActivityType, CorrelationId, DomainEvent, EventId, EventPayload,
    UserId,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use time::macros::{date, datetime};
use ulid::Ulid;

fn created_event() -> DomainEvent {
    DomainEvent {
        event_id: EventId::from_ulid(Ulid::from_parts(1_764_000_000_000, 42)),
        occurred_at: datetime!(2026-11-23 10:00 UTC),
        aggregate_id: "01JDQ7Z8R0A4X6T3V9N2B5C7D1".into(),
        user_id: UserId::parse("user-0001").expect("a valid user id"),
        correlation_id: CorrelationId::parse("req-0001").expect("a valid correlation id"),
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
    c.bench_function("envelope/serialise activity.created", |b| {
        b.iter(|| black_box(&event).to_json())
    });
    c.bench_function("envelope/deserialise activity.created", |b| {
        b.iter(|| DomainEvent::from_json(black_box(&json)))
    });
}

criterion_group!(benches, envelope);
criterion_main!(benches);
