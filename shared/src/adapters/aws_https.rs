//! The HTTPS client every AWS SDK client of a process sends its calls through: hyper's HTTP/1.1
//! client over rustls with the *ring* provider, one TLS configuration per process.
//!
//! Why not the SDK's default client: measured with the cold-start harness (docs/benchmarks.md),
//! it rebuilt its TLS configuration (every root certificate of the system's store parsed again)
//! each time a service client was created, plus once more at the first call, and it linked the
//! aws-lc crypto library and an HTTP/2 stack that DynamoDB and EventBridge calls never use. Here
//! the configuration is built once, on the first call that needs it, and shared.
//!
//! Roots of trust: when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, exactly the certificates they
//! name (a custom CA bundle, or the system's); otherwise the Mozilla roots compiled into the
//! binary (`webpki-roots`), so that a cold start reads and parses no certificate file. Server
//! certificates are always verified against those roots.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};

/// Where the roots of trust come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustRoots {
    /// The Mozilla roots compiled into the binary: no file read at start-up.
    Bundled,
    /// The PEM certificates of a file and/or a directory (`SSL_CERT_FILE`, `SSL_CERT_DIR`).
    Files {
        file: Option<PathBuf>,
        dir: Option<PathBuf>,
    },
}

impl TrustRoots {
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set and not empty, else [`Self::Bundled`].
    pub fn from_env() -> Self {
        Self::from_variables(
            std::env::var_os("SSL_CERT_FILE"),
            std::env::var_os("SSL_CERT_DIR"),
        )
    }

    /// The roots the values of `SSL_CERT_FILE` and `SSL_CERT_DIR` ask for (empty = unset).
    pub fn from_variables(
        file: Option<std::ffi::OsString>,
        dir: Option<std::ffi::OsString>,
    ) -> Self {
        let path = |value: Option<std::ffi::OsString>| {
            value.filter(|value| !value.is_empty()).map(PathBuf::from)
        };
        match (path(file), path(dir)) {
            (None, None) => Self::Bundled,
            (file, dir) => Self::Files { file, dir },
        }
    }

    /// The root store. A file that cannot be read or holds no certificate leaves the store
    /// without it: every connection then fails verification, as it should, and the reason is
    /// logged once here.
    pub fn load(&self) -> RootCertStore {
        match self {
            Self::Bundled => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Self::Files { file, dir } => {
                let found =
                    rustls_native_certs::load_certs_from_paths(file.as_deref(), dir.as_deref());
                for error in &found.errors {
                    tracing::warn!(%error, "reading trusted certificates");
                }
                let mut store = RootCertStore::empty();
                let (valid, invalid) = store.add_parsable_certificates(found.certs);
                if valid == 0 {
                    tracing::warn!(
                        ?file,
                        ?dir,
                        invalid,
                        "no usable trusted certificate: every TLS connection will fail"
                    );
                }
                store
            }
        }
    }
}

/// The TLS configuration of every connection: *ring*, TLS 1.2 and 1.3. No ALPN: HTTP/1.1 only
/// (hyper-rustls refuses a configuration with protocols already set).
pub fn tls_config(roots: &TrustRoots) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports the default versions; this cannot fail.
        .unwrap_or_else(|_| ClientConfig::builder());
    builder
        .with_root_certificates(roots.load())
        .with_no_client_auth()
}

type HyperClient = Client<HttpsConnector<TcpConnector>, SdkBody>;

/// A connector's timeouts: connect, read.
type Timeouts = (Option<Duration>, Option<Duration>);

/// The SDK's HTTP client: hands each SDK client a connector for its timeout settings, built
/// once per distinct setting over the one TLS configuration. Clones share everything.
#[derive(Debug, Clone)]
pub struct AwsHttpsClient {
    roots: Arc<TrustRoots>,
    tls: Arc<OnceLock<Arc<ClientConfig>>>,
    pools: Arc<Mutex<HashMap<Timeouts, HttpsCalls>>>,
}

impl AwsHttpsClient {
    pub fn new(roots: TrustRoots) -> Self {
        Self {
            roots: Arc::new(roots),
            tls: Arc::new(OnceLock::new()),
            pools: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn tls(&self) -> Arc<ClientConfig> {
        self.tls
            .get_or_init(|| Arc::new(tls_config(&self.roots)))
            .clone()
    }

    /// The pool of connections with the given timeouts (the SDK asks once per call attempt;
    /// the TLS configuration is built on the first ask).
    pub fn calls(
        &self,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> HttpsCalls {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pools
            .entry((connect_timeout, read_timeout))
            .or_insert_with(|| HttpsCalls::new(self.tls(), connect_timeout, read_timeout))
            .clone()
    }
}

impl HttpClient for AwsHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.calls(settings.connect_timeout(), settings.read_timeout()))
    }
}

/// One pool of connections: sends the SDK's requests, translates hyper's errors into the SDK's
/// kinds so that its retry policy sees timeouts and broken connections as transient.
#[derive(Debug, Clone)]
pub struct HttpsCalls {
    client: HyperClient,
    read_timeout: Option<Duration>,
}

impl HttpsCalls {
    fn new(
        tls: Arc<ClientConfig>,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Self {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for HttpsCalls {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answered = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(answered) => answered,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
                None => sent.await,
            };
            let response = answered
                .map_err(|error| connector_error(error.into()))?
                .map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response)
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// The SDK's kind of a failed call: a timeout, a connection that failed or broke (both retried),
/// a request the client refused to send, or something else (not retried).
fn connector_error(error: BoxError) -> ConnectorError {
    let io = source::<std::io::Error>(error.as_ref());
    if io.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
        return ConnectorError::timeout(error);
    }
    if let Some(hyper_error) = source::<hyper::Error>(error.as_ref()) {
        if hyper_error.is_timeout() {
            return ConnectorError::timeout(error);
        }
        if hyper_error.is_user() {
            return ConnectorError::user(error);
        }
        if hyper_error.is_closed()
            || hyper_error.is_canceled()
            || hyper_error.is_incomplete_message()
        {
            return ConnectorError::io(error);
        }
    }
    let connect = source::<hyper_util::client::legacy::Error>(error.as_ref())
        .is_some_and(hyper_util::client::legacy::Error::is_connect);
    if connect || io.is_some() {
        return ConnectorError::io(error);
    }
    ConnectorError::other(error, None)
}

fn source<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// Opens (and pools) a connection to `endpoint` ahead of the first call: a `GET /`, whose
/// answer is read and dropped. The SDK's first call to the same scheme, host and port then
/// reuses the connection instead of paying the TCP and TLS handshakes. Failure only means the
/// first call connects itself; it is logged, never fatal.
pub async fn warm(calls: &HttpsCalls, endpoint: &str) {
    let request = match http::Request::get(endpoint).body(SdkBody::empty()) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(endpoint, %error, "connection warm-up: not a URL");
            return;
        }
    };
    match calls.client.request(request).await {
        Ok(response) => {
            use http_body_util::BodyExt;
            let status = response.status().as_u16();
            // Read to the end, so that the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            tracing::debug!(endpoint, status, "connection warmed");
        }
        Err(error) => tracing::warn!(endpoint, %error, "connection warm-up failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A certificate authority made for one test, and a server certificate for 127.0.0.1 it
    /// issued.
    struct Authority {
        ca_pem: String,
        server_chain: Vec<CertificateDer<'static>>,
        server_key: PrivateKeyDer<'static>,
    }

    fn authority(name: &str) -> Authority {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        Authority {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server.der().clone()],
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        }
    }

    /// An HTTPS server on loopback that answers every request `200 ok`; its URL.
    async fn https_server(authority: &Authority) -> String {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            authority.server_chain.clone(),
            authority.server_key.clone_key(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = tls.flush().await;
                });
            }
        });
        format!("https://{address}/")
    }

    async fn get(client: &AwsHttpsClient, url: &str) -> Result<u16, ConnectorError> {
        let request = http::Request::get(url).body(SdkBody::empty()).unwrap();
        let response = client
            .calls(Some(Duration::from_secs(3)), None)
            .call(HttpRequest::try_from(request).unwrap())
            .await?;
        Ok(response.status().as_u16())
    }

    fn ca_file(authority: &Authority, name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "activelog-{name}-{}-{}.pem",
            std::process::id(),
            ulid::Ulid::new()
        ));
        std::fs::write(&path, &authority.ca_pem).unwrap();
        path
    }

    #[tokio::test]
    async fn a_custom_ca_bundle_named_by_ssl_cert_file_is_trusted() {
        let authority = authority("activelog test CA");
        let url = https_server(&authority).await;
        let bundle = ca_file(&authority, "ca");
        let roots = TrustRoots::from_variables(Some(bundle.clone().into()), None);
        assert_eq!(
            roots,
            TrustRoots::Files {
                file: Some(bundle),
                dir: None
            }
        );
        let client = AwsHttpsClient::new(roots);
        assert_eq!(get(&client, &url).await.unwrap(), 200);
        // The connection is pooled: a second call reuses it.
        assert_eq!(get(&client, &url).await.unwrap(), 200);
    }

    #[tokio::test]
    async fn a_server_no_trusted_root_vouches_for_is_refused() {
        let authority = authority("activelog test CA");
        let url = https_server(&authority).await;

        // The compiled-in roots do not know the test's authority.
        let bundled = AwsHttpsClient::new(TrustRoots::from_variables(None, None));
        let refused = get(&bundled, &url).await.unwrap_err();
        assert!(
            format!("{:?}", refused).contains("UnknownIssuer"),
            "{refused:?}"
        );

        // Nor does a bundle that holds another authority.
        let other = ca_file(&self::authority("another CA"), "other-ca");
        let other = AwsHttpsClient::new(TrustRoots::from_variables(Some(other.into()), None));
        assert!(get(&other, &url).await.is_err());
    }

    #[test]
    fn unset_or_empty_variables_mean_the_compiled_in_roots() {
        assert_eq!(TrustRoots::from_variables(None, None), TrustRoots::Bundled);
        assert_eq!(
            TrustRoots::from_variables(Some("".into()), Some("".into())),
            TrustRoots::Bundled
        );
        assert!(TrustRoots::Bundled.load().len() > 100);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let client = AwsHttpsClient::new(TrustRoots::Bundled);
        let error = get(&client, &closed).await.unwrap_err();
        assert!(error.is_io(), "{error:?}");
    }
}
