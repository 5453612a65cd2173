//! Logging and metrics. Logs are JSON lines (CloudWatch Logs Insights reads their fields); each
//! line inside a request or message span carries that span's `request_id` and `correlation_id`, so
//! one activity can be followed from its POST to its stats update. Metrics are CloudWatch Embedded
//! Metric Format lines on stdout: no API call, no extra latency.

use std::cell::RefCell;
use std::fmt::Write as _;

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: Lambda and the local stack's default.
    Json,
    /// Human-readable, for a developer's terminal (`--pretty`).
    Pretty,
}

/// The filter directive of a process: `RUST_LOG` when set (it can say `info,activelog=debug`),
/// else Lambda's `AWS_LAMBDA_LOG_LEVEL` (set from the function's `LoggingConfig.ApplicationLogLevel`,
/// which is where the template puts its `LogLevel`), else `info`. Lambda's `FATAL` has no tracing
/// level and means `error`; a value neither knows falls back to `info`.
pub fn filter_directive(rust_log: Option<&str>, lambda_log_level: Option<&str>) -> String {
    if let Some(directive) = rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        return directive.to_owned();
    }
    let level = match lambda_log_level
        .map(|l| l.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    };
    level.to_owned()
}

/// The format Lambda asks for: `AWS_LAMBDA_LOG_FORMAT=Text` means plain lines, anything else
/// (`JSON`, or unset) keeps `requested`.
pub fn effective_format(requested: LogFormat, lambda_log_format: Option<&str>) -> LogFormat {
    match lambda_log_format.map(str::trim) {
        Some(text) if text.eq_ignore_ascii_case("text") => LogFormat::Pretty,
        _ => requested,
    }
}

/// The filter of a [`filter_directive`]: `target=level` pairs and a bare default level, as
/// `RUST_LOG` writes them (`info,activelog=debug`). A `Targets` filter, not an `EnvFilter`: the
/// same directives without the regex engines an `EnvFilter` links for span and field matching,
/// which no function uses (issue 15, size). A directive it cannot read means `info`.
pub fn log_filter(directive: &str) -> Targets {
    directive
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the global subscriber once, filtered by [`filter_directive`] and formatted as
/// [`effective_format`] says. Calling it again is harmless (tests start many stacks in one
/// process).
pub fn init(format: LogFormat) {
    let variable = |name: &str| std::env::var(name).ok();
    let directive = filter_directive(
        variable("RUST_LOG").as_deref(),
        variable("AWS_LAMBDA_LOG_LEVEL").as_deref(),
    );
    let format = effective_format(format, variable("AWS_LAMBDA_LOG_FORMAT").as_deref());
    let registry = tracing_subscriber::registry().with(log_filter(&directive));
    let result = match format {
        LogFormat::Json => registry.with(json_layer()).try_init(),
        LogFormat::Pretty => registry.with(pretty_layer()).try_init(),
    };
    // Err only means a subscriber is already installed, which is what a second call wants.
    drop(result);
}

/// The JSON log layer of every process: one object per line on stdout, the event's fields at
/// the top level next to `timestamp`, `level` and `target`, and the innermost span's fields (with
/// its `name`) under `span`.
pub fn json_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    json_layer_with(SystemTime, std::io::stdout)
}

/// The human-readable layer of `--pretty` and `AWS_LAMBDA_LOG_FORMAT=Text`.
pub fn pretty_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .compact()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
}

/// [`json_layer`] with its clock and its output chosen (tests fix both).
fn json_layer_with<S, T, W>(timer: T, writer: W) -> fmt::Layer<S, JsonFields, JsonLines<T>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: FormatTime + Clone + 'static,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fmt::layer()
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines::new(timer))
        .with_writer(writer)
}

/// tracing-subscriber's JSON lines (flattened event, current span, no span list), byte for byte,
/// without its cost per line inside a span: its formatter parses the span's stored fields, which
/// [`JsonFields`] already wrote as one JSON object, into a `serde_json::Value` (a map, a `String`
/// per key and value) on every line, only to write them out again unchanged. This one writes the
/// line without the span, then splices the stored object's text in as it is. Requests log inside
/// their span, so every request paid that parse (issue 15, handler CPU).
pub struct JsonLines<T = SystemTime> {
    /// The line without `span`: everything up to the span is written by the stock formatter.
    spanless: Format<Json, T>,
    /// The stock formatter with `span`, for stored fields that are not an object's text (which
    /// [`JsonFields`] never writes): it reports them as it always has.
    stock: Format<Json, T>,
}

impl<T: Clone> JsonLines<T> {
    fn new(timer: T) -> Self {
        let json = fmt::format::json()
            .flatten_event(true)
            .with_span_list(false)
            .with_timer(timer);
        Self {
            spanless: json.clone().with_current_span(false),
            stock: json.with_current_span(true),
        }
    }
}

thread_local! {
    /// The line being assembled: the stock formatter writes into it, then the span is spliced
    /// in; one buffer per thread, reused, as the fmt layer does with its own.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, T> FormatEvent<S, JsonFields> for JsonLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // The span the stock formatter would show: the event's explicit parent, else the current.
        let Some(span) = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
        else {
            return self.spanless.format_event(ctx, writer, event);
        };
        // A log line written while formatting a log line (a field's `Debug` that logs) finds
        // the buffer taken and gets its own, as the fmt layer's buffer does.
        LINE.with(|cell| {
            let mut taken;
            let mut fresh = String::new();
            let line = match cell.try_borrow_mut() {
                Ok(buffer) => {
                    taken = buffer;
                    taken.clear();
                    &mut *taken
                }
                Err(_) => &mut fresh,
            };
            self.spanless.format_event(ctx, Writer::new(line), event)?;
            // The stock line ends with the object's `}` and a newline: reopen it for `span`.
            let open = line
                .strip_suffix("}\n")
                .map(str::len)
                .ok_or(std::fmt::Error)?;
            let extensions = span.extensions();
            let stored = extensions
                .get::<FormattedFields<JsonFields>>()
                .and_then(|fields| object_members(&fields.fields));
            let Some(members) = stored else {
                drop(extensions);
                return self.stock.format_event(ctx, writer, event);
            };
            line.truncate(open);
            line.push_str(r#","span":{"#);
            if !members.is_empty() {
                line.push_str(members);
                line.push(',');
            }
            drop(extensions);
            line.push_str(r#""name":"#);
            push_json_string(line, span.metadata().name());
            line.push_str("}}\n");
            writer.write_str(line)
        })
    }
}

/// The members of a JSON object's text (`{"a":1,"b":2}` → `"a":1,"b":2`), or `None` when the
/// text is not delimited as one.
fn object_members(text: &str) -> Option<&str> {
    text.strip_prefix('{')?.strip_suffix('}')
}

/// `value` as a JSON string. Span names are the code's own literals, which need no escaping;
/// one that does is escaped by serde_json.
fn push_json_string(line: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        line.push('"');
        line.push_str(value);
        line.push('"');
    } else {
        line.push_str(&serde_json::Value::from(value).to_string());
    }
}

/// Whether this execution environment has reported its cold start yet: the first metric line of
/// a process carries `ColdStart = 1`, every later one 0, so `Sum(ColdStart)` counts cold starts
/// per function and `ColdStart / Requests` is the cold-start rate.
pub struct ColdStart(std::sync::atomic::AtomicBool);

impl ColdStart {
    pub const fn new() -> Self {
        Self(std::sync::atomic::AtomicBool::new(true))
    }

    /// 1 the first time it is asked, 0 ever after.
    pub fn take(&self) -> u64 {
        u64::from(self.0.swap(false, std::sync::atomic::Ordering::Relaxed))
    }
}

impl Default for ColdStart {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's cold-start flag, taken by the first metric line any edge writes.
pub static COLD_START: ColdStart = ColdStart::new();

/// The metric a process's first line carries as 1 (see [`ColdStart`]).
pub const COLD_START_METRIC: &str = "ColdStart";

/// A CloudWatch unit of the metrics activelog emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
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

    pub fn seconds(name: &'a str, value: f64) -> Self {
        Self {
            name,
            value,
            unit: Unit::Seconds,
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

/// Writes one EMF line to stdout, where Lambda's log agent turns it into CloudWatch metrics. The
/// line also carries [`COLD_START_METRIC`].
pub fn emit_metrics(function: &str, metrics: &[Metric<'_>]) {
    use std::io::Write;
    let timestamp_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut all = Vec::with_capacity(metrics.len() + 1);
    all.extend_from_slice(metrics);
    all.push(Metric::count(COLD_START_METRIC, COLD_START.take()));
    let mut line = emf_line(function, &all, timestamp_ms);
    line.push('\n');
    // A lost metric line must never fail a request.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log lines as a layer writes them, collected for comparison.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// One instant for every line, so that two formatters' lines can be compared byte for byte.
    #[derive(Clone)]
    struct Noon;

    impl FormatTime for Noon {
        fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
            w.write_str("2026-12-02T12:00:00.000000Z")
        }
    }

    /// Lines outside any span, in a span with fields recorded at its start and later, in a span
    /// without fields, in nested spans, and under an explicit parent or none.
    fn log_every_kind_of_line() {
        tracing::info!(outside = 1, "no span");
        let request = tracing::info_span!(
            "request",
            function = "create-activity",
            request_id = %"req-1",
            correlation_id = "a \"quoted\" id, é",
            user_id = tracing::field::Empty,
        );
        let entered = request.enter();
        tracing::info!(status = 201_u16, "request completed");
        request.record("user_id", "user-1");
        tracing::warn!(detail = %"late", ratio = 0.25, ok = true, "after a record");
        tracing::info_span!("empty").in_scope(|| tracing::error!("in a span without fields"));
        tracing::info_span!("inner", events = 3).in_scope(|| tracing::debug!(n = -2, "nested"));
        drop(entered);
        let message = tracing::info_span!(parent: None, "message", message_id = "m-1");
        tracing::info!(parent: &message, "explicit parent");
        request.in_scope(|| tracing::info!(parent: None, "explicit root"));
    }

    #[test]
    fn json_lines_are_the_stock_json_formats_lines_byte_for_byte() {
        let stock = Lines::default();
        let ours = Lines::default();
        let writer = stock.clone();
        let stock_layer = fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .with_timer(Noon)
            .with_writer(move || writer.clone());
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(stock_layer),
            log_every_kind_of_line,
        );
        let writer = ours.clone();
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(json_layer_with(Noon, move || writer.clone())),
            log_every_kind_of_line,
        );

        let (stock, ours) = (stock.text(), ours.text());
        assert_eq!(stock.lines().count(), 7, "{stock}");
        assert_eq!(ours, stock);
        assert!(
            ours.contains(
                r#""span":{"correlation_id":"a \"quoted\" id, é","function":"create-activity","request_id":"req-1","user_id":"user-1","name":"request"}}"#
            ),
            "{ours}"
        );
    }

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
    fn lambdas_log_level_applies_unless_rust_log_says_otherwise() {
        assert_eq!(filter_directive(None, None), "info");
        assert_eq!(filter_directive(None, Some("DEBUG")), "debug");
        assert_eq!(filter_directive(None, Some("warn")), "warn");
        assert_eq!(filter_directive(None, Some("FATAL")), "error");
        assert_eq!(filter_directive(None, Some("TRACE")), "trace");
        assert_eq!(filter_directive(None, Some("nonsense")), "info");
        assert_eq!(filter_directive(Some(""), Some("ERROR")), "error");
        assert_eq!(
            filter_directive(Some("info,activelog=debug"), Some("ERROR")),
            "info,activelog=debug"
        );
        assert_eq!(
            effective_format(LogFormat::Json, Some("Text")),
            LogFormat::Pretty
        );
        assert_eq!(
            effective_format(LogFormat::Json, Some("JSON")),
            LogFormat::Json
        );
        assert_eq!(effective_format(LogFormat::Json, None), LogFormat::Json);
    }

    #[test]
    fn the_log_filter_reads_rust_logs_directives() {
        use tracing::Level;
        let filter = log_filter("warn,activelog=debug,activelog::adapters=error");
        assert!(filter.would_enable("activelog::http", &Level::DEBUG));
        assert!(!filter.would_enable("activelog::http", &Level::TRACE));
        assert!(!filter.would_enable("activelog::adapters::memory", &Level::WARN));
        assert!(filter.would_enable("hyper", &Level::WARN));
        assert!(!filter.would_enable("hyper", &Level::INFO));
        let default = log_filter("info");
        assert!(default.would_enable("anything", &Level::INFO));
        assert!(!default.would_enable("anything", &Level::DEBUG));
        // Unreadable: `info`.
        let unreadable = log_filter("activelog=loud");
        assert!(unreadable.would_enable("activelog", &Level::INFO));
        assert!(!unreadable.would_enable("activelog", &Level::DEBUG));
    }

    #[test]
    fn only_the_first_metric_line_of_a_process_is_a_cold_start() {
        let cold_start = ColdStart::new();
        assert_eq!(cold_start.take(), 1);
        assert_eq!(cold_start.take(), 0);
        assert_eq!(cold_start.take(), 0);
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
