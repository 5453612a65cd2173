//! The span export (feature `otel`): `tracing` spans become OpenTelemetry spans
//! (`tracing-opentelemetry`), batched by the SDK on a thread of their own and sent over OTLP/HTTP
//! (protobuf) to the endpoint of `OTEL_EXPORTER_OTLP_ENDPOINT` — a local collector, or in AWS the
//! ADOT collector layer on `localhost:4318`, which hands them to X-Ray. No endpoint, no export, and
//! no exporter built: the process then runs exactly as without the feature.
//!
//! Trace ids are X-Ray's shape (the first 32 bits the start time in epoch seconds, the rest
//! random): X-Ray refuses other ids, and an OTLP collector does not care.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::otlp_http::OtlpHttpClient;
use crate::telemetry::{self, LogFormat};

/// The variables that turn export on: the standard OpenTelemetry ones.
pub const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The process's tracer provider, kept to flush it.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported, from the process's variables: an endpoint is set (and not
/// blank), and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise.
pub fn enabled(variable: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| variable(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = variable("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true")
        || variable("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
    !disabled && ENDPOINT_VARIABLES.iter().any(|name| set(name))
}

/// Installs logs and span export when [`enabled`]; `false` (nothing installed) otherwise, or
/// when the exporter cannot be built (then the logs say why, once they are installed).
pub(super) fn init(format: LogFormat, service: &str) -> bool {
    if !enabled(|name| std::env::var(name).ok()) {
        return false;
    }
    let variable = |name: &str| std::env::var(name).ok();
    let exporter = OtlpHttpClient::new(OtlpHttpClient::timeout(variable))
        .map_err(|error| error.to_string())
        .and_then(|client| {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(Protocol::HttpBinary)
                .build()
                .map_err(|error| error.to_string())
        });
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(error) => {
            telemetry::init(format);
            tracing::error!(%error, "span exporter not built; traces are not exported");
            return true;
        }
    };
    let resource = match std::env::var("OTEL_SERVICE_NAME") {
        Ok(_) => Resource::builder().build(),
        Err(_) => Resource::builder()
            .with_service_name(service.to_owned())
            .build(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(XrayIds::default())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("activelog");
    let _ = PROVIDER.set(provider);
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false);

    let directive = telemetry::filter_directive(
        variable("RUST_LOG").as_deref(),
        variable("AWS_LAMBDA_LOG_LEVEL").as_deref(),
    );
    let format = telemetry::effective_format(format, variable("AWS_LAMBDA_LOG_FORMAT").as_deref());
    let registry = tracing_subscriber::registry()
        .with(telemetry::log_filter(&directive))
        .with(spans);
    // The same lines as `telemetry::init` writes.
    let result = match format {
        LogFormat::Json => registry.with(telemetry::json_layer()).try_init(),
        LogFormat::Pretty => registry.with(telemetry::pretty_layer()).try_init(),
    };
    // Err only means a subscriber is already installed (a test process starting many stacks).
    drop(result);
    tracing::info!(service, "spans exported over OTLP/HTTP");
    true
}

/// Sends every ended span now and waits for the answer (see [`super::flush`]).
pub(super) fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.force_flush()
    {
        tracing::warn!(%error, "spans not flushed");
    }
}

/// Flushes and stops the exporter: for a process that is about to exit.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "span exporter not shut down cleanly");
    }
}

/// Trace ids X-Ray accepts: the start time in epoch seconds, then 96 random bits.
#[derive(Debug, Default)]
pub struct XrayIds(RandomIdGenerator);

impl XrayIds {
    /// The X-Ray id for `random`'s low 96 bits started at `epoch_seconds`.
    pub fn trace_id(epoch_seconds: u32, random: u128) -> u128 {
        (u128::from(epoch_seconds) << 96) | (random & ((1u128 << 96) - 1))
    }
}

impl IdGenerator for XrayIds {
    fn new_trace_id(&self) -> TraceId {
        let random = u128::from_be_bytes(self.0.new_trace_id().to_bytes());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as u32)
            .unwrap_or_default();
        TraceId::from_bytes(Self::trace_id(now, random).to_be_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_on_only_with_an_endpoint_and_not_disabled() {
        let with = super::super::test_variables;
        assert!(!enabled(with(&[])));
        assert!(!enabled(with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(enabled(with(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://localhost:4318"
        )])));
        assert!(enabled(with(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://localhost:4318/v1/traces"
        )])));
        assert!(!enabled(with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
        assert!(!enabled(with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn generated_trace_ids_start_with_their_time_as_xray_wants() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let id = u128::from_be_bytes(XrayIds::default().new_trace_id().to_bytes());
        let seconds = (id >> 96) as u32;
        assert!(seconds >= before && seconds <= before + 2, "{id:032x}");
        assert_eq!(XrayIds::trace_id(0x5759e988, u128::MAX) >> 96, 0x5759e988);
    }
}
