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
mod rebuild;
mod rebuild_run;
mod replay;
mod request_context;
mod retry;
mod stats;
mod stats_updater;

pub use achievements::{AchievementQueries, AchievementRecorder, Counting, Recorded};
pub use activities::{ActivityService, CreateOutcome, IdempotentRequest};
pub use activity_queries::{ActivityQueries, ListRequest, ListedActivities};
pub use errors::UseCaseError;
pub use outbox_relay::{OutboxRelay, RelayError, RelayReport};
pub use pagination::{CursorCodec, CursorKey, CursorKeys, KeyRingError, MIN_KEY_BYTES};
pub use ports::{
    AchievementProjectionStore, AchievementStanding, AchievementStore, ActivityPage,
    ActivitySource, ActivityStore, ApplyError, ApplyOutcome, Award, AwardOutcome, Clock,
    CorrectionOutcome, EventArchive, EventPublisher, FailedEntry, IdGenerator, IdempotencyKey,
    IdempotencyRecord, LIST_READ_BUDGET, ListQuery, Outbox, OutboxRecord, PagePosition,
    ProgressProjection, PublishError, PublishReport, ReplayError, ReplayProgress, ReplayRequest,
    ReplayState, ScanPosition, StatsProjection, StatsProjectionStore, StatsStore, StoreError,
    UserPage,
};
pub use publishing::PUBLISH_BUDGET;
pub use rebuild::{
    AchievementsRebuild, PageReport, PeriodDifference, ProjectionRebuild, RebuildSettings,
    StatsRebuild, UserRebuild,
};
pub use rebuild_run::{
    Checkpoint, RebuildRunner, RunError, RunObserver, RunSettings, RunSummary, SegmentState,
};
pub use replay::ArchiveReplay;
pub use request_context::RequestContext;
pub use retry::{CONFLICT_RETRIES, jittered_delay, retry_conflicts};
pub use stats::StatsQueries;
pub use stats_updater::{EventOutcome, StatsUpdater};
