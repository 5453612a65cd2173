//! In-memory twins of every port, and an in-memory event pipeline that behaves like the AWS one:
//! a bus that routes by EventBridge patterns, queues with visibility timeouts, receive counts and
//! dead-letter queues, and a poller that hands batches to consumers the way a Lambda event source
//! mapping does. The local stack and most tests run on these.
//!
//! Each adapter keeps a call log, so tests can count the writes an operation costs, and can be told
//! to fail, so tests can prove what happens when AWS does.

pub mod achievement_store;
pub mod activity_store;
pub mod clock;
pub mod event_bus;
pub mod poller;
pub mod queue;
pub mod routing;
pub mod stats_store;

pub use achievement_store::{AchievementStoreCall, MemoryAchievementStore};
pub use activity_store::{ActivityStoreCall, MemoryActivityStore};
pub use clock::{ManualClock, SequentialIds};
pub use event_bus::{BusRule, MemoryEventBus, eventbridge_event};
pub use poller::Poller;
pub use queue::{MemoryQueue, QueueDepth, QueueSettings, ReceivedMessage};
pub use routing::{RoutingRule, rules_from_template};
pub use stats_store::{MemoryStatsStore, StatsStoreCall};
