//! Redis Streams in the broker benchmark: the bare redis-rs rate and activelog's wiring.

use std::sync::Arc;
use std::time::Instant;

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::redis_streams::{
    RedisStreamsPublisher, RedisStreamsSubscriber, RedisUrl, StreamSubscriberSettings,
    StreamTopology,
};
use redis::streams::StreamReadReply;

use crate::{Failure, Wiring};

/// Entries per pipeline when publishing, and per read when consuming: the raw figure's analogue
/// of lapin's pipelined confirms and prefetch 20.
const PIPELINE: usize = 100;
const READ_COUNT: usize = 20;

/// (publish entries/s, consume entries/s) of the bare client: `XADD` in pipelines of 100 (each
/// pipeline's replies awaited), then `XREADGROUP COUNT 20` with one `XACK` per read.
pub async fn raw(url: &str, events: usize, body: &[u8]) -> Result<(f64, f64), Failure> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let stream = format!("bench:raw:{}", ulid::Ulid::new());
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("bench")
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut connection)
        .await?;
    let started = Instant::now();
    let mut sent = 0;
    while sent < events {
        let chunk = PIPELINE.min(events - sent);
        let mut pipe = redis::pipe();
        for _ in 0..chunk {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("body")
                .arg(body)
                .ignore();
        }
        pipe.query_async::<()>(&mut connection).await?;
        sent += chunk;
    }
    let publish = events as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < events {
        let reply: StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("bench")
            .arg("reader")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut connection)
            .await?;
        let ids: Vec<String> = reply
            .keys
            .into_iter()
            .flat_map(|key| key.ids)
            .map(|entry| entry.id)
            .collect();
        if ids.is_empty() {
            return Err(format!("the stream ran dry after {consumed} entries").into());
        }
        consumed += ids.len();
        redis::cmd("XACK")
            .arg(&stream)
            .arg("bench")
            .arg(&ids)
            .query_async::<()>(&mut connection)
            .await?;
    }
    let consume = events as f64 / started.elapsed().as_secs_f64();
    redis::cmd("DEL")
        .arg(&stream)
        .query_async::<()>(&mut connection)
        .await?;
    Ok((publish, consume))
}

/// activelog's Redis Streams publisher and one subscriber per consumer stream.
pub async fn wiring(url: &str, rules: &[RoutingRule]) -> Result<Wiring, Failure> {
    let url = RedisUrl::parse(url)?;
    let topology = StreamTopology::from_rules(&format!("bench-{}", ulid::Ulid::new()), rules, 5)?;
    let publisher = Arc::new(RedisStreamsPublisher::connect(url.clone(), topology.clone()).await?);
    Ok(Wiring {
        warm_up: std::time::Duration::from_millis(300),
        publisher,
        subscribe: Box::new(move |queue, handler, stopped| {
            let subscriber = RedisStreamsSubscriber::new(
                url.clone(),
                &topology,
                queue,
                handler,
                StreamSubscriberSettings::default(),
            )
            .ok_or("queue")?;
            Ok(tokio::spawn(subscriber.run(stopped)))
        }),
    })
}
