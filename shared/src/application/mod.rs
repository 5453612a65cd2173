//! The application layer: use cases and the ports they need. A use case is plain async Rust over
//! trait objects, so it runs the same behind API Gateway, in the local stack and in tests.

pub mod achievement_store;
pub mod achievements;
pub mod activities;
pub mod activity_queries;
pub mod errors;
pub mod outbox_relay;
pub mod pagination;
pub mod ports;
mod publishing;
pub mod stats;
pub mod stats_updater;

pub use achievement_store::{AchievementStanding, AchievementStore, Award, AwardOutcome};
pub use achievements::{
    ACHIEVEMENTS_CONSUMER, AchievementQueries, AchievementRecorder, Counting, Recorded,
};
pub use activities::{ActivityService, CreateOutcome, IdempotentRequest, RequestContext};
pub use activity_queries::{ActivityQueries, ListRequest, ListedActivities};
pub use errors::ActivityError;
pub use outbox_relay::{OutboxRelay, RelayReport};
pub use pagination::CursorCodec;
pub use ports::{
    ActivityPage, ActivityStore, ApplyError, ApplyOutcome, Clock, EventPublisher, FailedEntry,
    IdGenerator, IdempotencyKey, IdempotencyRecord, LIST_READ_BUDGET, ListQuery, Outbox,
    OutboxRecord, PagePosition, PublishError, PublishReport, StatsStore, StoreError,
};
pub use stats::StatsQueries;
pub use stats_updater::{EventOutcome, STATS_CONSUMER, StatsUpdater};
