//! Opening NATS connections, and the server URL that must never reach a log in full (it may carry
//! a password or a token). Every error of this adapter names the server by its redacted URL.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::{self, Context};

use crate::adapters::broker_url::redact;

/// How long a connection attempt may take before the server counts as unreachable, so that a
/// black-holed address fails start-up instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a JetStream request (a publish acknowledgement, a stream or consumer call) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A `nats://` URL. `Display` and `Debug` show it with the password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl(String);

impl NatsUrl {
    /// Takes a `nats://` URL. TLS (`tls://`) is refused: this stack speaks to loopback and
    /// private-network servers, and a TLS URL should fail here, not obscurely at connect.
    pub fn parse(url: &str) -> Result<Self, NatsError> {
        let url = url.trim();
        if !url.starts_with("nats://") {
            return Err(NatsError::InvalidUrl {
                url: redact(url),
                reason: "the scheme must be nats://".into(),
            });
        }
        let host = url["nats://".len()..]
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(NatsError::InvalidUrl {
                url: redact(url),
                reason: "expected nats://[user:password@]host:port".into(),
            });
        }
        Ok(Self(url.trim_end_matches('/').to_owned()))
    }

    /// A client connection and its JetStream context, or why not, naming the server without its
    /// password. The client reconnects by itself when the connection drops.
    pub async fn connect(&self) -> Result<(async_nats::Client, Context), NatsError> {
        let client = async_nats::ConnectOptions::new()
            .name("activelog")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(self.0.as_str())
            .await
            .map_err(|e| NatsError::Unreachable {
                url: self.to_string(),
                reason: e.to_string(),
            })?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(REQUEST_TIMEOUT);
        Ok((client, context))
    }

    pub(crate) fn failed(&self, doing: &str, error: impl fmt::Display) -> NatsError {
        NatsError::Server {
            url: self.to_string(),
            doing: doing.to_owned(),
            reason: error.to_string(),
        }
    }
}

impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NatsUrl({self})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS URL {url} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("NATS server at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("NATS server at {url}: {doing} failed: {reason}")]
    Server {
        url: String,
        doing: String,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = NatsUrl::parse("nats://app:s3cret@127.0.0.1:4222").unwrap();
        assert_eq!(url.to_string(), "nats://app:***@127.0.0.1:4222");
        assert!(!format!("{url:?}").contains("s3cret"));
        let tls = NatsUrl::parse("tls://u:pw-tls@host:4222").unwrap_err();
        assert!(!tls.to_string().contains("pw-tls"), "{tls}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error_naming_the_redacted_url() {
        let url = NatsUrl::parse("nats://app:topsecret@127.0.0.1:1").unwrap();
        let error = url.connect().await.unwrap_err().to_string();
        assert!(error.contains("nats://app:***@127.0.0.1:1"), "{error}");
        assert!(!error.contains("topsecret"), "{error}");
    }
}
