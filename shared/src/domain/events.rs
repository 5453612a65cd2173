//! Domain events and their versioned envelope: the contract between the writers and every consumer.
//!
//! Events travel as the `detail` of an EventBridge event. The envelope is the same for every event;
//! `data` depends on `event_type` and `event_version`. Writers emit the newest version of each
//! event; consumers read every version still in flight (events wait in queues, dead-letter queues
//! and the bus archive for days), which is why old payload types stay here. The JSON Schema of every
//! (type, version) is generated from these types into `docs/schemas/`.

use std::fmt;

#[cfg(test)]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ulid::Ulid;

use super::fields::{ActivityDate, ActivityType, CorrelationId, UserId};
use super::trace_parent::{self, TraceParent};

/// The EventBridge `source` of activity events.
pub const ACTIVITY_SOURCE: &str = "activelog.activities";
/// The EventBridge `source` of achievement events.
pub const ACHIEVEMENT_SOURCE: &str = "activelog.achievements";

/// An event's unique id; consumers deduplicate on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct EventId(Ulid);

impl EventId {
    pub fn from_ulid(ulid: Ulid) -> Self {
        Self(ulid)
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidEventId> {
        super::parse_ulid(raw).map(Self).ok_or(InvalidEventId)
    }
}

/// An event id that is not a canonical ULID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event_id must be a 26-character ULID")]
pub struct InvalidEventId;

impl TryFrom<String> for EventId {
    type Error = InvalidEventId;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The canonical text without a `String` (as `ActivityId`'s).
impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        super::fields::serialize_ulid(&self.0, serializer)
    }
}

/// Every kind of event activelog publishes. The string form is the EventBridge `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    ActivityCreated,
    ActivityUpdated,
    ActivityDeleted,
    AchievementUnlocked,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        Self::ActivityCreated,
        Self::ActivityUpdated,
        Self::ActivityDeleted,
        Self::AchievementUnlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActivityCreated => "activity.created",
            Self::ActivityUpdated => "activity.updated",
            Self::ActivityDeleted => "activity.deleted",
            Self::AchievementUnlocked => "achievement.unlocked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// The EventBridge `source` this event is published with.
    pub fn source(self) -> &'static str {
        match self {
            Self::AchievementUnlocked => ACHIEVEMENT_SOURCE,
            _ => ACTIVITY_SOURCE,
        }
    }

    /// The version writers emit today.
    pub fn current_version(self) -> u32 {
        match self {
            Self::ActivityCreated => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The values of an activity that statistics are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct ActivityFacts {
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    #[cfg_attr(test, schemars(range(min = 1, max = 1440)))]
    pub duration_minutes: u32,
    /// Distance in whole metres (exact sums); the HTTP API shows kilometres.
    #[cfg_attr(test, schemars(range(max = 1_000_000)))]
    pub distance_m: Option<u32>,
    #[cfg_attr(test, schemars(range(max = 20_000)))]
    pub calories_burned: Option<u32>,
    #[cfg_attr(test, schemars(with = "String", extend("format" = "date")))]
    pub activity_date: ActivityDate,
}

impl ActivityFacts {
    /// Re-checks decoded facts with the parsers the HTTP edge uses: an event is data from outside
    /// the process (a queue, a replay, a hand-made test event), and a duration of 10,000 minutes
    /// must not reach the statistics because it came in an event instead of a request.
    pub fn check(&self) -> Result<(), crate::domain::FieldError> {
        crate::domain::DurationMinutes::parse(self.duration_minutes)?;
        if let Some(metres) = self.distance_m {
            crate::domain::Distance::from_metres(metres)?;
        }
        if let Some(calories) = self.calories_burned {
            crate::domain::Calories::parse(calories)?;
        }
        Ok(())
    }
}

impl EventPayload {
    /// Every value of the payload through its domain parser (see [`ActivityFacts::check`]).
    fn check(&self) -> Result<(), crate::domain::FieldError> {
        match self {
            Self::ActivityCreated { title, facts, tags } => {
                crate::domain::ActivityTitle::parse(title)?;
                crate::domain::Tags::parse(tags.as_slice())?;
                facts.check()
            }
            Self::ActivityUpdated { before, after, .. } => {
                before.check()?;
                after.check()
            }
            Self::ActivityDeleted { deleted, .. } => deleted.check(),
            Self::AchievementUnlocked { achievement, .. } => {
                crate::domain::Milestone::parse(achievement)
                    .map(|_| ())
                    .ok_or_else(|| {
                        crate::domain::FieldError::new("achievement", "is not a known milestone")
                    })
            }
        }
    }
}

/// `activity.created` version 1: the first shape, without tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct ActivityCreatedV1 {
    pub title: String,
    #[serde(flatten)]
    pub facts: ActivityFacts,
}

/// `activity.created` version 2: version 1 plus the activity's tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct ActivityCreatedV2 {
    pub title: String,
    #[serde(flatten)]
    pub facts: ActivityFacts,
    pub tags: Vec<String>,
}

/// `activity.updated` version 1: the statistics-relevant values before and after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct ActivityUpdatedV1 {
    pub before: ActivityFacts,
    pub after: ActivityFacts,
    /// The activity's version after the change.
    pub version: u64,
}

/// `activity.deleted` version 1: the values of the activity that is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct ActivityDeletedV1 {
    pub deleted: ActivityFacts,
    /// The activity's version when it was deleted.
    pub version: u64,
}

/// `achievement.unlocked` version 1: a user reached a milestone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct AchievementUnlockedV1 {
    /// Stable id of the milestone, e.g. `first_activity`.
    pub achievement: String,
    /// What the user did to earn it, for people.
    pub description: String,
}

/// The envelope every event travels in, generic over its `data` for schema generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
pub struct EventEnvelope<D> {
    #[cfg_attr(test, schemars(with = "String"))]
    pub event_id: EventId,
    pub event_type: String,
    pub event_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(test, schemars(with = "String", extend("format" = "date-time")))]
    pub occurred_at: OffsetDateTime,
    /// The id of the activity (or, for achievements, the user) the event is about.
    pub aggregate_id: String,
    #[cfg_attr(test, schemars(with = "String"))]
    pub user_id: UserId,
    #[cfg_attr(test, schemars(with = "String"))]
    pub correlation_id: CorrelationId,
    /// The W3C `traceparent` of the span that wrote the event, so that a consumer's span joins
    /// (or links to) the trace of the request that caused it. Absent from events written before
    /// tracing, and ignored when it is not a valid `traceparent`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "trace_parent::lenient"
    )]
    #[cfg_attr(test, schemars(with = "Option<String>", extend("pattern" = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")))]
    pub traceparent: Option<TraceParent>,
    pub data: D,
}

/// What happened, in the shape consumers work with whatever version it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    ActivityCreated {
        title: String,
        facts: ActivityFacts,
        /// Empty when the event arrived as version 1.
        tags: Vec<String>,
    },
    ActivityUpdated {
        before: ActivityFacts,
        after: ActivityFacts,
        version: u64,
    },
    ActivityDeleted {
        deleted: ActivityFacts,
        version: u64,
    },
    AchievementUnlocked {
        achievement: String,
        description: String,
    },
}

impl EventPayload {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::ActivityCreated { .. } => EventType::ActivityCreated,
            Self::ActivityUpdated { .. } => EventType::ActivityUpdated,
            Self::ActivityDeleted { .. } => EventType::ActivityDeleted,
            Self::AchievementUnlocked { .. } => EventType::AchievementUnlocked,
        }
    }
}

/// A decoded domain event: envelope metadata plus its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    pub event_id: EventId,
    pub occurred_at: OffsetDateTime,
    pub aggregate_id: String,
    pub user_id: UserId,
    pub correlation_id: CorrelationId,
    /// Where the event was written in its trace, when the writer was traced.
    pub trace_parent: Option<TraceParent>,
    pub payload: EventPayload,
}

/// Why an event's JSON could not be read. Never retryable: the same bytes fail the same way.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventDecodeError {
    #[error("event is not a valid envelope: {0}")]
    Malformed(String),
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error("unsupported version {version} of `{event_type}`")]
    UnsupportedVersion { event_type: String, version: u32 },
    #[error("`data` of {event_type} v{version} is invalid: {reason}")]
    InvalidData {
        event_type: String,
        version: u32,
        reason: String,
    },
}

impl DomainEvent {
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The envelope as JSON, in the newest version of its type.
    pub fn to_json(&self) -> String {
        fn envelope<D: Serialize>(event: &DomainEvent, data: D) -> String {
            let event_type = event.event_type();
            let envelope = EventEnvelope {
                event_id: event.event_id,
                event_type: event_type.as_str().to_owned(),
                event_version: event_type.current_version(),
                occurred_at: event.occurred_at,
                aggregate_id: event.aggregate_id.clone(),
                user_id: event.user_id.clone(),
                correlation_id: event.correlation_id.clone(),
                traceparent: event.trace_parent,
                data,
            };
            // Serialising plain structs of strings and numbers into a String cannot fail.
            serde_json::to_string(&envelope).unwrap_or_default()
        }
        match &self.payload {
            EventPayload::ActivityCreated { title, facts, tags } => envelope(
                self,
                ActivityCreatedV2 {
                    title: title.clone(),
                    facts: *facts,
                    tags: tags.clone(),
                },
            ),
            EventPayload::ActivityUpdated {
                before,
                after,
                version,
            } => envelope(
                self,
                ActivityUpdatedV1 {
                    before: *before,
                    after: *after,
                    version: *version,
                },
            ),
            EventPayload::ActivityDeleted { deleted, version } => envelope(
                self,
                ActivityDeletedV1 {
                    deleted: *deleted,
                    version: *version,
                },
            ),
            EventPayload::AchievementUnlocked {
                achievement,
                description,
            } => envelope(
                self,
                AchievementUnlockedV1 {
                    achievement: achievement.clone(),
                    description: description.clone(),
                },
            ),
        }
    }

    /// Reads an envelope of any supported type and version.
    pub fn from_json(json: &str) -> Result<Self, EventDecodeError> {
        let raw: EventEnvelope<serde_json::Value> =
            serde_json::from_str(json).map_err(|e| EventDecodeError::Malformed(e.to_string()))?;
        Self::from_envelope(raw)
    }

    /// Reads an envelope already parsed as JSON (the `detail` of an EventBridge event).
    pub fn from_value(value: serde_json::Value) -> Result<Self, EventDecodeError> {
        let raw: EventEnvelope<serde_json::Value> = serde_json::from_value(value)
            .map_err(|e| EventDecodeError::Malformed(e.to_string()))?;
        Self::from_envelope(raw)
    }

    fn from_envelope(raw: EventEnvelope<serde_json::Value>) -> Result<Self, EventDecodeError> {
        let event_type = EventType::parse(&raw.event_type)
            .ok_or_else(|| EventDecodeError::UnknownEventType(raw.event_type.clone()))?;
        let version = raw.event_version;
        fn data<D: serde::de::DeserializeOwned>(
            raw: &EventEnvelope<serde_json::Value>,
        ) -> Result<D, EventDecodeError> {
            D::deserialize(&raw.data).map_err(|e| EventDecodeError::InvalidData {
                event_type: raw.event_type.clone(),
                version: raw.event_version,
                reason: e.to_string(),
            })
        }
        let payload = match (event_type, version) {
            (EventType::ActivityCreated, 1) => {
                let v1: ActivityCreatedV1 = data(&raw)?;
                EventPayload::ActivityCreated {
                    title: v1.title,
                    facts: v1.facts,
                    tags: Vec::new(),
                }
            }
            (EventType::ActivityCreated, 2) => {
                let v2: ActivityCreatedV2 = data(&raw)?;
                EventPayload::ActivityCreated {
                    title: v2.title,
                    facts: v2.facts,
                    tags: v2.tags,
                }
            }
            (EventType::ActivityUpdated, 1) => {
                let v1: ActivityUpdatedV1 = data(&raw)?;
                EventPayload::ActivityUpdated {
                    before: v1.before,
                    after: v1.after,
                    version: v1.version,
                }
            }
            (EventType::ActivityDeleted, 1) => {
                let v1: ActivityDeletedV1 = data(&raw)?;
                EventPayload::ActivityDeleted {
                    deleted: v1.deleted,
                    version: v1.version,
                }
            }
            (EventType::AchievementUnlocked, 1) => {
                let v1: AchievementUnlockedV1 = data(&raw)?;
                EventPayload::AchievementUnlocked {
                    achievement: v1.achievement,
                    description: v1.description,
                }
            }
            _ => {
                return Err(EventDecodeError::UnsupportedVersion {
                    event_type: raw.event_type,
                    version,
                });
            }
        };
        payload
            .check()
            .map_err(|error| EventDecodeError::InvalidData {
                event_type: raw.event_type.clone(),
                version,
                reason: format!("{}: {}", error.field, error.message),
            })?;
        Ok(Self {
            event_id: raw.event_id,
            occurred_at: raw.occurred_at,
            aggregate_id: raw.aggregate_id,
            user_id: raw.user_id,
            correlation_id: raw.correlation_id,
            trace_parent: raw.traceparent,
            payload,
        })
    }
}

/// The JSON Schema of every readable (type, version), named `<type>.v<version>.schema.json`: what
/// `docs/schemas/` holds, checked by `schemas_are_current`.
#[cfg(test)]
fn json_schemas() -> Vec<(String, serde_json::Value)> {
    fn schema<D: JsonSchema>(event_type: EventType, version: u32) -> (String, serde_json::Value) {
        let mut schema = schemars::schema_for!(EventEnvelope<D>);
        schema.insert(
            "title".into(),
            format!("{} v{}", event_type.as_str(), version).into(),
        );
        schema.insert(
            "description".into(),
            format!(
                "The `detail` of an EventBridge event with source `{}` and detail-type `{}`, \
                 envelope version {}.",
                event_type.source(),
                event_type.as_str(),
                version
            )
            .into(),
        );
        let file = format!("{}.v{}.schema.json", event_type.as_str(), version);
        (file, schema.to_value())
    }
    vec![
        schema::<ActivityCreatedV1>(EventType::ActivityCreated, 1),
        schema::<ActivityCreatedV2>(EventType::ActivityCreated, 2),
        schema::<ActivityUpdatedV1>(EventType::ActivityUpdated, 1),
        schema::<ActivityDeletedV1>(EventType::ActivityDeleted, 1),
        schema::<AchievementUnlockedV1>(EventType::AchievementUnlocked, 1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn facts() -> ActivityFacts {
        ActivityFacts {
            activity_type: ActivityType::Cycling,
            duration_minutes: 60,
            distance_m: Some(25_500),
            calories_burned: None,
            activity_date: ActivityDate::from_date(date!(2026 - 11 - 23)),
        }
    }

    fn event(payload: EventPayload) -> DomainEvent {
        DomainEvent {
            event_id: EventId::from_ulid(Ulid::from_parts(1, 2)),
            occurred_at: datetime!(2026-11-23 10:00 UTC),
            aggregate_id: "01JDQ7Z8R0A4X6T3V9N2B5C7D1".into(),
            user_id: UserId::parse("alice").unwrap(),
            correlation_id: CorrelationId::parse("req-1").unwrap(),
            trace_parent: None,
            payload,
        }
    }

    #[test]
    fn every_payload_round_trips_through_its_newest_version() {
        let payloads = [
            EventPayload::ActivityCreated {
                title: "Ride".into(),
                facts: facts(),
                tags: vec!["commute".into()],
            },
            EventPayload::ActivityUpdated {
                before: facts(),
                after: ActivityFacts {
                    duration_minutes: 90,
                    ..facts()
                },
                version: 2,
            },
            EventPayload::ActivityDeleted {
                deleted: facts(),
                version: 3,
            },
            EventPayload::AchievementUnlocked {
                achievement: "first_activity".into(),
                description: "Recorded a first activity".into(),
            },
        ];
        for payload in payloads {
            let original = event(payload);
            let json = original.to_json();
            assert_eq!(DomainEvent::from_json(&json).unwrap(), original, "{json}");
        }
    }

    /// The trace position rides in the envelope; an event without one (written before tracing)
    /// or with an unreadable one is still read, without a position.
    #[test]
    fn the_traceparent_is_carried_and_never_required() {
        let mut traced = event(EventPayload::ActivityDeleted {
            deleted: facts(),
            version: 1,
        });
        traced.trace_parent = Some(
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap(),
        );
        let json = traced.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(DomainEvent::from_json(&json).unwrap(), traced);

        let mut untraced = traced.clone();
        untraced.trace_parent = None;
        let json = untraced.to_json();
        assert!(!json.contains("traceparent"), "{json}");
        assert_eq!(DomainEvent::from_json(&json).unwrap(), untraced);

        for unreadable in [
            serde_json::json!("not-a-traceparent"),
            serde_json::json!(42),
            serde_json::Value::Null,
        ] {
            let mut value = value.clone();
            value["traceparent"] = unreadable;
            assert_eq!(DomainEvent::from_value(value).unwrap().trace_parent, None);
        }
    }

    #[test]
    fn created_v1_is_read_without_tags() {
        let json = serde_json::json!({
            "event_id": "01JDQ7Z8R0A4X6T3V9N2B5C7D1",
            "event_type": "activity.created",
            "event_version": 1,
            "occurred_at": "2026-11-23T10:00:00Z",
            "aggregate_id": "01JDQ7Z8R0A4X6T3V9N2B5C7D2",
            "user_id": "bob",
            "correlation_id": "c-1",
            "data": {"title": "Swim", "type": "swimming", "duration_minutes": 40,
                     "distance_m": 1500, "calories_burned": 350, "activity_date": "2026-11-22"}
        });
        let event = DomainEvent::from_value(json).unwrap();
        match event.payload {
            EventPayload::ActivityCreated { tags, facts, .. } => {
                assert!(tags.is_empty());
                assert_eq!(facts.distance_m, Some(1500));
            }
            other => panic!("unexpected payload {other:?}"),
        }
    }

    #[test]
    fn unknown_types_and_versions_are_named() {
        let base = event(EventPayload::ActivityDeleted {
            deleted: facts(),
            version: 1,
        })
        .to_json();
        let mut value: serde_json::Value = serde_json::from_str(&base).unwrap();
        value["event_version"] = 9.into();
        assert_eq!(
            DomainEvent::from_value(value.clone()).unwrap_err(),
            EventDecodeError::UnsupportedVersion {
                event_type: "activity.deleted".into(),
                version: 9
            }
        );
        value["event_type"] = "activity.exploded".into();
        assert_eq!(
            DomainEvent::from_value(value).unwrap_err(),
            EventDecodeError::UnknownEventType("activity.exploded".into())
        );
        assert!(matches!(
            DomainEvent::from_json("{not json").unwrap_err(),
            EventDecodeError::Malformed(_)
        ));
    }

    /// Decoding re-validates with the domain parsers: values the API could never have accepted
    /// are refused as invalid data (poison for a consumer), not added to statistics.
    #[test]
    fn out_of_range_facts_are_invalid_data() {
        let valid = event(EventPayload::ActivityUpdated {
            before: facts(),
            after: facts(),
            version: 2,
        })
        .to_json();
        let value: serde_json::Value = serde_json::from_str(&valid).unwrap();
        assert!(DomainEvent::from_value(value.clone()).is_ok());
        for (path, bad) in [
            ("/data/after/duration_minutes", serde_json::json!(10_000)),
            ("/data/after/duration_minutes", serde_json::json!(0)),
            ("/data/before/distance_m", serde_json::json!(1_000_001)),
            ("/data/before/calories_burned", serde_json::json!(20_001)),
        ] {
            let mut changed = value.clone();
            *changed.pointer_mut(path).unwrap() = bad.clone();
            assert!(
                matches!(
                    DomainEvent::from_value(changed),
                    Err(EventDecodeError::InvalidData { .. })
                ),
                "{path} = {bad} must be refused"
            );
        }
        let created = event(EventPayload::ActivityCreated {
            title: "Ride".into(),
            facts: facts(),
            tags: vec!["commute".into()],
        })
        .to_json();
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        for (path, bad) in [
            ("/data/title", serde_json::json!("   ")),
            ("/data/tags", serde_json::Value::from(vec!["x"; 11])),
        ] {
            let mut changed = created.clone();
            *changed.pointer_mut(path).unwrap() = bad.clone();
            assert!(
                matches!(
                    DomainEvent::from_value(changed),
                    Err(EventDecodeError::InvalidData { .. })
                ),
                "{path} = {bad} must be refused"
            );
        }
    }

    /// The checked-in schemas are what the types generate. Regenerate them with
    /// `UPDATE_SCHEMAS=1 cargo test -p activelog schemas_are_current`.
    #[test]
    fn schemas_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        for (file, schema) in json_schemas() {
            let path = dir.join(&file);
            let generated = format!("{}\n", serde_json::to_string_pretty(&schema).unwrap());
            if update {
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                checked_in == generated,
                "docs/schemas/{file} is out of date: run UPDATE_SCHEMAS=1 cargo test -p activelog schemas_are_current"
            );
        }
    }
}
