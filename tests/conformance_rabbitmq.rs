//! The transport conformance suite on RabbitMQ (the real broker on 127.0.0.1:5672, a virtual
//! host per test): the publisher with confirms, the template's rules as a topic exchange and
//! quorum queues with delivery limits and dead-letter queues, and the subscriber. The broker is
//! cut off under the consumer and restarted mid-stream (`rabbitmqctl stop_app` / `start_app`).

// Test helpers as well as tests: a setup that fails is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use activelog::adapters::memory::rules_from_template;
use activelog::adapters::rabbitmq::{
    DeadLetters, RabbitMqPublisher, RabbitMqSubscriber, SubscriberSettings, Topology,
};
use activelog::application::EventPublisher;
use activelog::consumer::BatchHandler;
use activelog::domain::ActivityType;
use activelog_tests::activity_fixtures::{activity, created_record, user};
use activelog_tests::conformance::{
    App, Features, ListedDeadLetter, Subscription, Transport, new_user,
};
use activelog_tests::rabbitmq::{Vhost, rabbitmqctl, restart};
use async_trait::async_trait;
use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use time::macros::date;

/// Deliveries before a message that keeps failing is dead-lettered.
const DELIVERY_LIMIT: u32 = 3;

struct RabbitMq {
    vhost: Vhost,
    topology: Topology,
    publisher: Arc<RabbitMqPublisher>,
}

async fn rabbitmq() -> RabbitMq {
    let vhost = Vhost::new().await;
    let rules = rules_from_template(include_str!("../template.yaml")).unwrap();
    let topology = Topology::from_rules("activelog", &rules, DELIVERY_LIMIT).unwrap();
    let publisher = RabbitMqPublisher::connect(vhost.url.clone(), topology.clone())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)");
    RabbitMq {
        vhost,
        topology,
        publisher: Arc::new(publisher),
    }
}

impl RabbitMq {
    fn dead_letters_tool(&self) -> DeadLetters {
        DeadLetters::new(self.vhost.url.clone(), self.topology.clone())
    }
}

#[async_trait]
impl Transport for RabbitMq {
    fn features(&self) -> Features {
        Features {
            name: "rabbitmq",
            poison_dead_lettered_at_once: true,
            restartable: true,
            redelivery_after: Duration::ZERO,
            publisher_deduplicates: false,
        }
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        self.publisher.clone()
    }

    async fn subscribe(&self, queue: &str, handler: Arc<dyn BatchHandler>) -> Subscription {
        let subscriber = RabbitMqSubscriber::new(
            self.vhost.url.clone(),
            self.topology.clone(),
            queue,
            handler,
            SubscriberSettings {
                retry_delay: Duration::from_millis(100),
                reconnect_max: Duration::from_secs(1),
                ..SubscriberSettings::default()
            },
        )
        .expect("a queue of the topology");
        Subscription::spawn(|stop| subscriber.run(stop))
    }

    async fn dead_letters(&self, queue: &str) -> Vec<ListedDeadLetter> {
        let tool = self.dead_letters_tool();
        let queue = tool.queue(queue).expect("queue").clone();
        tool.peek(&queue, 100)
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
        let queue = tool.queue(queue).expect("queue").clone();
        tool.redrive(&queue).await.expect("redrive")
    }

    async fn redrive_one(&self, queue: &str, message_id: &str) -> bool {
        let tool = self.dead_letters_tool();
        let queue = tool.queue(queue).expect("queue").clone();
        tool.redrive_one(&queue, message_id)
            .await
            .expect("redrive one")
    }

    async fn send_raw(&self, queue: &str, body: &str) {
        let tool = self.dead_letters_tool();
        let queue = tool.queue(queue).expect("queue").clone();
        tool.send(&queue, body).await.expect("send");
    }

    async fn kill_consumer(
        &self,
        subscription: Subscription,
        _queue: &str,
        _handler: Arc<dyn BatchHandler>,
    ) -> Subscription {
        // The connection drops under the consumer; it reconnects by itself.
        self.vhost.drop_connections();
        subscription
    }

    async fn restart_broker(&self, down_for: Duration) {
        restart(down_for).await;
    }
}

activelog_tests::conformance_suite!(rabbitmq());

/// `mandatory`: an event a rule routes but no queue takes (its queues deleted by hand) is returned
/// by the broker and does not count as published: the record stays in the outbox, and the relay
/// publishes it once the topology is declared again. (Confirms alone would not notice: the
/// broker confirms a message it routed nowhere.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_queue_takes_stays_in_the_outbox_until_its_queues_are_back() {
    let broker = rabbitmq().await;
    let app = App::new(broker.publisher());
    for queue in &broker.topology.queues {
        rabbitmqctl(&["delete_queue", "-p", &broker.vhost.name, &queue.queue]);
    }
    app.create(&new_user()).await;
    assert_eq!(
        app.activity_store.outbox_records().len(),
        1,
        "returned as unroutable: kept for the relay"
    );

    let (connection, channel) = broker.vhost.url.channel().await.unwrap();
    broker
        .topology
        .declare(&broker.vhost.url, &channel)
        .await
        .unwrap();
    let _ = connection.close(200, "declared".into()).await;
    let report = app.relay.relay_pending().await.unwrap();
    assert_eq!(report.published, 1, "{report:?}");
    assert!(app.activity_store.outbox_records().is_empty());
    let depths = broker.dead_letters_tool().depths().await.unwrap();
    assert!(
        depths.iter().all(|(_, depth)| depth.visible == 1),
        "the relayed event reached every queue its rules name: {depths:?}"
    );
}

/// The transport's own trace header: a published event carries the W3C `traceparent` of the span
/// that wrote it as an AMQP header, read here as it sits in the queue (a tracing consumer, or any
/// AMQP tool, sees the same), while the X-Ray spelling stays EventBridge's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_carries_its_traceparent_in_an_amqp_header() {
    let broker = rabbitmq().await;
    let mut record = created_record(&activity(
        &user("alice"),
        ActivityType::Running,
        date!(2026 - 11 - 20),
        30,
    ));
    record.trace_header =
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into());
    let report = broker.publisher.publish(&[record]).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");

    let queue = broker.topology.queue("StatsQueue").unwrap();
    let (connection, channel) = broker.vhost.url.channel().await.unwrap();
    let message = channel
        .basic_get(
            queue.queue.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the event in the stats queue");
    let headers = message.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("traceparent"),
        Some(&AMQPValue::LongString(
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01".into()
        ))
    );
    assert_eq!(headers.inner().get("x-amzn-trace-id"), None);
    let _ = connection.close(200, "read".into()).await;
}

/// Redriving one dead letter reads the dead-letter queue up to it without consuming the rest:
/// the one named reaches the consumer's queue with its body and headers (its `traceparent`
/// among them), and the others stay in the dead-letter queue in their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dead_letter_is_redriven_with_its_headers_and_the_others_keep_their_order() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    use lapin::types::{FieldTable, ShortString};

    let broker = rabbitmq().await;
    let tool = broker.dead_letters_tool();
    let queue = tool.queue("StatsQueue").unwrap().clone();
    let traceparent = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
    let (connection, channel) = broker.vhost.url.channel().await.unwrap();
    for id in ["first", "second", "third"] {
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("traceparent"),
            AMQPValue::LongString(traceparent.into()),
        );
        channel
            .basic_publish(
                "".into(),
                queue.dead_letter_queue.as_str().into(),
                BasicPublishOptions::default(),
                format!("{{\"dead\": \"{id}\"}}").as_bytes(),
                BasicProperties::default()
                    .with_message_id(ShortString::from(id))
                    .with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    assert!(tool.redrive_one(&queue, "second").await.unwrap());
    assert!(!tool.redrive_one(&queue, "second").await.unwrap());
    let left: Vec<String> = tool
        .peek(&queue, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|letter| letter.message_id)
        .collect();
    assert_eq!(left, ["first", "third"], "the others, in their order");
    let redriven = channel
        .basic_get(
            queue.queue.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the redriven message in the consumer's queue");
    assert_eq!(redriven.delivery.data, b"{\"dead\": \"second\"}");
    assert_eq!(
        redriven
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("traceparent").cloned()),
        Some(AMQPValue::LongString(traceparent.into()))
    );
    let _ = connection.close(200, "read".into()).await;
}
