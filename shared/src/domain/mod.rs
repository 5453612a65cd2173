//! The domain: what an activity is, which values are valid, what happened to it (events) and what
//! the statistics are. Nothing here is async, talks to AWS or knows about HTTP; every type that can
//! hold a value can only hold a valid one (parse, don't validate).

pub mod achievements;
pub mod activity;
pub mod events;
pub mod fields;
pub mod stats;
pub mod validation;

pub use achievements::{Milestone, Progress};
pub use activity::{Activity, ActivityDraft, ActivityPatch, Change};
pub use events::{
    ActivityFacts, DomainEvent, EventDecodeError, EventEnvelope, EventId, EventPayload, EventType,
};
pub use fields::{
    ActivityDate, ActivityId, ActivityTitle, ActivityType, Calories, CorrelationId, Distance,
    DurationMinutes, FreeText, Tag, Tags, UserId, Version,
};
pub use stats::{PeriodKey, StatsChange, StatsDelta, Totals, UserStats};
pub use validation::{FieldError, ValidationErrors};
