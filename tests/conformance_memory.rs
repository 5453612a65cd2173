//! The transport conformance suite on the in-memory transport: the bus routing with the
//! template's rules into queues with visibility timeouts and dead-letter queues, drained by the
//! in-memory poller (what `cargo run` uses by default).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::memory::{MemoryEventBus, MemoryQueue, Poller, rules_from_template};
use activelog::adapters::system::SystemClock;
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use activelog::startup::{QueueOptions, RoutedQueues};
use activelog_tests::conformance::{Features, ListedDeadLetter, Subscription, Transport};
use async_trait::async_trait;

/// Short enough that redeliveries happen within a test.
const VISIBILITY: time::Duration = time::Duration::seconds(1);
const MAX_RECEIVES: u32 = 3;

struct Memory {
    bus: Arc<MemoryEventBus>,
    queues: BTreeMap<String, Arc<MemoryQueue>>,
}

async fn memory() -> Memory {
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let options = QueueOptions {
        visibility_timeout: VISIBILITY,
        max_receive_count: MAX_RECEIVES,
    };
    let RoutedQueues { bus, queues } =
        RoutedQueues::new(&rules, &options, Arc::new(SystemClock)).unwrap();
    Memory { bus, queues }
}

impl Memory {
    fn queue(&self, name: &str) -> &Arc<MemoryQueue> {
        self.queues
            .get(name)
            .unwrap_or_else(|| panic!("no queue {name}"))
    }
}

#[async_trait]
impl Transport for Memory {
    fn features(&self) -> Features {
        Features {
            name: "memory",
            poison_dead_lettered_at_once: false,
            restartable: false,
            redelivery_after: Duration::from_secs(1),
            publisher_deduplicates: false,
        }
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.bus.clone()
    }

    async fn subscribe(&self, queue: &str, handler: Arc<dyn BatchHandler>) -> Subscription {
        let poller = Poller::new(self.queue(queue).clone(), handler, 10);
        Subscription::spawn(|stop| poller.run(stop))
    }

    async fn dead_letters(&self, queue: &str) -> Vec<ListedDeadLetter> {
        self.queue(queue)
            .dead_letter_queue()
            .map(|dlq| dlq.peek_all())
            .unwrap_or_default()
            .into_iter()
            .map(|(message_id, body, _)| ListedDeadLetter { message_id, body })
            .collect()
    }

    async fn redrive(&self, queue: &str) -> usize {
        self.queue(queue).redrive_dead_letters()
    }

    async fn redrive_one(&self, queue: &str, message_id: &str) -> bool {
        self.queue(queue).redrive_dead_letter(message_id)
    }

    async fn send_raw(&self, queue: &str, body: &str) {
        self.queue(queue).send(body);
    }
}

activelog_tests::conformance_suite!(without_restart: memory());
