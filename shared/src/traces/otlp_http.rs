//! The HTTP client of the span export: one plain-HTTP POST per batch to the OTLP endpoint (a
//! collector on loopback, or the ADOT layer's `localhost:4318` in Lambda), over the hyper client
//! the SDK adapters already link. `opentelemetry-otlp`'s own choice, reqwest's blocking client,
//! brought a second HTTP stack into every function (issue 15, size; docs/benchmarks.md).
//!
//! The SDK's batch processor exports from a thread of its own and drives the export future with a
//! plain executor, not tokio, so the client keeps a current-thread runtime of its own and blocks
//! on it: no thread is spawned for it, and between exports the idle connection waits in the pool.
//! No TLS: the endpoints this serves are local, and reqwest was built without TLS as well.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// How long one export may take when no variable says: the OpenTelemetry default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP/HTTP client the exporter is given.
pub struct OtlpHttpClient {
    runtime: tokio::runtime::Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpHttpClient {
    /// A client whose exports give up after `timeout`.
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Ok(Self {
            runtime,
            client,
            timeout,
        })
    }

    /// The export timeout the OpenTelemetry variables give (milliseconds,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` before `OTEL_EXPORTER_OTLP_TIMEOUT`), 10 s otherwise:
    /// the exporter resolves the same variables but keeps the figure from a client it is given.
    pub fn timeout(variable: impl Fn(&str) -> Option<String>) -> Duration {
        [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .iter()
        .find_map(|name| variable(name)?.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let response = self.client.request(request.map(Full::new)).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

#[async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        self.runtime
            .block_on(async { tokio::time::timeout(self.timeout, self.send(request)).await })?
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-connection HTTP server on loopback: reads one request and answers `answer`, or
    /// never answers when `answer` is `None`. Gives back the request's bytes.
    fn server(answer: Option<&'static str>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            // Headers, then the body its Content-Length announces.
            loop {
                let read = stream.read(&mut buffer).unwrap();
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse::<usize>().unwrap());
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            match answer {
                Some(answer) => stream.write_all(answer.as_bytes()).unwrap(),
                None => std::thread::sleep(Duration::from_secs(2)),
            }
            request
        });
        (endpoint, handle)
    }

    fn post(endpoint: &str, body: &'static [u8]) -> Request<Bytes> {
        Request::post(endpoint)
            .header("content-type", "application/x-protobuf")
            .body(Bytes::from_static(body))
            .unwrap()
    }

    #[test]
    fn a_batch_is_posted_and_the_collectors_answer_read_whole() {
        let (endpoint, server) = server(Some(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
             transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ));
        let client = OtlpHttpClient::new(DEFAULT_TIMEOUT).unwrap();
        let response =
            run_outside_tokio(client.send_bytes(post(&endpoint, b"\x0a\x02spans"))).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), b"abcde");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("POST /v1/traces HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_lowercase()
                .contains("content-type: application/x-protobuf"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n\x0a\x02spans"), "{request}");
    }

    #[test]
    fn a_collector_that_does_not_answer_fails_the_export_after_the_timeout() {
        let (endpoint, _server) = server(None);
        let client = OtlpHttpClient::new(Duration::from_millis(200)).unwrap();
        let started = std::time::Instant::now();
        let result = run_outside_tokio(client.send_bytes(post(&endpoint, b"x")));
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn the_timeout_comes_from_the_traces_variable_then_the_general_one() {
        let with = super::super::test_variables;
        assert_eq!(OtlpHttpClient::timeout(with(&[])), DEFAULT_TIMEOUT);
        assert_eq!(
            OtlpHttpClient::timeout(with(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")])),
            Duration::from_millis(2500)
        );
        assert_eq!(
            OtlpHttpClient::timeout(with(&[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"),
            ])),
            Duration::from_millis(700)
        );
    }

    /// Drives `future` outside any tokio runtime, as the SDK's batch thread does.
    fn run_outside_tokio<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        loop {
            if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
    }
}
