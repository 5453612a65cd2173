//! A loopback stand-in for the Lambda Runtime API, just enough for one cold start at a time: it
//! hands the prepared event to the first `GET /next`, and records when that call arrived and how
//! the invocation ended (`/response`, `/error`, or `/init/error`). Every later `/next` is held
//! until the run is over, as the real service holds it while the environment is frozen.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

const PREFIX: &str = "/2018-06-01/runtime";

/// How the first invocation of a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `POST /invocation/{id}/response`, with the response body.
    Response(Bytes),
    /// `POST /invocation/{id}/error`, with the error document.
    InvocationError(Bytes),
    /// `POST /init/error`, with the error document.
    InitError(Bytes),
}

/// What the server knows about the run in progress.
#[derive(Debug)]
struct Run {
    request_id: String,
    function_name: String,
    event: Bytes,
    first_next: Option<Instant>,
    outcome: Option<(Instant, Outcome)>,
}

/// What a finished run recorded.
#[derive(Debug)]
pub struct Recorded {
    pub first_next: Option<Instant>,
    pub outcome: Option<(Instant, Outcome)>,
}

/// The server's handle: start a run, wait for its outcome, end it.
#[derive(Clone)]
pub struct RuntimeApi {
    pub address: SocketAddr,
    run: Arc<Mutex<Option<Run>>>,
    ended: Arc<Notify>,
    generation: watch::Sender<u64>,
}

impl RuntimeApi {
    /// Binds a free loopback port and serves on it until the process ends.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api = RuntimeApi {
            address: listener.local_addr()?,
            run: Arc::new(Mutex::new(None)),
            ended: Arc::new(Notify::new()),
            generation: watch::Sender::new(0),
        };
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let api = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.route(request).await) }
                    });
                    // A killed function drops its connection mid-request; nothing to report.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(api)
    }

    /// Prepares the event the next `GET /next` hands out.
    pub fn begin(&self, request_id: String, function_name: &str, event: Bytes) {
        *self.lock() = Some(Run {
            request_id,
            function_name: function_name.to_owned(),
            event,
            first_next: None,
            outcome: None,
        });
    }

    /// Resolves when the run's invocation (or its init) has ended.
    pub async fn outcome(&self) {
        loop {
            let notified = self.ended.notified();
            if self
                .lock()
                .as_ref()
                .is_some_and(|run| run.outcome.is_some())
            {
                return;
            }
            notified.await;
        }
    }

    /// Ends the run: releases the held `/next` calls and returns what was recorded.
    pub fn end(&self) -> Recorded {
        let run = self.lock().take();
        self.generation.send_modify(|g| *g += 1);
        match run {
            Some(run) => Recorded {
                first_next: run.first_next,
                outcome: run.outcome,
            },
            None => Recorded {
                first_next: None,
                outcome: None,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        // A poisoned lock only means a handler panicked mid-update; the data is still usable.
        self.run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let path = request.uri().path().to_owned();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return status(StatusCode::NOT_FOUND);
        };
        match (request.method(), rest) {
            (&Method::GET, "/invocation/next") => self.next(arrived).await,
            (&Method::POST, "/init/error") => {
                let body = body_of(request).await;
                self.record(arrived, Outcome::InitError(body))
            }
            (&Method::POST, rest) => {
                let Some(rest) = rest.strip_prefix("/invocation/") else {
                    return status(StatusCode::NOT_FOUND);
                };
                let Some((id, verb)) = rest.split_once('/') else {
                    return status(StatusCode::NOT_FOUND);
                };
                let known = self.lock().as_ref().is_some_and(|run| run.request_id == id);
                if !known {
                    return status(StatusCode::BAD_REQUEST);
                }
                let verb = verb.to_owned();
                let body = body_of(request).await;
                match verb.as_str() {
                    "response" => self.record(arrived, Outcome::Response(body)),
                    "error" => self.record(arrived, Outcome::InvocationError(body)),
                    _ => status(StatusCode::NOT_FOUND),
                }
            }
            _ => status(StatusCode::NOT_FOUND),
        }
    }

    async fn next(&self, arrived: Instant) -> Response<Full<Bytes>> {
        let mut generation = self.generation.subscribe();
        let handed_out = {
            let mut guard = self.lock();
            match guard.as_mut() {
                Some(run) if run.first_next.is_none() => {
                    run.first_next = Some(arrived);
                    Some((
                        run.request_id.clone(),
                        run.function_name.clone(),
                        run.event.clone(),
                    ))
                }
                _ => None,
            }
        };
        match handed_out {
            Some((request_id, function_name, event)) => {
                invocation(&request_id, &function_name, event)
            }
            None => {
                // Held until the run ends; the function is killed before it sees the answer.
                let _ = generation.changed().await;
                status(StatusCode::GONE)
            }
        }
    }

    fn record(&self, arrived: Instant, outcome: Outcome) -> Response<Full<Bytes>> {
        if let Some(run) = self.lock().as_mut()
            && run.outcome.is_none()
        {
            run.outcome = Some((arrived, outcome));
        }
        self.ended.notify_waiters();
        status(StatusCode::ACCEPTED)
    }
}

fn invocation(request_id: &str, function_name: &str, event: Bytes) -> Response<Full<Bytes>> {
    let deadline = SystemTime::now()
        .checked_add(Duration::from_secs(900))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    let arn = format!("arn:aws:lambda:eu-west-1:123456789012:function:{function_name}");
    let hex: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let root = &hex[hex.len().saturating_sub(24)..];
    let trace = format!("Root=1-00000000-{root:0>24};Parent=0000000000000000;Sampled=0");
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", request_id)
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header("lambda-runtime-invoked-function-arn", arn)
        .header("lambda-runtime-trace-id", trace)
        .body(Full::new(event));
    response.unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
}

async fn body_of(request: Request<Incoming>) -> Bytes {
    match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
