//! A fault injector on loopback: an HTTP proxy between the real AWS SDK clients and moto that, on
//! a seeded fraction of calls, answers for moto with a fault — throttling in the service's own
//! error shape, a 500, a stall past the SDK's attempt timeout, a connection reset, or moto's
//! answer lost after moto applied the call.
//!
//! A proxy rather than SDK interceptors: the proxy sees every attempt on the wire, the SDK's own
//! retries included, so a fault on a retry is as likely as on a first attempt and the SDK's retry,
//! timeout and connection-pool code runs exactly as it does against AWS. An interceptor sits
//! inside the SDK and cannot lose an answer after the server applied the write, stall a socket,
//! or reset a pooled connection.
//!
//! Reproducible from its seed: whether call number `n` (in arrival order) is faulted, and how, is
//! a function of `(seed, n)` alone. Under concurrency which request is the `n`-th varies between
//! runs; the sequence of faults does not.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to a faulted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The service's throttling error (400), not forwarded: DynamoDB `ThrottlingException` or
    /// `ProvisionedThroughputExceededException`, SQS `RequestThrottled`, EventBridge
    /// `ThrottlingException`.
    Throttle,
    /// A 500 with the service's internal-error code, not forwarded.
    ServerError,
    /// No answer at all: the request is held past the SDK's attempt timeout, never forwarded.
    Timeout,
    /// The connection is reset (RST) before the request is forwarded.
    Reset,
    /// Forwarded: moto applies the call, then the connection is reset instead of answering. The
    /// client cannot tell this from [`FaultKind::Reset`] and retries a write that happened.
    LostAnswer,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Throttle,
        FaultKind::ServerError,
        FaultKind::Timeout,
        FaultKind::Reset,
        FaultKind::LostAnswer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::ServerError => "500",
            FaultKind::Timeout => "timeout",
            FaultKind::Reset => "reset",
            FaultKind::LostAnswer => "lost-answer",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which calls are faulted and how.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub seed: u64,
    /// Fraction of calls faulted, 0.0 to 1.0.
    pub fraction: f64,
    /// Relative weights of the kinds among faulted calls.
    pub mix: Vec<(FaultKind, u32)>,
    /// How long a [`FaultKind::Timeout`] holds the request before dropping the connection; longer
    /// than the SDK's attempt timeout.
    pub stall: Duration,
}

impl FaultPlan {
    /// Every kind, equally likely.
    pub fn even(seed: u64, fraction: f64) -> Self {
        Self {
            seed,
            fraction,
            mix: FaultKind::ALL.iter().map(|&kind| (kind, 1)).collect(),
            stall: Duration::from_secs(2),
        }
    }

    /// The decision for call number `n`: `None` (forward untouched) or the fault.
    pub fn decide(&self, n: u64) -> Option<FaultKind> {
        let roll = splitmix64(self.seed ^ n.wrapping_mul(2).wrapping_mul(GOLDEN));
        let pick = splitmix64(self.seed ^ (n.wrapping_mul(2) + 1).wrapping_mul(GOLDEN));
        // 53 bits make an exact f64 in [0, 1).
        let unit = (roll >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= self.fraction {
            return None;
        }
        let total: u64 = self.mix.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut point = pick % total;
        for (kind, weight) in &self.mix {
            if point < u64::from(*weight) {
                return Some(*kind);
            }
            point -= u64::from(*weight);
        }
        None
    }
}

/// SplitMix64's increment (2^64 / golden ratio).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a stateless, well-mixed hash of a counter, so the decision for a
/// call does not depend on which thread drew first (a shared stateful RNG would). The reliability
/// run draws its workload from it too.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the proxy saw: calls by `Service.Operation`, faults by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub calls: u64,
    pub by_operation: BTreeMap<String, u64>,
    pub faults: BTreeMap<FaultKind, u64>,
    /// DynamoDB calls whose client gave up while they waited for moto (never forwarded).
    pub abandoned_before_moto: u64,
    /// DynamoDB calls moto answered later than [`SLOW_ANSWER`] after they reached the proxy:
    /// past the SDK's attempt timeout, so the client saw a timeout no fault injected.
    pub slow_answers: u64,
    /// The calls forwarded to moto and how long it took to answer them, by `Service.Operation`
    /// (a query by `Service.Query(index)`). DynamoDB calls reach moto one at a time, so theirs
    /// add up to the time moto spent on DynamoDB: where a slow run's time went, measured.
    pub moto_time: BTreeMap<String, MotoTime>,
}

/// Calls moto answered and the time it took, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MotoTime {
    pub calls: u64,
    pub time: Duration,
}

impl FaultCounts {
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }

    pub fn fault(&self, kind: FaultKind) -> u64 {
        self.faults.get(&kind).copied().unwrap_or(0)
    }
}

struct Shared {
    upstream: String,
    plan: FaultPlan,
    next_call: AtomicU64,
    injecting: AtomicBool,
    counts: Mutex<FaultCounts>,
    /// One DynamoDB call at a time reaches moto. moto's `TransactWriteItems` snapshots the whole
    /// table when it starts and, when a condition fails, restores that snapshot — erasing every
    /// write other threads of its threaded server committed meanwhile (moto 5.x,
    /// `dynamodb/models/__init__.py`). DynamoDB isolates transactions; the lost-answer retries
    /// this proxy provokes cancel transactions all the time, so unserialised the runs measured
    /// moto's rollback (acknowledged activities vanished), not activelog.
    dynamodb_gate: Arc<tokio::sync::Mutex<()>>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let shared = Arc::new(Shared {
            upstream,
            plan,
            next_call: AtomicU64::new(0),
            injecting: AtomicBool::new(true),
            counts: Mutex::new(FaultCounts::default()),
            dynamodb_gate: Arc::new(tokio::sync::Mutex::new(())),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Closing a connection then sends RST, not FIN: a faulted call's connection is
                // reset, as a crashed server's or a load balancer's would be.
                let _ = stream.set_zero_linger();
                tokio::spawn(serve(stream, accepting.clone()));
            }
        });
        Ok(Self {
            endpoint,
            shared,
            task,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn seed(&self) -> u64 {
        self.shared.plan.seed
    }

    /// Stops (`false`) or resumes injecting; calls are forwarded untouched while stopped.
    pub fn set_injecting(&self, injecting: bool) {
        self.shared.injecting.store(injecting, Ordering::SeqCst);
    }

    pub fn counts(&self) -> FaultCounts {
        lock(&self.shared.counts).clone()
    }
}

fn lock(counts: &Mutex<FaultCounts>) -> std::sync::MutexGuard<'_, FaultCounts> {
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| handle(request, shared.clone()));
    // An error here is a connection the proxy reset on purpose, or one the client dropped.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Why the proxy closed a connection instead of answering.
#[derive(Debug, thiserror::Error)]
enum Dropped {
    #[error("fault injected: {0}")]
    Fault(FaultKind),
    #[error("upstream: {0}")]
    Upstream(String),
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let call = Call::of(&target);
    let operation = format!("{}.{}", call.service.name(), call.operation);
    let n = shared.next_call.fetch_add(1, Ordering::SeqCst);
    let fault = if shared.injecting.load(Ordering::SeqCst) {
        shared.plan.decide(n)
    } else {
        None
    };
    {
        let mut counts = lock(&shared.counts);
        counts.calls += 1;
        *counts.by_operation.entry(operation.clone()).or_default() += 1;
        if let Some(kind) = fault {
            *counts.faults.entry(kind).or_default() += 1;
        }
    }
    match fault {
        None => forward_detached(request, &shared, call.service, operation).await,
        Some(FaultKind::Throttle) => Ok(call.service.throttle(n)),
        Some(FaultKind::ServerError) => Ok(call.service.internal_error()),
        Some(FaultKind::Timeout) => {
            tokio::time::sleep(shared.plan.stall).await;
            Err(Dropped::Fault(FaultKind::Timeout))
        }
        Some(FaultKind::Reset) => Err(Dropped::Fault(FaultKind::Reset)),
        Some(FaultKind::LostAnswer) => {
            // moto applies the call; its answer goes nowhere.
            let _applied = forward_detached(request, &shared, call.service, operation).await;
            Err(Dropped::Fault(FaultKind::LostAnswer))
        }
    }
}

/// An answer this late (from the call reaching the proxy) is past the SDK's attempt timeout
/// (`startup::aws::ATTEMPT_TIMEOUT`, 1.5 s).
pub const SLOW_ANSWER: Duration = Duration::from_millis(1500);

/// The longest the proxy waits for moto.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards a call to moto, DynamoDB calls one at a time (see `dynamodb_gate`).
///
/// Waiting for the gate belongs to the client's connection: a client that gives up (its attempt
/// timeout) closes it, hyper drops this future, and the call never reaches moto — to the client
/// a timeout, as a request lost on the way is. Forwarding such abandoned calls anyway made the
/// full-size runs collapse: moto serialised and slowing as its table grows (every
/// `TransactWriteItems` deep-copies the table), calls queued past the 1.5 s attempt timeout, the
/// SDK retried them, and the gate went on serving every abandoned attempt before the live ones.
/// Once through the gate, the call is moto's: it is applied in a task of its own, so that a
/// client giving up cannot cut a call moto is applying, and the gate is held until moto has
/// answered.
async fn forward_detached(
    request: Request<Incoming>,
    shared: &Arc<Shared>,
    service: Service,
    operation: String,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let arrived = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    // Read in full first: hyper notices a client hanging up only once the body is read.
    let body = body
        .collect()
        .await
        .map_err(|e| Dropped::Upstream(e.to_string()))?
        .to_bytes();
    let operation = with_index(operation, &body);
    let gate = match service {
        Service::DynamoDb => {
            let mut waiting = AbandonedIfDropped {
                shared: shared.clone(),
                waiting: true,
            };
            let gate = shared.dynamodb_gate.clone().lock_owned().await;
            waiting.waiting = false;
            Some(gate)
        }
        _ => None,
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let _one_at_a_time = gate;
        let forwarded = std::time::Instant::now();
        let answered = tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            forward(Request::from_parts(parts, body), &shared.upstream),
        )
        .await;
        {
            let mut counts = lock(&shared.counts);
            let spent = counts.moto_time.entry(operation).or_default();
            spent.calls += 1;
            spent.time += forwarded.elapsed();
            if service == Service::DynamoDb && arrived.elapsed() > SLOW_ANSWER {
                counts.slow_answers += 1;
            }
        }
        // Bounded, so that one call moto never answers cannot hold the gate for good.
        answered.map_err(|_| Dropped::Upstream(format!("no answer within {UPSTREAM_TIMEOUT:?}")))?
    })
    .await
    .map_err(|e| Dropped::Upstream(e.to_string()))?
}

/// A query's label names the index it reads (`DynamoDB.Query(GSI2)`): moto answers every query
/// by sorting the whole table, and which reader pays that matters.
fn with_index(operation: String, body: &[u8]) -> String {
    if !operation.ends_with(".Query") {
        return operation;
    }
    match serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|query| query["IndexName"].as_str().map(str::to_owned))
    {
        Some(index) => format!("{operation}({index})"),
        None => operation,
    }
}

/// Counts a call its client gave up on while it waited for the gate (dropped with the wait).
struct AbandonedIfDropped {
    shared: Arc<Shared>,
    waiting: bool,
}

impl Drop for AbandonedIfDropped {
    fn drop(&mut self) {
        if self.waiting {
            lock(&self.shared.counts).abandoned_before_moto += 1;
        }
    }
}

/// One request to moto on a connection of its own; the answer read in full.
async fn forward(
    request: Request<Bytes>,
    upstream: &str,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let upstream_error = |e: &dyn fmt::Display| Dropped::Upstream(e.to_string());
    let (parts, body) = request.into_parts();
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| upstream_error(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| upstream_error(&e))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| upstream_error(&e))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| upstream_error(&e))?
        .to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The AWS services the adapters call, told apart by `X-Amz-Target` (all three speak AWS JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    DynamoDb,
    EventBridge,
    Sqs,
    Other,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "DynamoDB",
            Service::EventBridge => "EventBridge",
            Service::Sqs => "SQS",
            Service::Other => "Other",
        }
    }

    /// The service's throttling error as it sends it: status 400, the code in `__type`. DynamoDB
    /// has two (request rate and provisioned capacity); the call number picks one.
    fn throttle(self, n: u64) -> Response<Full<Bytes>> {
        let code = match self {
            Service::DynamoDb if n.is_multiple_of(2) => {
                "com.amazonaws.dynamodb.v20120810#ThrottlingException"
            }
            Service::DynamoDb => {
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
            }
            Service::Sqs => "com.amazonaws.sqs#RequestThrottled",
            Service::EventBridge | Service::Other => "ThrottlingException",
        };
        aws_json_error(StatusCode::BAD_REQUEST, code, "Rate exceeded")
    }

    fn internal_error(self) -> Response<Full<Bytes>> {
        let code = match self {
            Service::DynamoDb => "com.amazonaws.dynamodb.v20120810#InternalServerError",
            Service::Sqs => "com.amazonaws.sqs#InternalError",
            Service::EventBridge | Service::Other => "InternalException",
        };
        aws_json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            "We encountered an internal error. Please try again.",
        )
    }
}

struct Call {
    service: Service,
    operation: String,
}

impl Call {
    fn of(target: &str) -> Self {
        let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
        let service = match prefix {
            p if p.starts_with("DynamoDB_") => Service::DynamoDb,
            "AWSEvents" => Service::EventBridge,
            "AmazonSQS" => Service::Sqs,
            _ => Service::Other,
        };
        Self {
            service,
            operation: operation.to_owned(),
        }
    }
}

fn aws_json_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(code) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}
