//! Reaching a Kafka cluster: the `kafka://host:port[,host:port...]` URL of `--broker`, the client
//! settings every client of this adapter shares, and the one error type of the adapter. The
//! client is librdkafka (rdkafka, bundled), built without TLS or SASL: plaintext listeners on a
//! trusted network (loopback, a private subnet). Amazon MSK's IAM or TLS listeners are reached by
//! Lambda's event source mapping instead (`template-msk.yaml`), not by this adapter.

use std::fmt;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

use crate::adapters::broker_url::redact;

/// How long a client may wait for the cluster before the broker counts as unreachable, so that a
/// black-holed address fails start-up instead of hanging it.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bootstrap servers of a cluster, from `kafka://host:port[,host:port...]`.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaUrl {
    bootstrap_servers: String,
}

impl KafkaUrl {
    /// Takes `kafka://host:port` (several servers separated by commas). Credentials, paths and
    /// TLS schemes are refused by name: this client speaks plaintext only.
    pub fn parse(url: &str) -> Result<Self, KafkaAdapterError> {
        let url = url.trim();
        let invalid = |reason: &str| KafkaAdapterError::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let Some(rest) = url.strip_prefix("kafka://") else {
            return Err(invalid(
                "the scheme must be kafka:// (TLS and SASL are not built into this client)",
            ));
        };
        if rest.contains('@') {
            return Err(invalid(
                "credentials are not supported: this client speaks plaintext to a trusted network",
            ));
        }
        let servers = rest.trim_end_matches('/');
        if servers.is_empty() || servers.contains(['/', '?', '#']) {
            return Err(invalid("expected kafka://host:port[,host:port...]"));
        }
        for server in servers.split(',') {
            let port = server
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
                return Err(invalid(&format!("`{server}` is not host:port")));
            }
        }
        Ok(Self {
            bootstrap_servers: servers.to_owned(),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The settings every client of this adapter starts from.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "activelog")
            .set("socket.connection.setup.timeout.ms", "5000")
            // Reconnect quickly after a broker restart, but do not hammer a broker that is down.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000")
            // librdkafka logs every dropped connection at error level; the adapter reports what
            // matters itself (an event left in the outbox, a consumer reconnecting).
            .set("log_level", "3");
        config
    }

    pub(crate) fn failed(&self, doing: &str, error: impl fmt::Display) -> KafkaAdapterError {
        KafkaAdapterError::Broker {
            url: self.to_string(),
            doing: doing.to_owned(),
            reason: error.to_string(),
        }
    }

    pub(crate) fn unreachable(&self, error: &KafkaError) -> KafkaAdapterError {
        KafkaAdapterError::Unreachable {
            url: self.to_string(),
            reason: error.to_string(),
        }
    }
}

impl fmt::Display for KafkaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}", self.bootstrap_servers)
    }
}

impl fmt::Debug for KafkaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaUrl({self})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaAdapterError {
    #[error("broker URL {url} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("Kafka cluster at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Kafka cluster at {url}: {doing} failed: {reason}")]
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
    fn bootstrap_servers_are_read_from_the_url() {
        let url = KafkaUrl::parse("kafka://127.0.0.1:9092,broker-2:19092/").unwrap();
        assert_eq!(url.bootstrap_servers(), "127.0.0.1:9092,broker-2:19092");
        assert_eq!(url.to_string(), "kafka://127.0.0.1:9092,broker-2:19092");
    }

    #[test]
    fn what_this_client_cannot_speak_is_refused_by_name_without_secrets() {
        let tls = KafkaUrl::parse("kafkas://b:9094").unwrap_err().to_string();
        assert!(tls.contains("TLS"), "{tls}");
        let credentials = KafkaUrl::parse("kafka://user:s3cret@b:9092")
            .unwrap_err()
            .to_string();
        assert!(credentials.contains("credentials"), "{credentials}");
        assert!(!credentials.contains("s3cret"), "{credentials}");
        for bad in [
            "kafka://",
            "kafka://b",
            "kafka://b:x",
            "kafka://:9092",
            "kafka://b:9092/t",
        ] {
            assert!(KafkaUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
