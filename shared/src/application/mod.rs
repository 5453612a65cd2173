//! The application layer: use cases and the ports they need. A use case is plain async Rust over
//! trait objects, so it runs the same behind API Gateway, in the local stack and in tests.
//!
//! The modules are private and everything is re-exported here, so each item has one import path;
//! every port (the traits adapters implement) is in `ports.rs`.

mod achievements;
mod activities;
mod activity_queries;
mod errors;
mod outbox_relay;
mod pagination;
mod ports;
mod publishing;
mod request_context;
mod stats;
mod stats_updater;

pub use achievements::{AchievementQueries, AchievementRecorder, Counting, Recorded};
pub use activities::{ActivityService, CreateOutcome, IdempotentRequest};
pub use activity_queries::{ActivityQueries, ListRequest, ListedActivities};
pub use errors::UseCaseError;
pub use outbox_relay::{OutboxRelay, RelayReport};
pub use pagination::CursorCodec;
pub use ports::{
    AchievementStanding, AchievementStore, ActivityPage, ActivityStore, ApplyError, ApplyOutcome,
    Award, AwardOutcome, Clock, EventPublisher, FailedEntry, IdGenerator, IdempotencyKey,
    IdempotencyRecord, ListQuery, Outbox, OutboxRecord, PagePosition, PublishError, PublishReport,
    StatsStore, StoreError,
};
pub use request_context::RequestContext;
pub use stats::StatsQueries;
pub use stats_updater::{EventOutcome, StatsUpdater};
