//! The event pipeline of the in-memory stack: one poller per queue, invoking the same consumer the
//! queue's Lambda function runs, and the outbox relay on a timer. At shutdown the pipeline drains:
//! the outbox is relayed with no grace period and the pollers keep going until no message waits
//! (or the drain timeout passes), so nothing accepted before the signal is left behind.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use activelog::adapters::memory::Poller;
use activelog::application::{AchievementRecorder, EventPublisher, OutboxRelay, StatsUpdater};
use activelog::consumer::{AchievementsConsumer, BatchHandler, StatsConsumer};
use activelog::functions::ConsumerFunction;
use activelog::startup::InMemoryStack;
use time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::console::{Journal, RecordingBatchHandler, RecordingPublisher, RecordingStatsStore};

/// Lambda's SQS event source hands a function at most this many messages (the template's BatchSize).
const BATCH_SIZE: usize = 10;

pub struct Pipeline {
    stack: Arc<InMemoryStack>,
    /// The bus behind the console's recorder: what the use cases and the relay publish through.
    pub publisher: Arc<dyn EventPublisher>,
    stop_pollers: watch::Sender<bool>,
    pollers: Vec<JoinHandle<()>>,
    relay: JoinHandle<()>,
    stop_relay: watch::Sender<bool>,
}

#[derive(Debug, thiserror::Error)]
#[error("queue `{0}` of template.yaml has no consumer in the local stack")]
pub struct UnknownQueue(String);

/// The outbox relay's grace period in memory: records the HTTP path published moments ago are
/// left to it for this long (the in-memory stack's own relay waits as long).
const RELAY_GRACE: Duration = Duration::seconds(5);

/// The consumer a queue's Lambda function runs, over the stack's stores, with the console's
/// recorders around its stats writes and around the consumer itself.
fn consumer_for(
    stack: &InMemoryStack,
    publisher: &Arc<dyn EventPublisher>,
    journal: &Arc<Journal>,
    queue: &str,
) -> Result<Arc<dyn BatchHandler>, UnknownQueue> {
    let consumer: Arc<dyn BatchHandler> = match ConsumerFunction::for_queue(queue) {
        Some(ConsumerFunction::UpdateStats) => {
            Arc::new(StatsConsumer::new(StatsUpdater::new(Arc::new(
                RecordingStatsStore::new(stack.stats_store.clone(), journal.clone()),
            ))))
        }
        Some(ConsumerFunction::RecordAchievements) => {
            Arc::new(AchievementsConsumer::new(AchievementRecorder::new(
                stack.achievement_store.clone(),
                stack.activity_store.clone(),
                publisher.clone(),
                stack.clock.clone(),
                stack.ids.clone(),
            )))
        }
        None => return Err(UnknownQueue(queue.to_owned())),
    };
    Ok(Arc::new(RecordingBatchHandler::new(
        consumer,
        journal.clone(),
        queue,
    )))
}

impl Pipeline {
    pub fn start(
        stack: Arc<InMemoryStack>,
        relay_interval: StdDuration,
        journal: &Arc<Journal>,
    ) -> Result<Self, UnknownQueue> {
        let publisher: Arc<dyn EventPublisher> = Arc::new(RecordingPublisher::new(
            stack.bus.clone(),
            journal.clone(),
            "memory",
        ));
        let (stop_pollers, stopped) = watch::channel(false);
        let mut pollers = Vec::new();
        for (name, queue) in &stack.queues {
            let handler = consumer_for(&stack, &publisher, journal, name)?;
            let poller = Poller::new(queue.clone(), handler, BATCH_SIZE);
            pollers.push(tokio::spawn(poller.run(stopped.clone())));
        }
        let (stop_relay, relay_stopped) = watch::channel(false);
        let relay = OutboxRelay::new(
            stack.activity_store.clone(),
            publisher.clone(),
            stack.clock.clone(),
            RELAY_GRACE,
        );
        let relay = spawn_relay(relay, relay_interval, relay_stopped);
        Ok(Self {
            stack,
            publisher,
            stop_pollers,
            pollers,
            relay,
            stop_relay,
        })
    }

    /// Publishes whatever is left in the outbox, waits until every queue is empty or `timeout`
    /// passes, then stops the pollers (each finishes its batch in progress).
    pub async fn drain(self, timeout: StdDuration) {
        let _ = self.stop_relay.send(true);
        let _ = self.relay.await;
        let final_relay = OutboxRelay::new(
            self.stack.activity_store.clone(),
            self.publisher.clone(),
            self.stack.clock.clone(),
            Duration::ZERO,
        );
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Err(error) = final_relay.relay_pending().await {
                tracing::error!(%error, "outbox relay failed during drain");
            }
            let outbox_empty = self.stack.activity_store.outbox_records().is_empty();
            // Messages in flight are either in a batch the pollers finish before stopping, or
            // failed and waiting out their visibility timeout: neither needs the drain to wait.
            let nothing_visible = self.stack.queues.values().all(|q| q.depth().visible == 0);
            if outbox_empty && nothing_visible {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    outbox = self.stack.activity_store.outbox_records().len(),
                    "drain timed out with work left"
                );
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        let _ = self.stop_pollers.send(true);
        for poller in self.pollers {
            let _ = poller.await;
        }
    }
}

/// Runs the outbox relay every `interval` until `stop` turns true, as its schedule does in AWS.
pub fn spawn_relay(
    relay: OutboxRelay,
    interval: StdDuration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = relay.relay_pending().await {
                        tracing::error!(%error, "outbox relay failed");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    })
}
