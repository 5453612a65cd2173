//! Opening Redis connections, and the Redis URL that must never reach a log in full (it may carry
//! a password). Every error of this adapter names the server by its redacted URL.

use std::fmt;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::adapters::broker_url::redact;

/// How long a connection attempt may take before the server counts as unreachable, so that a
/// black-holed address fails start-up instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A `redis://` URL. `Display` and `Debug` show it with the password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Takes a `redis://` URL. TLS (`rediss://`) is not built in (the client is compiled without
    /// a TLS stack), so such a URL is refused here rather than failing obscurely at connect.
    pub fn parse(url: &str) -> Result<Self, RedisStreamsError> {
        let url = url.trim();
        if url.starts_with("rediss://") {
            return Err(RedisStreamsError::InvalidUrl {
                url: redact(url),
                reason: "TLS (rediss://) is not built into this client; use redis:// on a trusted network".into(),
            });
        }
        if !url.starts_with("redis://") {
            return Err(RedisStreamsError::InvalidUrl {
                url: redact(url),
                reason: "the scheme must be redis://".into(),
            });
        }
        redis::Client::open(url).map_err(|e| RedisStreamsError::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        })?;
        Ok(Self(url.to_owned()))
    }

    /// Opens a connection whose commands may take up to `response_timeout` (a blocking read
    /// needs longer than its block time), or says why not, naming the server without its
    /// password.
    pub async fn connect(
        &self,
        response_timeout: Duration,
    ) -> Result<MultiplexedConnection, RedisStreamsError> {
        let unreachable = |reason: String| RedisStreamsError::Unreachable {
            url: self.to_string(),
            reason,
        };
        let client =
            redis::Client::open(self.0.as_str()).map_err(|e| unreachable(e.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }

    pub(crate) fn failed(&self, doing: &str, error: redis::RedisError) -> RedisStreamsError {
        RedisStreamsError::Server {
            url: self.to_string(),
            doing: doing.to_owned(),
            reason: error.to_string(),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RedisStreamsError {
    #[error("Redis URL {url} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("Redis at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Redis at {url}: {doing} failed: {reason}")]
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
        let url = RedisUrl::parse("redis://:s3cret@127.0.0.1:6379/0").unwrap();
        assert_eq!(url.to_string(), "redis://:***@127.0.0.1:6379/0");
        assert!(!format!("{url:?}").contains("s3cret"));
        let tls = RedisUrl::parse("rediss://u:pw-tls@host:6380").unwrap_err();
        assert!(tls.to_string().contains("TLS"), "{tls}");
        assert!(!tls.to_string().contains("pw-tls"), "{tls}");
        let other = RedisUrl::parse("nats://u:hidden@x").unwrap_err();
        assert!(!other.to_string().contains("hidden"), "{other}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error_naming_the_redacted_url() {
        let url = RedisUrl::parse("redis://:topsecret@127.0.0.1:1/0").unwrap();
        let error = url
            .connect(Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("redis://:***@127.0.0.1:1/0"), "{error}");
        assert!(!error.contains("topsecret"), "{error}");
    }
}
