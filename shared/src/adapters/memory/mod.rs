//! In-memory twins of every port, and an in-memory event pipeline that behaves like the AWS one:
//! a bus that routes by EventBridge patterns, queues with visibility timeouts, receive counts and
//! dead-letter queues, and a poller that hands batches to consumers the way a Lambda event source
//! mapping does. The local stack and most tests run on these.
//!
//! Each adapter keeps a call log, so tests can count the writes an operation costs, and can be told
//! to fail, so tests can prove what happens when AWS does. The log keeps the first
//! [`CALL_LOG_LIMIT`] calls since it was last cleared and no more: the local stack runs on these
//! stores for as long as it is up, and an unbounded log grew its memory with every request (the
//! soak of `bench/load`, docs/reliability.md).

/// Calls a store's log keeps at most (a test counts far fewer; the local stack never reads it).
pub const CALL_LOG_LIMIT: usize = 10_000;

/// Appends `call` to a store's log unless the log is full.
fn log_call<T>(calls: &mut Vec<T>, call: T) {
    if calls.len() < CALL_LOG_LIMIT {
        calls.push(call);
    }
}

mod achievement_store;
mod activity_store;
mod clock_and_ids;
mod event_bus;
mod poller;
mod queue;
mod stats_store;
mod template_rules;

pub use achievement_store::{AchievementStoreCall, MemoryAchievementStore};
pub use activity_store::{ActivityStoreCall, MemoryActivityStore};
pub use clock_and_ids::{ManualClock, SequentialIds};
pub use event_bus::{
    ACCEPTED_EVENTS_KEPT, BusRule, MemoryEventBus, eventbridge_event, eventbridge_event_text,
};
pub use poller::Poller;
pub use queue::{MemoryQueue, QueueDepth, QueueSettings, ReceivedMessage};
pub use stats_store::{MemoryStatsStore, StatsStoreCall};
pub use template_rules::{
    ConsumerRoute, RoutingError, RoutingRule, TopologyError, consumer_routes, rules_from_template,
};
