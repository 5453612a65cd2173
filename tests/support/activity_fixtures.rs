//! Activities and their events built directly from the domain, for tests that drive adapters
//! without the HTTP edge.

use activelog::application::OutboxRecord;
use activelog::domain::{
    Activity, ActivityDate, ActivityDraft, ActivityId, ActivityTitle, ActivityType, Calories,
    CorrelationId, Distance, DomainEvent, DurationMinutes, EventId, EventPayload, Tags, UserId,
};
use time::{Date, OffsetDateTime};
use ulid::Ulid;

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn draft(activity_type: ActivityType, date: Date, minutes: u32) -> ActivityDraft {
    ActivityDraft {
        activity_type,
        title: ActivityTitle::parse("Morning session").unwrap(),
        description: None,
        notes: None,
        duration: DurationMinutes::parse(minutes).unwrap(),
        distance: Some(Distance::from_km(5.0).unwrap()),
        calories: Some(Calories::parse(300).unwrap()),
        tags: Tags::parse(&["test"]).unwrap(),
        activity_date: ActivityDate::from_date(date),
    }
}

pub fn activity(owner: &UserId, activity_type: ActivityType, date: Date, minutes: u32) -> Activity {
    Activity::create(
        ActivityId::from_ulid(Ulid::new()),
        owner.clone(),
        draft(activity_type, date, minutes),
        OffsetDateTime::now_utc(),
    )
}

/// The `activity.created` event of an activity.
pub fn created_event(activity: &Activity) -> DomainEvent {
    DomainEvent {
        event_id: EventId::from_ulid(Ulid::new()),
        occurred_at: OffsetDateTime::now_utc(),
        aggregate_id: activity.id.to_string(),
        user_id: activity.user_id.clone(),
        correlation_id: CorrelationId::generate(),
        trace_parent: None,
        payload: EventPayload::ActivityCreated {
            title: activity.title.as_str().to_owned(),
            facts: activity.facts(),
            tags: activity.tags.to_strings(),
        },
    }
}

pub fn created_record(activity: &Activity) -> OutboxRecord {
    OutboxRecord::for_event(&created_event(activity), None)
}
