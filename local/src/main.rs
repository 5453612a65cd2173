//! `cargo run`: activelog on one machine. Serves the HTTP API on 127.0.0.1:3000 through the same
//! handlers the Lambda functions run, and runs the event pipeline (bus with the template's rules,
//! queues with dead-letter queues, consumers, outbox relay) in memory — or, with `--aws`, on the
//! real AWS adapters and queues, or, with `--broker URL`, through a broker (`broker/`) over the
//! in-memory stores or, with `--aws` too, DynamoDB. Every mode serves the console (`console/`) at
//! `/_console/`.

mod access;
mod aws_mode;
mod broker;
mod cli;
mod console;
mod gateway;
mod json_response;
mod maintenance;
mod operator;
mod pipeline;
mod server;
mod stores;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use activelog::adapters::memory::{RoutingRule, rules_from_template};
use activelog::application::ActivityService;
use activelog::startup::{InMemoryStack, QueueOptions};
use activelog::telemetry::LogFormat;
use clap::Parser;
use time::Duration;

use crate::access::OperatorAccess;
use crate::broker::{Broker, BrokerOptions, BrokerStack, ConnectedBroker};
use crate::cli::Options;
use crate::console::{Journal, RecordingActivityStore};
use crate::operator::MemoryOperator;
use crate::pipeline::Pipeline;
use crate::server::Services;
use crate::stores::Stores;

/// The template the local bus takes its routing rules from, so local routing is AWS routing.
const TEMPLATE: &str = include_str!("../../template.yaml");

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    // Spans are exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/observability.md).
    activelog::traces::init(
        if options.pretty {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        },
        "activelog-local",
    );
    let code = match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "activelog-local stopped with an error");
            ExitCode::FAILURE
        }
    };
    // The last spans (the drain's) go out before the process ends.
    activelog::traces::shutdown();
    code
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::parse(&options.broker)?;
    // The operator endpoints drive real queues and tables here: never from another machine.
    if options.aws && !options.bind.is_loopback() {
        return Err(format!(
            "--aws serves only a loopback address; refusing to bind {}",
            options.bind
        )
        .into());
    }
    let rules = rules_from_template(TEMPLATE)?;
    let broker_options = BrokerOptions {
        namespace: options.broker_namespace.clone(),
        delivery_limit: options.max_receive_count,
    };
    let Some(connected) = broker.connect(&rules, &broker_options).await? else {
        return match options.aws {
            true => run_on_aws(options).await,
            false => run_in_memory(options).await,
        };
    };
    let stores = match options.aws {
        true => Stores::dynamodb(options.stats_projection_version).await?,
        false => Stores::in_memory(options.stats_projection_version),
    };
    let journal = journal(&format!("{}+{}", stores.name, connected.name()));
    run_on_broker(options, stores, connected, &rules, journal).await
}

/// The HTTP API and the relay publishing to a broker, and the consumers subscribing from it.
async fn run_on_broker(
    options: Options,
    stores: Stores,
    broker: Arc<dyn ConnectedBroker>,
    rules: &[RoutingRule],
    journal: Arc<Journal>,
) -> Result<(), Box<dyn std::error::Error>> {
    let stack = BrokerStack::start(
        stores,
        broker,
        rules,
        StdDuration::from_secs(options.relay_interval),
        &journal,
    )?;
    let access = operator_access(&options);
    let app = server::router(
        stack.services.clone(),
        stack.operator.clone(),
        access.clone(),
        journal.clone(),
    );
    let listener = listen(&options, &stack.adapters, &access).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal_closing(journal))
        .await?;
    tracing::info!("HTTP stopped; relaying the outbox and stopping the event sources");
    stack.stop().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Binds the API port and says so, loudly noting that local mode authenticates nobody, with the
/// operator token when there is one (the one place it is printed).
async fn listen(
    options: &Options,
    adapters: &str,
    operator_access: &OperatorAccess,
) -> Result<tokio::net::TcpListener, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind((options.bind, options.port)).await?;
    let address = listener.local_addr()?;
    tracing::warn!(
        header = gateway::USER_HEADER,
        "local mode does not authenticate: the x-user-id header is taken as the caller's identity; never expose this port"
    );
    // The token rides in the console URL's fragment, which a browser never sends to a server.
    let console = format!("http://{address}{}", console::PAGE_PATH);
    match &operator_access.token {
        Some(token) => tracing::info!(
            %address,
            adapters,
            operator_token = %token,
            operator_token_header = access::TOKEN_HEADER,
            console = %format!("{console}#token={token}"),
            "activelog-local listening"
        ),
        None => tracing::info!(%address, adapters, %console, "activelog-local listening"),
    }
    Ok(listener)
}

/// The console's journal of a stack on `adapters`.
fn journal(adapters: &str) -> Arc<Journal> {
    Arc::new(Journal::new(console::DEFAULT_CAPACITY, adapters))
}

/// The operator endpoints' token: the one given, else with `--aws` a fresh one, else none.
fn operator_access(options: &Options) -> OperatorAccess {
    match (&options.operator_token, options.aws) {
        (Some(token), _) => OperatorAccess::with_token(token.clone()),
        (None, true) => OperatorAccess::with_new_token(),
        (None, false) => OperatorAccess::default(),
    }
}

async fn run_on_aws(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let access = operator_access(&options);
    let journal = journal("aws");
    let stack = aws_mode::AwsStack::start(
        StdDuration::from_secs(options.relay_interval),
        options.stats_projection_version,
        &journal,
    )
    .await?;
    let app = server::router(
        stack.services.clone(),
        stack.operator.clone(),
        access.clone(),
        journal.clone(),
    );
    let listener = listen(&options, "aws", &access).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal_closing(journal))
        .await?;
    tracing::info!("HTTP stopped; stopping the pollers");
    stack.stop().await;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn run_in_memory(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let rules = rules_from_template(TEMPLATE)?;
    let queue_options = QueueOptions {
        visibility_timeout: Duration::seconds(i64::from(options.visibility_timeout)),
        max_receive_count: options.max_receive_count,
    };
    let stack = Arc::new(
        InMemoryStack::with_system_clock(&rules, &queue_options)?
            .with_stats_version(options.stats_projection_version),
    );
    let journal = journal("memory");
    let pipeline = Pipeline::start(
        stack.clone(),
        StdDuration::from_secs(options.relay_interval),
        &journal,
    )?;
    let services = Services {
        // The stack's use case, with the console's recorders around its store and bus.
        activities: ActivityService::new(
            Arc::new(RecordingActivityStore::new(
                stack.activity_store.clone(),
                journal.clone(),
            )),
            stack.activity_store.clone(),
            pipeline.publisher.clone(),
            stack.clock.clone(),
            stack.ids.clone(),
        ),
        activity_queries: stack.activity_queries.clone(),
        stats: stack.stats.clone(),
        achievements: stack.achievements.clone(),
    };
    tracing::info!(rules = ?rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), "local bus rules from template.yaml");
    let access = operator_access(&options);
    let app = server::router(
        services,
        Arc::new(MemoryOperator {
            stack: stack.clone(),
        }),
        access.clone(),
        journal.clone(),
    );
    let listener = listen(&options, "memory", &access).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal_closing(journal))
        .await?;

    tracing::info!("HTTP stopped; draining the event pipeline");
    pipeline
        .drain(StdDuration::from_secs(options.drain_timeout))
        .await;
    let depths: Vec<(String, activelog::adapters::memory::QueueDepth)> = stack
        .queues
        .iter()
        .map(|(name, queue)| (name.clone(), queue.depth()))
        .collect();
    // All-time activity counts over every user: equal to `activities` when every event was consumed.
    let counted_activities: i64 = stack
        .stats_store
        .snapshot()
        .iter()
        .filter(|((_, period), _)| *period == activelog::domain::PeriodKey::AllTime)
        .map(|(_, stats)| stats.totals.activities)
        .sum();
    tracing::info!(
        activities = stack.activity_store.all_activities().len(),
        counted_activities,
        events_published = stack.bus.accepted_count(),
        outbox_pending = stack.activity_store.outbox_records().len(),
        queues = %serde_json::to_string(&depths).unwrap_or_default(),
        "shutdown complete"
    );
    Ok(())
}

/// [`shutdown_signal`], then ends the console's live streams: a graceful shutdown waits for every
/// open response, and an open console's stream would otherwise never end.
async fn shutdown_signal_closing(journal: Arc<Journal>) {
    shutdown_signal().await;
    journal.close();
}

/// Resolves on Ctrl-C or SIGTERM (what Docker, systemd and CI send).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown signal received");
}
