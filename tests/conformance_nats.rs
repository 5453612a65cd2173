//! The transport conformance suite on NATS JetStream: one stream with a subject per event type,
//! durable pull consumers filtered by the template's rules, explicit acks with ack wait = the
//! visibility timeout, delayed negative acks for retries, the delivery count leading to the
//! dead-letter stream, and `Nats-Msg-Id` = `event_id` de-duplication at publish. Every behaviour
//! runs on the shared server (127.0.0.1:4222, streams of its own per test) except the restart,
//! which stops and starts a `nats-server -js` of its own. A consumer that dies mid-batch drops
//! its connection with its task; the server delivers what it held again after the ack wait.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::memory::rules_from_template;
use activelog::adapters::nats::{
    NatsDeadLetters, NatsPublisher, NatsSubscriber, NatsSubscriberSettings, NatsTopology,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use activelog_tests::broker_process::BrokerProcess;
use activelog_tests::conformance::{Features, Subscription, Transport};
use activelog_tests::nats::{Namespace, private_server, shared_url};
use async_trait::async_trait;
use tokio::sync::Mutex;

/// Deliveries before a message that keeps failing is dead-lettered. Above the other transports'
/// 3: a pull request of a killed subscriber lives on at the server until it expires (one ack
/// wait), and a delivery to it counts.
const DELIVERY_LIMIT: u32 = 5;
/// The ack wait: short enough that redeliveries happen within a test, long enough that a
/// consumer on this loaded machine acknowledges in time.
const VISIBILITY: Duration = Duration::from_secs(2);

struct Nats {
    namespace: Namespace,
    topology: NatsTopology,
    publisher: Arc<NatsPublisher>,
    /// The server of this test's own, when it restarts one.
    server: Option<Mutex<BrokerProcess>>,
}

async fn on(url: &str, server: Option<BrokerProcess>) -> Nats {
    let namespace = Namespace::new(url);
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let topology =
        NatsTopology::from_rules(&namespace.name, &rules, DELIVERY_LIMIT, VISIBILITY).unwrap();
    let publisher = NatsPublisher::connect(namespace.url.clone(), topology.clone())
        .await
        .unwrap_or_else(|e| panic!("NATS JetStream at {url} (start the shared one with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server`): {e}"));
    Nats {
        namespace,
        topology,
        publisher: Arc::new(publisher),
        server: server.map(Mutex::new),
    }
}

async fn shared() -> Nats {
    on(&shared_url(), None).await
}

async fn own_server() -> Nats {
    let server = private_server();
    on(&format!("nats://127.0.0.1:{}", server.port), Some(server)).await
}

impl Nats {
    fn dead_letters_tool(&self) -> NatsDeadLetters {
        NatsDeadLetters::new(self.namespace.url.clone(), self.topology.clone())
    }
}

#[async_trait]
impl Transport for Nats {
    fn features(&self) -> Features {
        Features {
            name: "nats",
            poison_dead_lettered_at_once: true,
            restartable: self.server.is_some(),
            redelivery_after: VISIBILITY,
            publisher_deduplicates: true,
        }
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.publisher.clone()
    }

    async fn subscribe(&self, queue: &str, handler: Arc<dyn BatchHandler>) -> Subscription {
        let subscriber = NatsSubscriber::new(
            self.namespace.url.clone(),
            self.topology.clone(),
            queue,
            handler,
            NatsSubscriberSettings {
                retry_delay: Duration::from_millis(100),
                reconnect_max: Duration::from_secs(1),
                ..NatsSubscriberSettings::default()
            },
        )
        .expect("a queue of the topology");
        Subscription::spawn(|stop| subscriber.run(stop))
    }

    async fn dead_letters(&self, queue: &str) -> Vec<String> {
        let tool = self.dead_letters_tool();
        let queue = tool.queue(queue).expect("queue").clone();
        tool.peek(&queue, 100)
            .await
            .expect("peek")
            .into_iter()
            .map(|letter| letter.body)
            .collect()
    }

    async fn redrive(&self, queue: &str) -> usize {
        let tool = self.dead_letters_tool();
        let queue = tool.queue(queue).expect("queue").clone();
        tool.redrive(&queue).await.expect("redrive")
    }

    async fn send_raw(&self, queue: &str, body: &str) {
        let tool = self.dead_letters_tool();
        let queue = tool.queue(queue).expect("queue").clone();
        tool.send(&queue, body).await.expect("send");
    }

    async fn kill_consumer(
        &self,
        subscription: Subscription,
        queue: &str,
        handler: Arc<dyn BatchHandler>,
    ) -> Subscription {
        // The task dies with its connection and the batch it held. Its successor starts once
        // the dead one's pull requests have expired at the server (they live one ack wait).
        subscription.abort().await;
        tokio::time::sleep(VISIBILITY * 2).await;
        self.subscribe(queue, handler).await
    }

    async fn restart_broker(&self, down_for: Duration) {
        let server = self.server.as_ref().expect("a server of this test's own");
        server.lock().await.restart(down_for).await;
    }
}

activelog_tests::conformance_suite!(shared: shared(), restartable: own_server());

/// Only on the server of this test's own: it keeps its data on disk (the shared one may not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_survives_a_broker_restart() {
    activelog_tests::conformance::a_backlog_survives_a_broker_restart(&own_server().await).await;
}

/// The events stream never deletes an event by age (which would drop one a consumer had not
/// acknowledged, with no error); it is bounded by size and refuses a publish when full, so the
/// event stays in the outbox.
#[tokio::test]
async fn the_events_stream_refuses_publishes_when_full_and_never_expires_events() {
    let nats = shared().await;
    let client = async_nats::connect(shared_url()).await.unwrap();
    let context = async_nats::jetstream::new(client);
    let mut stream = context.get_stream(&nats.topology.stream).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::ZERO);
    assert_eq!(config.max_bytes, activelog::adapters::nats::MAX_BYTES);
    assert_eq!(
        config.discard,
        async_nats::jetstream::stream::DiscardPolicy::New
    );
}
