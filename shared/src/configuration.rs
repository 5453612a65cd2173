//! Every setting a process reads, named once. Functions read only the variables they need, and a
//! missing or malformed one stops start-up with an error that names it.

use std::path::PathBuf;

use time::Duration;

use crate::domain::{InvalidProjectionVersion, ProjectionVersion};

/// `memory` runs a function on in-memory adapters (no AWS at all); anything else, or unset, uses AWS.
pub const ADAPTERS: &str = "ACTIVELOG_ADAPTERS";
/// A JSON file of activities to load into the in-memory store at start-up (memory mode only).
pub const SEED_FILE: &str = "ACTIVELOG_SEED_FILE";
/// The DynamoDB table holding activities, outbox, stats, markers and idempotency records.
pub const TABLE_NAME: &str = "TABLE_NAME";
/// The EventBridge bus events are published to.
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
/// The secret list cursors are sealed with (at least 32 bytes).
pub const CURSOR_SECRET: &str = "CURSOR_SECRET";
/// The Secrets Manager secret (ARN or name) holding list-activities' cursor key ring, read once
/// at init in AWS mode (see `CursorKeys::from_json` for its shape).
pub const CURSOR_SECRET_ARN: &str = "CURSOR_SECRET_ARN";
/// How old an outbox record must be before the relay publishes it (seconds).
pub const OUTBOX_GRACE_SECONDS: &str = "OUTBOX_GRACE_SECONDS";
/// Queue URLs the local stack polls in `--aws` mode.
/// `1` opens the SDK's TLS connection during init (docs/benchmarks.md, "Warming the connection").
pub const WARM_CONNECTIONS: &str = "ACTIVELOG_WARM_CONNECTIONS";
pub const STATS_QUEUE_URL: &str = "STATS_QUEUE_URL";
pub const ACHIEVEMENTS_QUEUE_URL: &str = "ACHIEVEMENTS_QUEUE_URL";
pub const STATS_DLQ_URL: &str = "STATS_DLQ_URL";
pub const ACHIEVEMENTS_DLQ_URL: &str = "ACHIEVEMENTS_DLQ_URL";
/// The statistics projection version update-stats writes and get-stats reads (`1` when unset):
/// see `docs/operations.md`, "Switching to a new projection version".
pub const STATS_PROJECTION_VERSION: &str = "STATS_PROJECTION_VERSION";

/// Every variable the code reads, for the consistency test against `template.yaml`.
pub const ALL_VARIABLES: &[&str] = &[
    ADAPTERS,
    SEED_FILE,
    TABLE_NAME,
    EVENT_BUS_NAME,
    CURSOR_SECRET,
    CURSOR_SECRET_ARN,
    OUTBOX_GRACE_SECONDS,
    WARM_CONNECTIONS,
    STATS_QUEUE_URL,
    ACHIEVEMENTS_QUEUE_URL,
    STATS_DLQ_URL,
    ACHIEVEMENTS_DLQ_URL,
    STATS_PROJECTION_VERSION,
    OTEL_EXPORTER_OTLP_ENDPOINT,
];

/// Where spans are exported over OTLP/HTTP; unset or empty, nowhere. Read by `crate::traces`
/// (with the other standard `OTEL_*` variables the OpenTelemetry SDK reads itself).
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The cursor secret used when none is configured in memory mode; never used with AWS adapters.
pub const LOCAL_CURSOR_SECRET: &str = "activelog-local-cursor-secret-not-for-production";

pub const MIN_CURSOR_SECRET_BYTES: usize = 32;

/// Where list-activities' cursor keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorKeySource {
    /// A Secrets Manager secret (ARN or name) holding a key ring.
    SecretsManager(String),
    /// One key, given directly.
    Plain(Vec<u8>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {variable} is invalid: {reason}")]
    Invalid {
        variable: &'static str,
        reason: String,
    },
}

/// Which adapters a process runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterMode {
    Memory,
    Aws,
}

/// Reads settings from a source of variables (the environment, or a map in tests).
pub struct Settings<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl Settings<fn(&str) -> Option<String>> {
    pub fn from_env() -> Self {
        Settings {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn from_lookup(lookup: F) -> Self {
        Self { lookup }
    }

    fn optional(&self, variable: &'static str) -> Option<String> {
        (self.lookup)(variable).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, variable: &'static str) -> Result<String, ConfigError> {
        self.optional(variable)
            .ok_or(ConfigError::Missing(variable))
    }

    pub fn adapter_mode(&self) -> Result<AdapterMode, ConfigError> {
        match self.optional(ADAPTERS).as_deref() {
            None | Some("aws") => Ok(AdapterMode::Aws),
            Some("memory") => Ok(AdapterMode::Memory),
            Some(other) => Err(ConfigError::Invalid {
                variable: ADAPTERS,
                reason: format!("`{other}` is neither `memory` nor `aws`"),
            }),
        }
    }

    pub fn table_name(&self) -> Result<String, ConfigError> {
        self.required(TABLE_NAME)
    }

    pub fn event_bus_name(&self) -> Result<String, ConfigError> {
        self.required(EVENT_BUS_NAME)
    }

    /// Where to open a connection during init for `service` (`dynamodb`), when
    /// [`WARM_CONNECTIONS`] asks for it: `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`,
    /// else the service's regional endpoint. `None` when warming is off or no region is known.
    pub fn warm_endpoint(&self, service: &str) -> Option<String> {
        if !matches!(
            self.optional(WARM_CONNECTIONS).as_deref(),
            Some("1" | "true")
        ) {
            return None;
        }
        let variable = |name: &str| (self.lookup)(name).filter(|v| !v.trim().is_empty());
        variable(&format!(
            "AWS_ENDPOINT_URL_{}",
            service.to_ascii_uppercase()
        ))
        .or_else(|| variable("AWS_ENDPOINT_URL"))
        .or_else(|| {
            let region = variable("AWS_REGION")?;
            let domain = if region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            Some(format!("https://{service}.{region}.{domain}/"))
        })
    }

    pub fn seed_file(&self) -> Option<PathBuf> {
        self.optional(SEED_FILE).map(PathBuf::from)
    }

    /// The cursor secret; in memory mode a fixed local one when unset.
    pub fn cursor_secret(&self, mode: AdapterMode) -> Result<Vec<u8>, ConfigError> {
        let secret = match (self.optional(CURSOR_SECRET), mode) {
            (Some(secret), _) => secret,
            (None, AdapterMode::Memory) => LOCAL_CURSOR_SECRET.to_owned(),
            (None, AdapterMode::Aws) => return Err(ConfigError::Missing(CURSOR_SECRET)),
        };
        if secret.len() < MIN_CURSOR_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                variable: CURSOR_SECRET,
                reason: format!("must be at least {MIN_CURSOR_SECRET_BYTES} bytes"),
            });
        }
        Ok(secret.into_bytes())
    }

    /// Where the cursor keys come from: in AWS mode the secret named by `CURSOR_SECRET_ARN` when
    /// set (what the template does); otherwise one key from `CURSOR_SECRET` (local runs against
    /// moto, or a fixed local key in memory mode, which never touches AWS).
    pub fn cursor_keys(&self, mode: AdapterMode) -> Result<CursorKeySource, ConfigError> {
        match (mode, self.optional(CURSOR_SECRET_ARN)) {
            (AdapterMode::Aws, Some(secret)) => Ok(CursorKeySource::SecretsManager(secret)),
            _ => self.cursor_secret(mode).map(CursorKeySource::Plain),
        }
    }

    /// The statistics projection version to read or write: v1 when unset.
    pub fn stats_projection_version(&self) -> Result<ProjectionVersion, ConfigError> {
        match self.optional(STATS_PROJECTION_VERSION) {
            None => Ok(ProjectionVersion::FIRST),
            Some(raw) => raw
                .parse()
                .map_err(|e: InvalidProjectionVersion| ConfigError::Invalid {
                    variable: STATS_PROJECTION_VERSION,
                    reason: e.to_string(),
                }),
        }
    }

    pub fn outbox_grace(&self) -> Result<Duration, ConfigError> {
        match self.optional(OUTBOX_GRACE_SECONDS) {
            None => Ok(Duration::seconds(60)),
            Some(raw) => raw
                .parse::<u32>()
                .map(|s| Duration::seconds(i64::from(s)))
                .map_err(|_| ConfigError::Invalid {
                    variable: OUTBOX_GRACE_SECONDS,
                    reason: "must be a whole number of seconds".into(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Settings<impl Fn(&str) -> Option<String>> {
        Settings::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn missing_variables_are_named() {
        let s = settings(&[]);
        assert_eq!(s.table_name(), Err(ConfigError::Missing("TABLE_NAME")));
        assert_eq!(s.adapter_mode(), Ok(AdapterMode::Aws));
        assert_eq!(
            s.cursor_secret(AdapterMode::Aws),
            Err(ConfigError::Missing("CURSOR_SECRET"))
        );
        assert!(s.cursor_secret(AdapterMode::Memory).is_ok());
    }

    #[test]
    fn malformed_variables_are_named() {
        let s = settings(&[
            ("ACTIVELOG_ADAPTERS", "mem"),
            ("CURSOR_SECRET", "short"),
            ("OUTBOX_GRACE_SECONDS", "soon"),
        ]);
        assert!(matches!(
            s.adapter_mode(),
            Err(ConfigError::Invalid {
                variable: "ACTIVELOG_ADAPTERS",
                ..
            })
        ));
        assert!(matches!(
            s.cursor_secret(AdapterMode::Aws),
            Err(ConfigError::Invalid {
                variable: "CURSOR_SECRET",
                ..
            })
        ));
        assert!(matches!(
            s.outbox_grace(),
            Err(ConfigError::Invalid {
                variable: "OUTBOX_GRACE_SECONDS",
                ..
            })
        ));
    }
}
