//! `cargo run --release -p broker-bench -- [--events N] [--runs R] [--url amqp://...|kafka://...]`:
//! through RabbitMQ (or Kafka, `kafka.rs`, when the URL is `kafka://`) on loopback, in the same
//! run,
//!
//! - **raw lapin**: N persistent messages published with confirms into a quorum queue (all
//!   published, then every confirm awaited), then consumed with prefetch 20 and one ack each —
//!   what the client crate and the broker can do with nothing of activelog around them;
//! - **end to end**: N activities created through the use case by 8 concurrent writers (each
//!   create is an outbox write and a confirmed publish), routed by the template's rules to both
//!   consumers, applied by the stats consumer: from the first create until the stats count N.
//!
//! Each figure is the median of R runs; every run uses its own queues.

mod kafka;

use std::sync::Arc;
use std::time::{Duration, Instant};

use activelog::adapters::memory::{
    MemoryAchievementStore, MemoryActivityStore, MemoryStatsStore, rules_from_template,
};
use activelog::adapters::rabbitmq::{
    BrokerUrl, RabbitMqPublisher, RabbitMqSubscriber, SubscriberSettings, Topology,
};
use activelog::adapters::system::{RandomIds, SystemClock};
use activelog::application::{
    AchievementRecorder, ActivityService, EventPublisher, RequestContext, StatsUpdater,
};
use activelog::consumer::{AchievementsConsumer, BatchHandler, StatsConsumer};
use activelog::domain::{
    ActivityDate, ActivityDraft, ActivityTitle, ActivityType, CorrelationId, DurationMinutes,
    PeriodKey, Tags, UserId,
};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

const TEMPLATE: &str = include_str!("../../../template.yaml");
const WRITERS: usize = 8;

struct Args {
    url: String,
    events: usize,
    runs: usize,
}

fn args() -> Args {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        events: 2000,
        runs: 5,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => args.url = value,
            "--events" => args.events = value.parse().unwrap_or(args.events),
            "--runs" => args.runs = value.parse().unwrap_or(args.runs),
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

/// Starts the event source of one consumer queue (a logical id of the template) for a handler;
/// it runs until the receiver turns true.
type SpawnSubscriber = dyn Fn(
    &str,
    Arc<dyn BatchHandler>,
    tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Failure>;

/// Events per second through RabbitMQ, from the first create until the stats consumer applied
/// them all.
async fn end_to_end(url: &BrokerUrl, events: usize) -> Result<f64, Failure> {
    let rules = rules_from_template(TEMPLATE)?;
    let namespace = format!("bench.{}", ulid::Ulid::new());
    let topology = Topology::from_rules(&namespace, &rules, 5)?;
    let publisher: Arc<dyn EventPublisher> =
        Arc::new(RabbitMqPublisher::connect(url.clone(), topology.clone()).await?);
    let url = url.clone();
    let spawn = move |queue: &str, handler, stopped| -> Result<_, Failure> {
        let subscriber = RabbitMqSubscriber::new(
            url.clone(),
            topology.clone(),
            queue,
            handler,
            SubscriberSettings::default(),
        )
        .ok_or("queue")?;
        Ok(tokio::spawn(subscriber.run(stopped)))
    };
    through(publisher, &spawn, events, Duration::from_millis(300)).await
}

/// Events per second through a transport: `events` creates by WRITERS concurrent writers, each an
/// outbox write and a publish, until the stats consumer has applied them all. The clock starts
/// once the subscribers had `warm_up` to connect (a Kafka consumer group takes seconds to form).
async fn through(
    publisher: Arc<dyn EventPublisher>,
    spawn: &SpawnSubscriber,
    events: usize,
    warm_up: Duration,
) -> Result<f64, Failure> {
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
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::new();
    for (queue, handler) in handlers {
        subscribers.push(spawn(queue, handler, stopped.clone())?);
    }
    tokio::time::sleep(warm_up).await;
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
    let deadline = Instant::now() + Duration::from_secs(120);
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

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = args();
    if args.url.starts_with("kafka://") {
        return kafka::run(&args).await;
    }
    let url = BrokerUrl::parse(&args.url)?;
    // The body activelog publishes for one activity.created, for a like-for-like raw figure.
    let body = vec![b'x'; 700];
    let (mut publish, mut consume, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let (p, c) = raw_lapin(&args.url, args.events, &body).await?;
        let e = end_to_end(&url, args.events).await?;
        eprintln!(
            "run {run}: raw publish {p:.0}/s, raw consume {c:.0}/s, end to end {e:.0} events/s"
        );
        publish.push(p);
        consume.push(c);
        e2e.push(e);
    }
    println!(
        "| through RabbitMQ on loopback ({} events, median of {} runs) | per second |",
        args.events, args.runs
    );
    println!("|---|---:|");
    println!(
        "| raw lapin: publish, persistent, confirmed (quorum queue) | {:.0} |",
        median(publish)
    );
    println!(
        "| raw lapin: consume, prefetch 20, one ack each | {:.0} |",
        median(consume)
    );
    println!(
        "| activelog end to end: create → publish (confirmed) → routed → stats applied, {WRITERS} writers | {:.0} |",
        median(e2e)
    );
    Ok(())
}
