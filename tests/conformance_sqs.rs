//! The transport conformance suite on EventBridge + SQS, against moto on loopback: the
//! EventBridge publisher, the template's rules as real rules targeting real queues with redrive
//! policies, and the SQS poller. (moto keeps everything in memory, so the suite restarts no
//! server here.)

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::eventbridge::EventBridgePublisher;
use activelog::adapters::memory::rules_from_template;
use activelog::adapters::sqs::{DeadLetterQueue, RedriveOutcome, SqsPoller};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use activelog_tests::conformance::{Features, ListedDeadLetter, Subscription, Transport};
use activelog_tests::moto::{Clients, unique};
use async_trait::async_trait;

const VISIBILITY_SECONDS: u32 = 1;
const MAX_RECEIVES: u32 = 3;

struct Sqs {
    clients: Clients,
    bus: String,
    /// (queue url, dead-letter queue url) by logical id.
    queues: BTreeMap<String, (String, String)>,
}

async fn sqs() -> Sqs {
    let clients = Clients::new();
    let bus = unique("bus");
    let mut queues = BTreeMap::new();
    let mut rules = Vec::new();
    for rule in rules_from_template(include_str!("../template.yaml")).unwrap() {
        let (queue, dlq) = clients
            .create_queue_with_dlq(
                &unique(&rule.target_queue),
                VISIBILITY_SECONDS,
                MAX_RECEIVES,
            )
            .await;
        let arn = clients.queue_arn(&queue).await;
        queues.insert(rule.target_queue.clone(), (queue, dlq));
        rules.push((unique(&rule.name), rule.event_pattern, arn));
    }
    clients.create_bus(&bus, &rules).await;
    Sqs {
        clients,
        bus,
        queues,
    }
}

impl Sqs {
    fn urls(&self, queue: &str) -> &(String, String) {
        self.queues
            .get(queue)
            .unwrap_or_else(|| panic!("no queue {queue}"))
    }
}

#[async_trait]
impl Transport for Sqs {
    fn features(&self) -> Features {
        Features {
            name: "sqs",
            poison_dead_lettered_at_once: false,
            restartable: false,
            redelivery_after: Duration::from_secs(u64::from(VISIBILITY_SECONDS)),
            publisher_deduplicates: false,
        }
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        Arc::new(EventBridgePublisher::new(
            self.clients.eventbridge.clone(),
            &self.bus,
        ))
    }

    async fn subscribe(&self, queue: &str, handler: Arc<dyn BatchHandler>) -> Subscription {
        let poller = SqsPoller::connect(self.clients.sqs.clone(), &self.urls(queue).0, handler)
            .await
            .expect("poller")
            .with_wait_time(Duration::from_secs(1));
        Subscription::spawn(|stop| poller.run(stop))
    }

    async fn dead_letters(&self, queue: &str) -> Vec<ListedDeadLetter> {
        DeadLetterQueue::new(self.clients.sqs.clone(), &self.urls(queue).1)
            .peek(10)
            .await
            .expect("peek")
            .into_iter()
            .map(|letter| ListedDeadLetter {
                message_id: letter.message_id,
                body: letter.body,
            })
            .collect()
    }

    async fn redrive(&self, queue: &str) -> usize {
        let (url, dlq) = self.urls(queue);
        match DeadLetterQueue::new(self.clients.sqs.clone(), dlq)
            .redrive(url)
            .await
            .expect("redrive")
        {
            RedriveOutcome::Moved { count } => count,
            other => panic!("moto moves messages itself, got {other:?}"),
        }
    }

    async fn redrive_one(&self, queue: &str, message_id: &str) -> bool {
        let (url, dlq) = self.urls(queue);
        DeadLetterQueue::new(self.clients.sqs.clone(), dlq)
            .redrive_one(url, message_id)
            .await
            .expect("redrive one")
    }

    async fn send_raw(&self, queue: &str, body: &str) {
        self.clients
            .sqs
            .send_message()
            .queue_url(&self.urls(queue).0)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
}

activelog_tests::conformance_suite!(without_restart: sqs());
