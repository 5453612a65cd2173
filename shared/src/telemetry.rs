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

/// A CloudWatch unit of the metrics activelog emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: f64,
    pub unit: Unit,
}

impl<'a> Metric<'a> {
    pub fn count(name: &'a str, value: u64) -> Self {
        Self {
            name,
            value: value as f64,
            unit: Unit::Count,
        }
    }

    pub fn milliseconds(name: &'a str, value: f64) -> Self {
        Self {
            name,
            value,
            unit: Unit::Milliseconds,
        }
    }
}

/// The CloudWatch Embedded Metric Format object for `metrics` of `function`, under namespace
/// `activelog` with the dimension `function`: one line, however many metrics.
pub fn emf_record(function: &str, metrics: &[Metric<'_>], timestamp_ms: i64) -> serde_json::Value {
    let definitions: Vec<serde_json::Value> = metrics
        .iter()
        .map(|m| serde_json::json!({"Name": m.name, "Unit": m.unit.as_str()}))
        .collect();
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "activelog",
                "Dimensions": [["function"]],
                "Metrics": definitions
            }]
        },
        "function": function,
    });
    for metric in metrics {
        record[metric.name] = serde_json::json!(metric.value);
    }
    record
}

/// The same record as [`emf_record`], written straight into one line: this runs once per
/// request, where building a `serde_json::Value` first cost several microseconds. Names are the
/// code's own metric names and the function's name, so only the function name is escaped.
pub fn emf_line(function: &str, metrics: &[Metric<'_>], timestamp_ms: i64) -> String {
    use std::fmt::Write;
    let function = serde_json::Value::from(function).to_string();
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{{"Namespace":"activelog","Dimensions":[["function"]],"Metrics":["#
    );
    for (i, metric) in metrics.iter().enumerate() {
        let separator = if i == 0 { "" } else { "," };
        let _ = write!(
            line,
            r#"{separator}{{"Name":"{}","Unit":"{}"}}"#,
            metric.name,
            metric.unit.as_str()
        );
    }
    let _ = write!(line, r#"]}}]}},"function":{function}"#);
    for metric in metrics {
        // JSON has no NaN or infinity; a metric that is not finite is reported as 0.
        let value = if metric.value.is_finite() {
            metric.value
        } else {
            0.0
        };
        let _ = write!(line, r#","{}":{value:?}"#, metric.name);
    }
    line.push('}');
    line
}

/// Writes one EMF line to stdout, where Lambda's log agent turns it into CloudWatch metrics.
pub fn emit_metrics(function: &str, metrics: &[Metric<'_>]) {
    use std::io::Write;
    let timestamp_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut line = emf_line(function, metrics, timestamp_ms);
    line.push('\n');
    // A lost metric line must never fail a request.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emf_record_carries_every_metric_with_its_unit() {
        let record = emf_record(
            "create-activity",
            &[
                Metric::count("Requests", 1),
                Metric::milliseconds("Latency", 2.5),
            ],
            1_795_000_000_000,
        );
        let definition = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(definition["Namespace"], "activelog");
        assert_eq!(definition["Dimensions"], serde_json::json!([["function"]]));
        assert_eq!(
            definition["Metrics"],
            serde_json::json!([{"Name": "Requests", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}])
        );
        assert_eq!(record["_aws"]["Timestamp"], 1_795_000_000_000_i64);
        assert_eq!(record["function"], "create-activity");
        assert_eq!(record["Requests"], 1.0);
        assert_eq!(record["Latency"], 2.5);
    }

    #[test]
    fn the_fast_line_is_the_same_record() {
        let metrics = [
            Metric::count("Requests", 1),
            Metric::count("ServerErrors", 0),
            Metric::milliseconds("Latency", 0.042),
        ];
        for function in ["create-activity", "a \"quoted\" name"] {
            let line = emf_line(function, &metrics, 1_795_000_000_123);
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                parsed,
                emf_record(function, &metrics, 1_795_000_000_123),
                "{line}"
            );
        }
    }
}
