//! Opening AMQP connections, and the broker URL that must never reach a log in full: it usually
//! carries a password. Every error of this adapter names the broker by its redacted URL.

use std::fmt;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};

pub use crate::adapters::broker_url::redact;

/// How long a connection attempt may take before the broker counts as unreachable, so that a
/// black-holed address fails start-up instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An `amqp://` or `amqps://` URL. `Display` and `Debug` show it with the password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl(String);

impl BrokerUrl {
    /// Takes a URL whose scheme is `amqp` or `rabbitmq` (an alias of `amqp` that reads better in
    /// `--broker rabbitmq://...`). TLS (`amqps`) is not built in: the client is compiled without
    /// a TLS stack, so such a URL is refused here rather than failing obscurely at connect.
    pub fn parse(url: &str) -> Result<Self, RabbitMqError> {
        let url = url.trim();
        let normalised = if let Some(rest) = url.strip_prefix("rabbitmq://") {
            format!("amqp://{rest}")
        } else {
            url.to_owned()
        };
        if normalised.starts_with("amqps://") || normalised.starts_with("rabbitmqs://") {
            return Err(RabbitMqError::InvalidUrl {
                url: redact(url),
                reason:
                    "TLS (amqps://) is not built into this client; use amqp:// on a trusted network"
                        .into(),
            });
        }
        if !normalised.starts_with("amqp://") {
            return Err(RabbitMqError::InvalidUrl {
                url: redact(url),
                reason: "the scheme must be amqp:// or rabbitmq://".into(),
            });
        }
        normalised
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|reason| RabbitMqError::InvalidUrl {
                url: redact(url),
                reason: reason.to_string(),
            })?;
        Ok(Self(normalised))
    }

    /// The URL with its password; for the client only.
    fn secret(&self) -> &str {
        &self.0
    }

    /// The same broker in another virtual host (percent-encoded as AMQP URLs require).
    pub fn with_vhost(&self, vhost: &str) -> Self {
        let scheme_end = self.0.find("://").map_or(0, |i| i + 3);
        let path_start = self.0[scheme_end..]
            .find('/')
            .map_or(self.0.len(), |i| scheme_end + i);
        let authority = &self.0[..path_start];
        let query = self.0[path_start..]
            .find('?')
            .map(|i| &self.0[path_start + i..])
            .unwrap_or("");
        Self(format!("{authority}/{}{query}", encode_vhost(vhost)))
    }

    /// Opens a connection, or says why not, naming the broker without its password.
    pub async fn connect(&self) -> Result<Connection, RabbitMqError> {
        let properties = ConnectionProperties::default().with_connection_name("activelog".into());
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(self.secret(), properties),
        )
        .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(RabbitMqError::Unreachable {
                url: self.to_string(),
                reason: error.to_string(),
            }),
            Err(_) => Err(RabbitMqError::Unreachable {
                url: self.to_string(),
                reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
            }),
        }
    }

    /// A connection and one channel on it.
    pub async fn channel(&self) -> Result<(Connection, Channel), RabbitMqError> {
        let connection = self.connect().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.failed("opening a channel", e))?;
        Ok((connection, channel))
    }

    pub(crate) fn failed(&self, doing: &str, error: lapin::Error) -> RabbitMqError {
        RabbitMqError::Broker {
            url: self.to_string(),
            doing: doing.to_owned(),
            reason: error.to_string(),
        }
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

fn encode_vhost(vhost: &str) -> String {
    vhost
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RabbitMqError {
    #[error("broker URL {url} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("RabbitMQ broker at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("RabbitMQ broker at {url}: {doing} failed: {reason}")]
    Broker {
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
        let url = BrokerUrl::parse("rabbitmq://guest:s3cret@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(url.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            redact("amqps://u:p@ss@broker:5671/vh?heartbeat=10"),
            "amqps://u:***@broker:5671/vh?heartbeat=10"
        );
        let tls = BrokerUrl::parse("amqps://u:pw-tls@broker:5671/").unwrap_err();
        assert!(tls.to_string().contains("TLS"), "{tls}");
        assert!(!tls.to_string().contains("pw-tls"), "{tls}");
        assert_eq!(redact("amqp://127.0.0.1/"), "amqp://127.0.0.1/");
        let error = BrokerUrl::parse("kafka://u:hidden@x").unwrap_err();
        assert!(!error.to_string().contains("hidden"), "{error}");
    }

    #[test]
    fn another_vhost_is_percent_encoded() {
        let url = BrokerUrl::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(
            url.with_vhost("activelog/test 1").secret(),
            "amqp://guest:guest@127.0.0.1:5672/activelog%2Ftest%201"
        );
        assert_eq!(
            BrokerUrl::parse("amqp://h")
                .unwrap()
                .with_vhost("v")
                .secret(),
            "amqp://h/v"
        );
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_a_clear_error_naming_the_redacted_url() {
        let url = BrokerUrl::parse("amqp://guest:topsecret@127.0.0.1:1/%2f").unwrap();
        let error = url.connect().await.unwrap_err().to_string();
        assert!(
            error.contains("amqp://guest:***@127.0.0.1:1/%2f"),
            "{error}"
        );
        assert!(!error.contains("topsecret"), "{error}");
    }
}
