//! The domain: what an activity is, which values are valid, what happened to it (events) and what
//! the statistics are. Nothing here is async, talks to AWS or knows about HTTP; every type that can
//! hold a value can only hold a valid one (parse, don't validate).
//!
//! The modules are private: every type is re-exported here, so each has one import path
//! (`activelog::domain::ActivityTitle`, never `domain::fields::…`).

mod achievements;
mod activity;
mod events;
mod fields;
mod projection_version;
mod stats;
mod trace_parent;
mod validation;

pub use achievements::{Milestone, Progress};
pub use activity::{Activity, ActivityDraft, ActivityPatch, Change};
pub use events::{
    ACHIEVEMENT_SOURCE, ACTIVITY_SOURCE, AchievementUnlockedV1, ActivityCreatedV1,
    ActivityCreatedV2, ActivityDeletedV1, ActivityFacts, ActivityUpdatedV1, DomainEvent,
    EventDecodeError, EventEnvelope, EventId, EventPayload, EventType, InvalidEventId,
};
pub use fields::{
    ActivityDate, ActivityId, ActivityTitle, ActivityType, Calories, CorrelationId, Distance,
    DurationMinutes, FreeText, Tag, Tags, UserId, Version,
};
pub(crate) use fields::{parse_ulid, write_digits, write_iso_date};
pub use projection_version::{InvalidProjectionVersion, ProjectionVersion};
pub use stats::{
    PeriodKey, StatsChange, StatsCorrection, StatsDelta, Totals, UserStats, corrections,
    recompute_all,
};
pub use trace_parent::{InvalidTraceParent, TraceParent};
pub use validation::{FieldError, ValidationErrors};
