//! The Kafka half of the broker bench (`--url kafka://host:port`), against any Kafka-protocol
//! broker (tansu from `scripts/install-kafka-broker.sh` on loopback, for the figures in
//! docs/benchmarks.md). In the same run:
//!
//! - **raw rdkafka**: N records of the size activelog publishes, sent by an idempotent producer
//!   with `acks=all` (all in flight, then every acknowledgement awaited), then read back by a
//!   consumer group from the beginning with offsets committed every 100 records: what the client
//!   crate and the broker do with nothing of activelog around them;
//! - **end to end**: the shared `through` of main.rs over the Kafka publisher and subscribers, on
//!   a fresh namespace (topics and groups) per run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use activelog::adapters::kafka::{
    KafkaPublisher, KafkaSubscriber, KafkaTopology, KafkaUrl, SubscriberSettings,
};
use activelog::adapters::memory::rules_from_template;
use activelog::application::EventPublisher;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{Args, Failure, TEMPLATE, WRITERS, median, through};

/// (publish records/s, consume records/s) of the bare client.
async fn raw_rdkafka(url: &KafkaUrl, events: usize, body: &[u8]) -> Result<(f64, f64), Failure> {
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

/// Events per second through Kafka, end to end.
async fn end_to_end(url: &KafkaUrl, events: usize) -> Result<f64, Failure> {
    let rules = rules_from_template(TEMPLATE)?;
    let namespace = format!("bench.{}", ulid::Ulid::new());
    let topology = KafkaTopology::from_rules(&namespace, &rules, 5)?;
    let publisher: Arc<dyn EventPublisher> =
        Arc::new(KafkaPublisher::connect(url.clone(), topology.clone()).await?);
    let url = url.clone();
    let spawn = move |queue: &str, handler, stopped| -> Result<_, Failure> {
        let subscriber = KafkaSubscriber::new(
            url.clone(),
            topology.clone(),
            queue,
            handler,
            SubscriberSettings::default(),
        )?;
        Ok(tokio::spawn(subscriber.run(stopped)))
    };
    through(publisher, &spawn, events, Duration::from_secs(5)).await
}

pub async fn run(args: &Args) -> Result<(), Failure> {
    let url = KafkaUrl::parse(&args.url)?;
    let body = vec![b'x'; 700];
    let (mut publish, mut consume, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let (p, c) = raw_rdkafka(&url, args.events, &body).await?;
        let e = end_to_end(&url, args.events).await?;
        eprintln!(
            "run {run}: raw publish {p:.0}/s, raw consume {c:.0}/s, end to end {e:.0} events/s"
        );
        publish.push(p);
        consume.push(c);
        e2e.push(e);
    }
    println!(
        "| through Kafka (tansu) on loopback ({} events, median of {} runs) | per second |",
        args.events, args.runs
    );
    println!("|---|---:|");
    println!(
        "| raw rdkafka: produce, idempotent, acks=all, all in flight | {:.0} |",
        median(publish)
    );
    println!(
        "| raw rdkafka: consume in a group, commit every 100 | {:.0} |",
        median(consume)
    );
    println!(
        "| activelog end to end: create → publish (acks=all) → filtered group → stats applied, {WRITERS} writers | {:.0} |",
        median(e2e)
    );
    Ok(())
}
