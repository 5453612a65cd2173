//! A TLS endpoint on loopback that answers the AWS calls of a first invocation, so that init +
//! first invoke includes what it does on Lambda: a TCP connect, a TLS handshake whose server
//! certificate the function verifies, and a signed JSON call answered with success. Its
//! certificate is issued at start-up by a certificate authority made for the run (rcgen); the
//! function trusts that authority only through `SSL_CERT_FILE`, as a custom CA bundle would be
//! given. Answers are the smallest successful ones of the AWS JSON protocols (by `X-Amz-Target`):
//! a write succeeds, a read finds nothing, `PutEvents` accepts every entry, `GET /` says healthy
//! (the connection warm-up's request).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The running endpoint: its URL, the PEM of the authority that issued its certificate, and
/// what it has served.
pub struct TlsEndpoint {
    pub url: String,
    pub ca_pem: String,
    pub served: Arc<Served>,
}

/// Handshakes completed and calls answered since the endpoint started: read before and after a
/// cold start, they say how many connections and AWS calls its first invocation made.
#[derive(Debug, Default)]
pub struct Served {
    handshakes: AtomicU64,
    calls: AtomicU64,
}

impl Served {
    /// `(handshakes, calls)` so far.
    pub fn count(&self) -> (u64, u64) {
        (
            self.handshakes.load(Ordering::SeqCst),
            self.calls.load(Ordering::SeqCst),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("listening: {0}")]
    Io(#[from] std::io::Error),
}

/// Issues the authority and the server's certificate (for `127.0.0.1`), binds a free loopback
/// port and serves on it until the process ends.
pub async fn start() -> Result<TlsEndpoint, EndpointError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "activelog cold-start test CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .signed_by(&server_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let served = Arc::new(Served::default());
    let counted = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // As AWS's endpoints do: without it, a response written in more than one TLS record
            // waits for the client's delayed ACK (Nagle), 40 ms on Linux, which the relay's ten
            // outbox-shard queries met on their first invoke (50 ms against 3.9 ms in plain HTTP).
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                // A killed function drops its connection, mid-handshake or mid-request.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                counted.handshakes.fetch_add(1, Ordering::SeqCst);
                let service = service_fn(|request| {
                    let counted = counted.clone();
                    async move {
                        let response = answer(request).await;
                        counted.calls.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(TlsEndpoint {
        url: format!("https://{address}"),
        ca_pem: ca_cert.pem(),
        served,
    })
}

/// Writes the authority's PEM where the functions' `SSL_CERT_FILE` will point.
pub fn write_ca(endpoint: &TlsEndpoint, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, &endpoint.ca_pem)
}

/// The smallest successful answer to the call `target` names.
fn body_for(target: &str) -> &'static str {
    match target.rsplit('.').next().unwrap_or_default() {
        "PutEvents" => r#"{"FailedEntryCount":0,"Entries":[{"EventId":"cold-start-event"}]}"#,
        "Query" => r#"{"Items":[],"Count":0,"ScannedCount":0}"#,
        // TransactWriteItems, DeleteItem, GetItem (nothing found), UpdateItem, PutItem.
        _ => "{}",
    }
}

async fn answer(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The whole body is read, as a real endpoint does before it answers.
    let _ = request.into_body().collect().await;
    let (content_type, body) = match &target {
        // EventBridge speaks AWS JSON 1.1, DynamoDB 1.0.
        Some(target) if target.starts_with("AWSEvents.") => {
            ("application/x-amz-json-1.1", body_for(target))
        }
        Some(target) => ("application/x-amz-json-1.0", body_for(target)),
        None => ("text/plain", "healthy: activelog cold-start endpoint"),
    };
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("x-amzn-requestid", "cold-start-request")
        .body(Full::new(Bytes::from_static(body.as_bytes())));
    response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::body_for;

    #[test]
    fn each_call_gets_the_smallest_successful_answer() {
        assert!(body_for("AWSEvents.PutEvents").contains("\"FailedEntryCount\":0"));
        assert!(body_for("DynamoDB_20120810.Query").contains("\"Items\":[]"));
        assert_eq!(body_for("DynamoDB_20120810.TransactWriteItems"), "{}");
    }
}
