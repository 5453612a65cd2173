//! The outbox relay: publishes whatever the HTTP path could not (a failed publish, or a process that
//! died between its transaction and its publish) and removes what the bus accepted. Duplicates are
//! possible and harmless: consumers deduplicate on `event_id`.

use std::sync::Arc;

use time::Duration;

use super::ports::{Clock, EventPublisher, Outbox, PublishError, StoreError};

/// How many records one relay pass reads at most.
pub const RELAY_BATCH: usize = 100;

/// What one relay run did; also the `relay-outbox` function's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

#[derive(Clone)]
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    /// Records younger than this are left alone: the HTTP path is probably still publishing them.
    grace: Duration,
}

impl OutboxRelay {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        grace: Duration,
    ) -> Self {
        Self {
            outbox,
            publisher,
            clock,
            grace,
        }
    }

    /// Publishes every pending record older than the grace period, in passes of [`RELAY_BATCH`].
    pub async fn relay_pending(&self) -> Result<RelayReport, RelayError> {
        let mut report = RelayReport::default();
        let older_than = self.clock.now() - self.grace;
        loop {
            let records = self.outbox.pending(older_than, RELAY_BATCH).await?;
            if records.is_empty() {
                break;
            }
            let outcome = self.publisher.publish(&records).await?;
            let accepted = outcome.accepted(&records);
            self.outbox.acknowledge(&accepted).await?;
            for failed in &outcome.failed {
                tracing::warn!(event_id = %failed.event_id, code = %failed.error_code, message = %failed.error_message, "relay could not publish event; it stays in the outbox");
            }
            report.published += accepted.len();
            report.failed += outcome.failed.len();
            // Records that failed stay pending; stop rather than read them again in this pass.
            if !outcome.failed.is_empty() || records.len() < RELAY_BATCH {
                break;
            }
        }
        if report.published > 0 || report.failed > 0 {
            tracing::info!(
                published = report.published,
                failed = report.failed,
                "outbox relayed"
            );
        }
        Ok(report)
    }
}
