//! The local stack on a broker, wired once for every broker: the use cases over the stores, the
//! broker's publisher behind them, one event source per consumer queue of the template's rules
//! feeding the same consumer its Lambda function runs, and the outbox relay on a timer. The
//! broker keeps what it confirmed, so stopping only has to relay what is left in the outbox.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementRecorder, EventPublisher, Outbox, OutboxRelay, StatsUpdater,
};
use activelog::consumer::{AchievementsConsumer, BatchHandler, StatsConsumer};
use activelog::functions::ConsumerFunction;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BrokerError, ConnectedBroker};
use crate::console::{Journal, RecordingBatchHandler, RecordingPublisher};
use crate::operator::Operator;
use crate::server::Services;
use crate::stores::Stores;

/// Records the HTTP path published moments ago are left to it for this long by the timed relay.
const RELAY_GRACE: time::Duration = time::Duration::seconds(5);

/// At shutdown, records left in the outbox are counted up to this many for the warning.
const LEFTOVERS_COUNTED: usize = 1000;

/// What the broker mode runs, besides the HTTP server.
pub struct BrokerStack {
    pub services: Services,
    pub operator: Arc<dyn Operator>,
    /// `stores+broker`, as the listening line names the adapters (`memory+rabbitmq`).
    pub adapters: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The relay run at shutdown: everything still in the outbox goes, with no grace period.
    final_relay: OutboxRelay,
    outbox: Arc<dyn Outbox>,
}

impl BrokerStack {
    /// Wires the stack and starts the event sources and the relay.
    pub fn start(
        stores: Stores,
        broker: Arc<dyn ConnectedBroker>,
        rules: &[RoutingRule],
        relay_interval: StdDuration,
        journal: &Arc<Journal>,
    ) -> Result<Self, BrokerError> {
        let stores = stores.recorded(journal);
        let publisher: Arc<dyn EventPublisher> = Arc::new(RecordingPublisher::new(
            broker.publisher(),
            journal.clone(),
            broker.name(),
        ));
        let services = stores.services(publisher.clone());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let queues: BTreeSet<&str> = rules.iter().map(|r| r.target_queue.as_str()).collect();
        for queue in queues {
            let handler = Arc::new(RecordingBatchHandler::new(
                consumer_for(&stores, &publisher, queue)?,
                journal.clone(),
                queue,
            ));
            tasks.push(broker.spawn_event_source(queue, handler, stopped.clone())?);
        }
        let relay = OutboxRelay::new(
            stores.outbox.clone(),
            publisher.clone(),
            Arc::new(SystemClock),
            RELAY_GRACE,
        );
        tasks.push(crate::pipeline::spawn_relay(relay, relay_interval, stopped));
        Ok(Self {
            services,
            operator: broker.operator(),
            adapters: format!("{}+{}", stores.name, broker.name()),
            stop,
            tasks,
            final_relay: OutboxRelay::new(
                stores.outbox.clone(),
                publisher,
                Arc::new(SystemClock),
                time::Duration::ZERO,
            ),
            outbox: stores.outbox,
        })
    }

    /// Publishes what is left in the outbox (the broker keeps everything else), then stops the
    /// event sources; each settles its batch in progress first.
    pub async fn stop(self) {
        if let Err(error) = self.final_relay.relay_pending().await {
            tracing::error!(%error, "outbox relay failed at shutdown");
        }
        let horizon = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
        match self.outbox.pending(horizon, LEFTOVERS_COUNTED).await {
            Ok(left) if !left.is_empty() => tracing::warn!(
                outbox = left.len(),
                "events left unpublished: the broker did not confirm them"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot read the outbox at shutdown"),
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The consumer a queue's Lambda function runs, over the stores.
fn consumer_for(
    stores: &Stores,
    publisher: &Arc<dyn EventPublisher>,
    queue: &str,
) -> Result<Arc<dyn BatchHandler>, BrokerError> {
    match ConsumerFunction::for_queue(queue) {
        Some(ConsumerFunction::UpdateStats) => Ok(Arc::new(StatsConsumer::new(StatsUpdater::new(
            stores.stats.clone(),
        )))),
        Some(ConsumerFunction::RecordAchievements) => Ok(Arc::new(AchievementsConsumer::new(
            AchievementRecorder::new(
                stores.achievements.clone(),
                stores.outbox.clone(),
                publisher.clone(),
                Arc::new(SystemClock),
                Arc::new(RandomIds),
            ),
        ))),
        None => Err(BrokerError::NoConsumer(queue.to_owned())),
    }
}
