//! What the traces' tests read spans from: an in-process collector (the OpenTelemetry SDK's
//! in-memory exporter behind the `tracing-opentelemetry` layer, installed for the test's thread)
//! and an OTLP/HTTP receiver on loopback that decodes what a process exports over the real
//! protocol (protobuf `ExportTraceServiceRequest` on `POST /v1/traces`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use prost::Message;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;

/// Spans of this thread's code, collected in memory as they end.
pub struct Collector {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Collector {
    /// Installs the collector as this thread's subscriber until dropped. A `#[tokio::test]`
    /// runs every task of the test on its one thread, so everything the test drives is seen.
    pub fn install() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("activelog-tests"));
        keep_interest_independent_of_the_calling_thread();
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        Self {
            exporter,
            _provider: provider,
            _guard: guard,
        }
    }

    /// Every span that ended so far, as the common shape.
    pub fn spans(&self) -> Vec<Span> {
        self.exporter
            .get_finished_spans()
            .unwrap()
            .iter()
            .map(Span::from_sdk)
            .collect()
    }
}

/// tracing-core caches each callsite's interest globally. While exactly one dispatcher is
/// registered it takes a shortcut: it computes a callsite's interest from the default dispatcher
/// *of the thread that meets the callsite*. With one collector alive, a callsite registered (or
/// re-registered) on another test's thread, which has no subscriber, is then cached as "never" for
/// every thread, the collector's included, and that test loses the spans (seen: the SQS adapter
/// spans vanished whenever the SQS dead-letter tests ran beside a collector test). A second
/// dispatcher that lives as long as the process turns the shortcut off for good: every interest is
/// then computed from all live dispatchers ("sometimes" while a collector lives: each thread asks
/// its own subscriber), whichever thread asks.
fn keep_interest_independent_of_the_calling_thread() {
    static SECOND_DISPATCHER: OnceLock<tracing::Dispatch> = OnceLock::new();
    SECOND_DISPATCHER
        .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

/// One exported span, whichever way it was collected: ids as lowercase hex.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    pub attributes: Vec<(String, String)>,
}

impl Span {
    fn from_sdk(span: &SpanData) -> Self {
        let parent = span.parent_span_id;
        Self {
            name: span.name.to_string(),
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_span_id: match parent == opentelemetry::trace::SpanId::INVALID {
                true => String::new(),
                false => parent.to_string(),
            },
            links: span
                .links
                .iter()
                .map(|link| {
                    (
                        link.span_context.trace_id().to_string(),
                        link.span_context.span_id().to_string(),
                    )
                })
                .collect(),
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string()))
                .collect(),
        }
    }

    /// The value of attribute `key`, as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_child_of(&self, parent: &Span) -> bool {
        self.trace_id == parent.trace_id && self.parent_span_id == parent.span_id
    }

    pub fn links_to(&self, other: &Span) -> bool {
        self.links
            .iter()
            .any(|(trace, span)| *trace == other.trace_id && *span == other.span_id)
    }
}

/// The spans named `name`.
pub fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The one span named `name` (the test fails when there is not exactly one).
pub fn only<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(
        found.len(),
        1,
        "expected one span `{name}`, found {}: {:#?}",
        found.len(),
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

/// An OTLP/HTTP trace receiver on a free loopback port: it takes protobuf export requests on
/// `POST /v1/traces`, answers 200 with an empty export response, and keeps every span with its
/// resource's `service.name`.
pub struct OtlpReceiver {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans: Arc<Mutex<Vec<(String, Span)>>> = Arc::default();
        let sink = spans.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| receive(request, sink.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { endpoint, spans }
    }

    /// Every span received so far, with its service name.
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
}

async fn receive(
    request: Request<hyper::body::Incoming>,
    sink: Arc<Mutex<Vec<(String, Span)>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path_ok = request.uri().path() == "/v1/traces";
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(export) = ExportTraceServiceRequest::decode(body).map_err(|_| ()) else {
        return Ok(Response::builder()
            .status(400)
            .body(Full::new(Bytes::new()))
            .unwrap());
    };
    if !path_ok {
        return Ok(Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let mut received = Vec::new();
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push((
                    service.clone(),
                    Span {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        links: span
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| {
                                let value = kv
                                    .value
                                    .as_ref()
                                    .and_then(|v| v.value.as_ref())
                                    .map(text)
                                    .unwrap_or_default();
                                (kv.key.clone(), value)
                            })
                            .collect(),
                    },
                ));
            }
        }
    }
    sink.lock().unwrap().extend(received);
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::new()))
        .unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &AnyValue) -> String {
    match value {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}
