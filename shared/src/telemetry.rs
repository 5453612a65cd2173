//! Logging and metrics. Logs are JSON lines (CloudWatch Logs Insights reads their fields); each
//! line inside a request or message span carries that span's `request_id` and `correlation_id`, so
//! one activity can be followed from its POST to its stats update. Metrics are CloudWatch Embedded
//! Metric Format lines on stdout: no API call, no extra latency.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: Lambda and the local stack's default.
    Json,
    /// Human-readable, for a developer's terminal (`--pretty`).
    Pretty,
}

/// Installs the global subscriber once; `RUST_LOG` filters (default `info`). Calling it again is
/// harmless (tests start many stacks in one process).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    // Err only means a subscriber is already installed, which is what a second call wants.
    drop(result);
}

/// Writes one CloudWatch EMF metric line (count unit) to stdout, under namespace `activelog`.
pub fn count_metric(function: &str, name: &str, value: u64) {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": "activelog",
                "Dimensions": [["function"]],
                "Metrics": [{"Name": name, "Unit": "Count"}]
            }]
        },
        "function": function,
        name: value
    });
    println!("{line}");
}
