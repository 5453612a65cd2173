//! The Kafka part of the broker bench (`--transports kafka --kafka-url kafka://host:port`), against any Kafka-protocol
//! broker (tansu from `scripts/install-kafka-broker.sh` on loopback, for the figures in
//! docs/benchmarks.md). In the same run:
//!
//! - **raw rdkafka**: N records of the size activelog publishes, sent by an idempotent producer
//!   with `acks=all` (all in flight, then every acknowledgement awaited), then read back by a
//!   consumer group from the beginning with offsets committed every 100 records: what the client
//!   crate and the broker do with nothing of activelog around them;
//! - **end to end**: main.rs's `end_to_end` over the Kafka publisher and subscribers, on a fresh
//!   namespace (topics and groups) per run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use activelog::adapters::kafka::{
    KafkaPublisher, KafkaSubscriber, KafkaTopology, KafkaUrl, SubscriberSettings,
};
use activelog::adapters::memory::RoutingRule;
use activelog::application::EventPublisher;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{Failure, Wiring};

/// (publish records/s, consume records/s) of the bare client.
pub async fn raw(url: &str, events: usize, body: &[u8]) -> Result<(f64, f64), Failure> {
    let url = KafkaUrl::parse(url)?;
    let topic = format!("bench.raw.{}", ulid::Ulid::new());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", url.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", url.bootstrap_servers())
        .create()?;
    for created in admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        created.map_err(|(topic, code)| format!("creating {topic}: {code}"))?;
    }
    // One send first to warm the connection and the producer id.
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload(body),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    let keys: Vec<String> = (0..events).map(|i| format!("user{}", i % 64)).collect();
    let started = Instant::now();
    let sends = keys.iter().map(|key| {
        producer.send(
            FutureRecord::to(&topic).key(key).payload(body),
            Duration::from_secs(10),
        )
    });
    for delivered in futures_util::future::join_all(sends).await {
        delivered.map_err(|(e, _)| e)?;
    }
    let publish = events as f64 / started.elapsed().as_secs_f64();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", url.bootstrap_servers())
        .set("group.id", format!("{topic}.reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    // Wait for the group to form before timing the reads.
    let first = consumer.recv().await?;
    let _ = first.offset();
    let started = Instant::now();
    for read in 1..events {
        let message = consumer.recv().await?;
        if read % 100 == 0 {
            consumer.commit_message(&message, CommitMode::Async)?;
        }
    }
    let consume = (events - 1) as f64 / started.elapsed().as_secs_f64();
    Ok((publish, consume))
}

/// activelog's Kafka publisher and one consumer-group subscriber per consumer queue, on a fresh
/// namespace (topics and groups) per run.
pub async fn wiring(url: &str, rules: &[RoutingRule]) -> Result<Wiring, Failure> {
    let url = KafkaUrl::parse(url)?;
    let namespace = format!("bench.{}", ulid::Ulid::new());
    let topology = KafkaTopology::from_rules(&namespace, rules, 5)?;
    let publisher: Arc<dyn EventPublisher> =
        Arc::new(KafkaPublisher::connect(url.clone(), topology.clone()).await?);
    Ok(Wiring {
        publisher,
        subscribe: Box::new(move |queue, handler, stopped| {
            let subscriber = KafkaSubscriber::new(
                url.clone(),
                topology.clone(),
                queue,
                handler,
                SubscriberSettings::default(),
            )?;
            Ok(tokio::spawn(subscriber.run(stopped)))
        }),
        // A consumer group takes seconds to form and be assigned its partitions.
        warm_up: Duration::from_secs(5),
    })
}
