//! The transport conformance suite on Redis Streams: a stream per consumer written at publish
//! time from the template's rules, consumer groups read with `XREADGROUP`, idle entries taken
//! over with `XAUTOCLAIM` after the visibility timeout, the delivery count leading to the
//! dead-letter stream. Every behaviour runs on the shared server (127.0.0.1:6379, a key prefix
//! per test) except the restart, which stops and starts a `redis-server` of its own with an
//! append-only file (`support/redis.rs` says what that proves and what the shared server, which
//! keeps nothing on disk, would lose). A consumer that dies mid-batch drops its connection with
//! its task; a new subscriber, under another consumer name, claims what it held.

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::memory::rules_from_template;
use activelog::adapters::redis_streams::{
    RedisStreamsPublisher, RedisStreamsSubscriber, StreamDeadLetters, StreamSubscriberSettings,
    StreamTopology,
};
use activelog::application::EventPublisher;
use activelog::consumer::{BatchHandler, RawMessage, Verdict};
use activelog_tests::broker_process::BrokerProcess;
use activelog_tests::conformance::{Features, ListedDeadLetter, Subscription, Transport};
use activelog_tests::redis::{Namespace, private_server, shared_url};
use async_trait::async_trait;
use tokio::sync::Mutex;

/// Deliveries before an entry that keeps failing is dead-lettered.
const DELIVERY_LIMIT: u32 = 3;
/// Short enough that redeliveries happen within a test.
const VISIBILITY: Duration = Duration::from_secs(1);

struct Redis {
    namespace: Namespace,
    topology: StreamTopology,
    publisher: Arc<RedisStreamsPublisher>,
    /// The server of this test's own, when it restarts one.
    server: Option<Mutex<BrokerProcess>>,
}

async fn on(url: &str, server: Option<BrokerProcess>) -> Redis {
    let namespace = Namespace::new(url);
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let topology = StreamTopology::from_rules(&namespace.name, &rules, DELIVERY_LIMIT).unwrap();
    let publisher = RedisStreamsPublisher::connect(namespace.url.clone(), topology.clone())
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} (start the shared one with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`): {e}"));
    Redis {
        namespace,
        topology,
        publisher: Arc::new(publisher),
        server: server.map(Mutex::new),
    }
}

async fn shared() -> Redis {
    on(&shared_url(), None).await
}

async fn own_server() -> Redis {
    let server = private_server();
    on(&format!("redis://127.0.0.1:{}", server.port), Some(server)).await
}

impl Redis {
    fn dead_letters_tool(&self) -> StreamDeadLetters {
        StreamDeadLetters::new(self.namespace.url.clone(), self.topology.clone())
    }
}

#[async_trait]
impl Transport for Redis {
    fn features(&self) -> Features {
        Features {
            name: "redis",
            poison_dead_lettered_at_once: true,
            restartable: self.server.is_some(),
            redelivery_after: VISIBILITY,
            publisher_deduplicates: false,
        }
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.publisher.clone()
    }

    async fn subscribe(&self, queue: &str, handler: Arc<dyn BatchHandler>) -> Subscription {
        let subscriber = RedisStreamsSubscriber::new(
            self.namespace.url.clone(),
            &self.topology,
            queue,
            handler,
            StreamSubscriberSettings {
                block: Duration::from_millis(200),
                visibility_timeout: VISIBILITY,
                reconnect_max: Duration::from_secs(1),
                ..StreamSubscriberSettings::default()
            },
        )
        .expect("a stream of the topology");
        Subscription::spawn(|stop| subscriber.run(stop))
    }

    async fn dead_letters(&self, queue: &str) -> Vec<ListedDeadLetter> {
        let tool = self.dead_letters_tool();
        let stream = tool.stream(queue).expect("stream").clone();
        tool.peek(&stream, 100)
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
        let tool = self.dead_letters_tool();
        let stream = tool.stream(queue).expect("stream").clone();
        tool.redrive(&stream).await.expect("redrive")
    }

    async fn redrive_one(&self, queue: &str, message_id: &str) -> bool {
        let tool = self.dead_letters_tool();
        let stream = tool.stream(queue).expect("stream").clone();
        tool.redrive_one(&stream, message_id)
            .await
            .expect("redrive one")
    }

    async fn send_raw(&self, queue: &str, body: &str) {
        let tool = self.dead_letters_tool();
        let stream = tool.stream(queue).expect("stream").clone();
        tool.send(&stream, body).await.expect("send");
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

/// Answers poison to a message without a readable body and applies the rest.
struct PoisonWithoutBody;

#[async_trait]
impl BatchHandler for PoisonWithoutBody {
    async fn handle_batch(&self, batch: &[RawMessage]) -> Vec<Verdict> {
        batch
            .iter()
            .map(|message| match message.body {
                Some(_) => Verdict::Applied,
                None => Verdict::Poison,
            })
            .collect()
    }
}

/// Writes an entry as another producer might: any bytes as its body, or none.
async fn add_entry(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    message_id: &str,
    body: Option<&[u8]>,
) {
    let mut add = redis::cmd("XADD");
    add.arg(stream).arg("*").arg("message_id").arg(message_id);
    if let Some(body) = body {
        add.arg("body").arg(body);
    }
    add.query_async::<()>(connection).await.unwrap();
}

/// A body that is not UTF-8 (another producer, `redis-cli`, a bug) is poison to the consumer,
/// and the dead-letter stream exists to keep exactly that message: it must arrive there byte for
/// byte and go back the same on redrive, not as an empty body with the original deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_utf8_is_dead_lettered_and_redriven_byte_for_byte() {
    let redis = shared().await;
    let tool = redis.dead_letters_tool();
    let stream = tool.stream("StatsQueue").expect("stream").clone();
    let body: &[u8] = b"\xff\xfe not utf-8 \x80";
    let mut connection = redis::Client::open(shared_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let reader = connection.clone();
    let read_bodies = move |key: String| {
        let mut connection = reader.clone();
        async move {
            let range: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(&mut connection)
                .await
                .unwrap();
            range
                .ids
                .iter()
                .map(|entry| entry.get::<Vec<u8>>("body"))
                .collect::<Vec<_>>()
        }
    };
    add_entry(&mut connection, &stream.stream, "not-utf8", Some(body)).await;
    let subscription = redis
        .subscribe("StatsQueue", Arc::new(PoisonWithoutBody))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = read_bodies(stream.dead_letter_stream.clone()).await;
        if !dead.is_empty() || tokio::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    subscription.stop().await;
    assert_eq!(dead, [Some(body.to_vec())]);
    assert_eq!(tool.redrive(&stream).await.unwrap(), 1);
    assert_eq!(
        read_bodies(stream.stream.clone()).await,
        [Some(body.to_vec())]
    );
}

/// `MULTI` does not roll back: a dead letter that cannot be written (here the dead-letter key
/// holds a string, `WRONGTYPE`) must leave its original in the stream, not acknowledge and
/// delete it with no dead letter anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_cannot_be_written_leaves_its_original_in_place() {
    let redis = shared().await;
    let tool = redis.dead_letters_tool();
    let stream = tool.stream("StatsQueue").expect("stream").clone();
    let mut connection = redis::Client::open(shared_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(&stream.dead_letter_stream)
        .arg("not a stream")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    // No body: the handler answers poison.
    add_entry(&mut connection, &stream.stream, "poison", None).await;
    let subscription = redis
        .subscribe("StatsQueue", Arc::new(PoisonWithoutBody))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    subscription.stop().await;
    let left: usize = redis::cmd("XLEN")
        .arg(&stream.stream)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(left, 1, "the original was deleted without a dead letter");
    // It was read (so the dead-lettering was tried) and stays pending, to come back.
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(&stream.stream)
        .arg(&stream.group)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pending.count(), 1);
}
