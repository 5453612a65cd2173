//! `cargo run --release -p broker-bench -- [--transports memory,sqs,rabbitmq,redis,nats,kafka]
//! [--events N] [--runs R] [--url amqp://...] [--redis-url redis://...] [--nats-url nats://...]
//! [--kafka-url kafka://...]`: through each transport on loopback, in the same run (Kafka only
//! when asked for: it needs a broker started first, see `kafka.rs`),
//!
//! - **raw**: what the transport does with nothing of activelog around it, with a 700-byte body
//!   (the size of one `activity.created`): N messages sent, then received and settled —
//!   for RabbitMQ (lapin) persistent messages published with confirms into a quorum queue (all
//!   published, then every confirm awaited) and consumed with prefetch 20 and one ack each; for
//!   SQS (on moto) `SendMessageBatch` of 10, then `ReceiveMessage` of 10 and
//!   `DeleteMessageBatch`; in memory `send`, then `receive` of 10 and `delete`; for Redis
//!   Streams (redis-rs) `XADD` in pipelines of 100, then `XREADGROUP COUNT 20` with one `XACK`
//!   per read; for NATS (async-nats) JetStream publishes to a file-stored stream, every
//!   acknowledgement awaited, then a pull consumer 20 at a time with one ack each; for Kafka
//!   (rdkafka) an idempotent producer with `acks=all`, then a consumer group committing every 100
//!   (each broker's module says exactly how);
//! - **end to end**: N activities created through the use case by 8 concurrent writers (each
//!   create is an outbox write and a publish the request waits for), routed by the template's
//!   rules to both consumers, applied by the stats consumer: from the first create until the
//!   stats count N. The publisher is the transport's own (the in-memory bus, EventBridge on moto,
//!   the confirming RabbitMQ publisher, ...) and so is the event source (the in-memory poller, the
//!   SQS long-poller, the broker's subscriber); stores are in memory for all of them.
//!
//! Each figure is the median of R runs; every run uses its own queues. The SQS figures start
//! moto (`.venv/bin/moto_server`, or `MOTO_ENDPOINT`) as the tests do.

mod kafka;
mod nats;
mod redis_streams;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use activelog::adapters::eventbridge::EventBridgePublisher;
use activelog::adapters::memory::{
    MemoryAchievementStore, MemoryActivityStore, MemoryQueue, MemoryStatsStore, Poller,
    QueueSettings, RoutingRule, rules_from_template,
};
use activelog::adapters::rabbitmq::{
    BrokerUrl, RabbitMqPublisher, RabbitMqSubscriber, SubscriberSettings, Topology,
};
use activelog::adapters::sqs::SqsPoller;
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementRecorder, ActivityService, EventPublisher, RequestContext, StatsUpdater,
};
use activelog::consumer::{AchievementsConsumer, BatchHandler, StatsConsumer};
use activelog::domain::{
    ActivityDate, ActivityDraft, ActivityTitle, ActivityType, CorrelationId, DurationMinutes,
    PeriodKey, Tags, UserId,
};
use activelog::startup::{QueueOptions, RoutedQueues};
use activelog_tests::moto::{Clients, unique};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TEMPLATE: &str = include_str!("../../../template.yaml");
const WRITERS: usize = 8;

struct Args {
    url: String,
    redis_url: String,
    nats_url: String,
    kafka_url: String,
    events: usize,
    runs: usize,
    transports: Vec<String>,
}

fn args() -> Args {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        redis_url: "redis://127.0.0.1:6379".into(),
        nats_url: "nats://127.0.0.1:4222".into(),
        kafka_url: "kafka://127.0.0.1:9092".into(),
        events: 2000,
        runs: 5,
        transports: ["memory", "sqs", "rabbitmq", "redis", "nats"]
            .map(String::from)
            .to_vec(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => args.url = value,
            "--redis-url" => args.redis_url = value,
            "--nats-url" => args.nats_url = value,
            "--kafka-url" => args.kafka_url = value,
            "--events" => args.events = value.parse().unwrap_or(args.events),
            "--runs" => args.runs = value.parse().unwrap_or(args.runs),
            "--transports" => args.transports = value.split(',').map(str::to_owned).collect(),
            other => eprintln!("ignored argument {other}"),
        }
    }
    args
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

type Failure = Box<dyn std::error::Error>;

/// Starts one event source for a consumer queue of the template, feeding the handler until the
/// receiver turns true.
type Subscribe = Box<
    dyn Fn(&str, Arc<dyn BatchHandler>, watch::Receiver<bool>) -> Result<JoinHandle<()>, Failure>,
>;

/// A broker wired by its own module of this bench: activelog's publisher and event sources for it.
struct Wiring {
    publisher: Arc<dyn EventPublisher>,
    subscribe: Subscribe,
    /// How long the event sources get to connect before the clock starts (a Kafka consumer
    /// group takes seconds to form).
    warm_up: Duration,
}

/// (publish msgs/s, consume msgs/s) of the bare client.
async fn raw_lapin(url: &str, events: usize, body: &[u8]) -> Result<(f64, f64), Failure> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = format!("bench.raw.{}", ulid::Ulid::new());
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let started = Instant::now();
    for _ in 0..events {
        let _confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
    }
    channel.wait_for_confirms().await?;
    let publish = events as f64 / started.elapsed().as_secs_f64();

    let consumer_channel = connection.create_channel().await?;
    consumer_channel
        .basic_qos(20, BasicQosOptions::default())
        .await?;
    let mut deliveries = consumer_channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < events {
        match deliveries.next().await {
            Some(Ok(delivery)) => {
                delivery.ack(BasicAckOptions::default()).await?;
                consumed += 1;
            }
            Some(Err(error)) => return Err(error.into()),
            None => return Err("consumer cancelled".into()),
        }
    }
    let consume = events as f64 / started.elapsed().as_secs_f64();
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "done".into()).await;
    Ok((publish, consume))
}

fn draft() -> ActivityDraft {
    ActivityDraft {
        activity_type: ActivityType::Running,
        title: ActivityTitle::parse("Bench run").expect("title"),
        description: None,
        notes: None,
        duration: DurationMinutes::parse(30).expect("minutes"),
        distance: None,
        calories: None,
        tags: Tags::parse(&["bench"]).expect("tags"),
        activity_date: ActivityDate::from_date(time::macros::date!(2026 - 11 - 20)),
    }
}

/// (send msgs/s, receive-and-delete msgs/s) of an in-memory queue alone.
fn raw_memory(events: usize, body: &str) -> (f64, f64) {
    let queue = MemoryQueue::new(
        QueueSettings {
            name: "bench".into(),
            visibility_timeout: time::Duration::seconds(30),
            max_receive_count: 5,
        },
        Arc::new(SystemClock),
        None,
    );
    let started = Instant::now();
    for _ in 0..events {
        queue.send(body);
    }
    let send = events as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut received = 0;
    while received < events {
        for message in queue.receive(10) {
            queue.delete(&message.receipt_handle);
            received += 1;
        }
    }
    (send, events as f64 / started.elapsed().as_secs_f64())
}

/// (send msgs/s, receive-and-delete msgs/s) of one SQS queue on moto, ten messages a call.
async fn raw_sqs(clients: &Clients, events: usize, body: &str) -> Result<(f64, f64), Failure> {
    let queue = clients.create_queue(&unique("bench-raw"), 30).await;
    let started = Instant::now();
    let mut sent = 0;
    while sent < events {
        let entries = (sent..events.min(sent + 10))
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sent += entries.len();
        clients
            .sqs
            .send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    let send = events as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut received = 0;
    while received < events {
        let batch = clients
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        let entries = batch
            .messages()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            continue;
        }
        received += entries.len();
        clients
            .sqs
            .delete_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    let consume = events as f64 / started.elapsed().as_secs_f64();
    clients.sqs.delete_queue().queue_url(&queue).send().await?;
    Ok((send, consume))
}

/// One transport wired for one end-to-end run, with names of its own: where the use cases
/// publish, and how a consumer queue (a logical id of `template.yaml`) is fed.
enum Wired {
    Memory(RoutedQueues),
    Sqs {
        clients: Clients,
        publisher: Arc<EventBridgePublisher>,
        /// Queue URLs by logical id.
        queues: BTreeMap<String, String>,
    },
    RabbitMq {
        url: BrokerUrl,
        topology: Topology,
        publisher: Arc<RabbitMqPublisher>,
    },
    /// A broker whose module builds its own wiring (Redis Streams, NATS JetStream, Kafka).
    Broker(Wiring),
}

impl Wired {
    async fn new(transport: &str, rules: &[RoutingRule], args: &Args) -> Result<Self, Failure> {
        Ok(match transport {
            "memory" => Self::Memory(RoutedQueues::new(
                rules,
                &QueueOptions::default(),
                Arc::new(SystemClock),
            )?),
            "sqs" => {
                let clients = Clients::new();
                let bus = unique("bench-bus");
                let mut queues = BTreeMap::new();
                let mut bus_rules = Vec::new();
                for rule in rules {
                    let (queue, _dlq) = clients
                        .create_queue_with_dlq(&unique(&rule.target_queue), 30, 5)
                        .await;
                    let arn = clients.queue_arn(&queue).await;
                    queues.insert(rule.target_queue.clone(), queue);
                    bus_rules.push((unique(&rule.name), rule.event_pattern.clone(), arn));
                }
                clients.create_bus(&bus, &bus_rules).await;
                let publisher =
                    Arc::new(EventBridgePublisher::new(clients.eventbridge.clone(), &bus));
                Self::Sqs {
                    clients,
                    publisher,
                    queues,
                }
            }
            "rabbitmq" => {
                let url = BrokerUrl::parse(&args.url)?;
                let namespace = format!("bench.{}", ulid::Ulid::new());
                let topology = Topology::from_rules(&namespace, rules, 5)?;
                let publisher =
                    Arc::new(RabbitMqPublisher::connect(url.clone(), topology.clone()).await?);
                Self::RabbitMq {
                    url,
                    topology,
                    publisher,
                }
            }
            "redis" => Self::Broker(redis_streams::wiring(&args.redis_url, rules).await?),
            "nats" => Self::Broker(nats::wiring(&args.nats_url, rules).await?),
            "kafka" => Self::Broker(kafka::wiring(&args.kafka_url, rules).await?),
            other => return Err(format!("unknown transport {other}").into()),
        })
    }

    fn publisher(&self) -> Arc<dyn EventPublisher> {
        match self {
            Self::Memory(routed) => routed.bus.clone(),
            Self::Sqs { publisher, .. } => publisher.clone(),
            Self::RabbitMq { publisher, .. } => publisher.clone(),
            Self::Broker(wiring) => wiring.publisher.clone(),
        }
    }

    fn warm_up(&self) -> Duration {
        match self {
            Self::Broker(wiring) => wiring.warm_up,
            _ => Duration::from_millis(300),
        }
    }

    /// Starts the event source of `queue` feeding `handler` until `stop` turns true.
    async fn subscribe(
        &self,
        queue: &str,
        handler: Arc<dyn BatchHandler>,
        stop: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, Failure> {
        Ok(match self {
            Self::Memory(routed) => {
                let queue = routed.queues.get(queue).ok_or("queue")?.clone();
                tokio::spawn(Poller::new(queue, handler, 10).run(stop))
            }
            Self::Sqs {
                clients, queues, ..
            } => {
                let url = queues.get(queue).ok_or("queue")?;
                let poller = SqsPoller::connect(clients.sqs.clone(), url, handler)
                    .await?
                    .with_wait_time(Duration::from_secs(1));
                tokio::spawn(poller.run(stop))
            }
            Self::RabbitMq { url, topology, .. } => {
                let subscriber = RabbitMqSubscriber::new(
                    url.clone(),
                    topology.clone(),
                    queue,
                    handler,
                    SubscriberSettings::default(),
                )
                .ok_or("queue")?;
                tokio::spawn(subscriber.run(stop))
            }
            Self::Broker(wiring) => (wiring.subscribe)(queue, handler, stop)?,
        })
    }
}

/// Events per second from the first create until the stats consumer applied them all.
async fn end_to_end(wired: &Wired, events: usize) -> Result<f64, Failure> {
    let publisher = wired.publisher();
    let activity_store = Arc::new(MemoryActivityStore::new());
    let stats_store = Arc::new(MemoryStatsStore::new());
    let achievement_store = Arc::new(MemoryAchievementStore::new(activity_store.clone()));
    let service = ActivityService::new(
        activity_store.clone(),
        activity_store.clone(),
        publisher.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
    );
    let handlers: [(&str, Arc<dyn BatchHandler>); 2] = [
        (
            "StatsQueue",
            Arc::new(StatsConsumer::new(StatsUpdater::new(stats_store.clone()))),
        ),
        (
            "AchievementsQueue",
            Arc::new(AchievementsConsumer::new(AchievementRecorder::new(
                achievement_store,
                activity_store.clone(),
                publisher.clone(),
                Arc::new(SystemClock),
                Arc::new(RandomIds),
            ))),
        ),
    ];
    let (stop, stopped) = watch::channel(false);
    let mut subscribers = Vec::new();
    for (queue, handler) in handlers {
        subscribers.push(wired.subscribe(queue, handler, stopped.clone()).await?);
    }
    tokio::time::sleep(wired.warm_up()).await;
    let user = UserId::parse(format!(
        "bench{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ))?;
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let service = service.clone();
        let user = user.clone();
        let count = events / WRITERS + usize::from(writer < events % WRITERS);
        writers.push(tokio::spawn(async move {
            let ctx = RequestContext {
                user_id: user,
                correlation_id: CorrelationId::generate(),
                request_id: None,
                trace_header: None,
            };
            for _ in 0..count {
                if service.create(&ctx, draft(), None).await.is_err() {
                    eprintln!("a create failed");
                }
            }
        }));
    }
    for writer in writers {
        writer.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counted = stats_store
            .snapshot()
            .get(&(user.clone(), PeriodKey::AllTime))
            .map_or(0, |s| s.totals.activities);
        if counted == events as i64 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {counted} of {events} applied").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for subscriber in subscribers {
        let _ = subscriber.await;
    }
    Ok(rate)
}

/// What the raw figures of each transport measured.
fn raw_label(transport: &str) -> &'static str {
    match transport {
        "memory" => "in-memory queue: send / receive 10 + delete",
        "sqs" => "SQS on moto: SendMessageBatch 10 / ReceiveMessage 10 + DeleteMessageBatch",
        "redis" => "redis-rs: XADD, pipelines of 100 / XREADGROUP COUNT 20, one XACK per read",
        "nats" => {
            "async-nats: JetStream publish, file storage, acknowledged / pull 20, one ack each"
        }
        "kafka" => {
            "rdkafka: idempotent produce, acks=all, all in flight / consumer group, commit every 100"
        }
        _ => {
            "lapin: publish persistent, confirmed (quorum queue) / consume, prefetch 20, one ack each"
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = args();
    let rules = rules_from_template(TEMPLATE)?;
    // The body activelog publishes for one activity.created, for a like-for-like raw figure.
    let body = "x".repeat(700);
    let mut rows = Vec::new();
    for transport in &args.transports {
        let (mut publish, mut consume, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
        for run in 1..=args.runs {
            let (p, c) = match transport.as_str() {
                "memory" => raw_memory(args.events, &body),
                "sqs" => raw_sqs(&Clients::new(), args.events, &body).await?,
                "redis" => {
                    redis_streams::raw(&args.redis_url, args.events, body.as_bytes()).await?
                }
                "nats" => nats::raw(&args.nats_url, args.events, body.as_bytes()).await?,
                "kafka" => kafka::raw(&args.kafka_url, args.events, body.as_bytes()).await?,
                _ => raw_lapin(&args.url, args.events, body.as_bytes()).await?,
            };
            let wired = Wired::new(transport, &rules, &args).await?;
            let e = end_to_end(&wired, args.events).await?;
            eprintln!(
                "{transport} run {run}: raw send {p:.0}/s, raw receive {c:.0}/s, end to end {e:.0} events/s"
            );
            publish.push(p);
            consume.push(c);
            e2e.push(e);
        }
        rows.push(format!(
            "| {transport} | {} | {:.0} | {:.0} | {:.0} |",
            raw_label(transport),
            median(publish),
            median(consume),
            median(e2e)
        ));
    }
    println!(
        "| transport ({} events, median of {} runs) | raw: what was measured | raw send msgs/s | raw receive msgs/s | end to end: create → published → routed → stats applied, {WRITERS} writers, events/s |",
        args.events, args.runs
    );
    println!("|---|---|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
