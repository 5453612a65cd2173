//! The whole system in memory, as the tests start it: a clock they move by hand and predictable
//! ids, so every test that needs a stack builds it the same way (here, once).

use std::sync::Arc;

use activelog::adapters::memory::{ManualClock, RoutingRule, SequentialIds};
use activelog::startup::{InMemoryStack, QueueOptions};

/// A stack with `rules` (none: a bus that routes nowhere), the template's queue settings, the
/// manual `clock` and sequential ids.
pub fn in_memory(rules: &[RoutingRule], clock: Arc<ManualClock>) -> InMemoryStack {
    in_memory_with(rules, &QueueOptions::default(), clock)
}

/// The same with other queue settings (visibility timeout, receives before dead-lettering).
pub fn in_memory_with(
    rules: &[RoutingRule],
    queue_options: &QueueOptions,
    clock: Arc<ManualClock>,
) -> InMemoryStack {
    InMemoryStack::new(
        rules,
        queue_options,
        clock,
        Arc::new(SequentialIds::default()),
    )
    .expect("the in-memory stack starts")
}
