//! NATS JetStream in the broker benchmark: the bare async-nats rate and activelog's wiring.

use std::sync::Arc;
use std::time::{Duration, Instant};

use activelog::adapters::memory::RoutingRule;
use activelog::adapters::nats::{
    NatsPublisher, NatsSubscriber, NatsSubscriberSettings, NatsTopology, NatsUrl,
};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

use crate::{Failure, Wiring};

/// (publish msgs/s, consume msgs/s) of the bare client: every message published to a file-stored
/// stream, then every publish acknowledgement awaited (pipelined, as lapin's confirms); then
/// consumed by a durable pull consumer, 20 per pull, one explicit ack each.
pub async fn raw(url: &str, events: usize, body: &[u8]) -> Result<(f64, f64), Failure> {
    let client = async_nats::connect(url).await?;
    let context = jetstream::new(client);
    let name = format!("bench-raw-{}", ulid::Ulid::new());
    let stream = context
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.x")],
            storage: stream::StorageType::File,
            ..stream::Config::default()
        })
        .await?;
    let payload = bytes::Bytes::copy_from_slice(body);
    let started = Instant::now();
    let mut acks = Vec::with_capacity(events);
    for _ in 0..events {
        acks.push(
            context
                .publish(format!("{name}.x"), payload.clone())
                .await?,
        );
    }
    for ack in acks {
        ack.await?;
    }
    let publish = events as f64 / started.elapsed().as_secs_f64();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..consumer::pull::Config::default()
        })
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(20)
        .expires(Duration::from_secs(5))
        .messages()
        .await?;
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < events {
        match messages.next().await {
            Some(Ok(message)) => {
                message.ack().await.map_err(|e| e.to_string())?;
                consumed += 1;
            }
            Some(Err(error)) => return Err(error.into()),
            None => return Err("the pull stream ended".into()),
        }
    }
    let consume = events as f64 / started.elapsed().as_secs_f64();
    context.delete_stream(&name).await?;
    Ok((publish, consume))
}

/// activelog's JetStream publisher and one subscriber per consumer queue.
pub async fn wiring(url: &str, rules: &[RoutingRule]) -> Result<Wiring, Failure> {
    let url = NatsUrl::parse(url)?;
    let topology = NatsTopology::from_rules(
        &format!("bench-{}", ulid::Ulid::new()),
        rules,
        5,
        Duration::from_secs(30),
    )?;
    let publisher = Arc::new(NatsPublisher::connect(url.clone(), topology.clone()).await?);
    Ok(Wiring {
        warm_up: std::time::Duration::from_millis(300),
        publisher,
        subscribe: Box::new(move |queue, handler, stopped| {
            let subscriber = NatsSubscriber::new(
                url.clone(),
                topology.clone(),
                queue,
                handler,
                NatsSubscriberSettings::default(),
            )
            .ok_or("queue")?;
            Ok(tokio::spawn(subscriber.run(stopped)))
        }),
    })
}
