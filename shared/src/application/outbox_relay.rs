//! The outbox relay: publishes whatever the HTTP path could not (a failed publish, or a process that
//! died between its transaction and its publish) and removes what the bus accepted. Duplicates are
//! possible and harmless: consumers deduplicate on `event_id`.

use std::sync::Arc;

use time::Duration;

use super::ports::{Clock, EventPublisher, Outbox, OutboxRecord, PublishError, StoreError};

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
        let mut after: Option<OutboxRecord> = None;
        loop {
            let records = match &after {
                None => self.outbox.pending(older_than, RELAY_BATCH).await?,
                Some(last) => {
                    self.outbox
                        .pending_after(older_than, last, RELAY_BATCH)
                        .await?
                }
            };
            let Some(last) = records.last().cloned() else {
                break;
            };
            let outcome = self.publisher.publish(&records).await?;
            let accepted = outcome.accepted(&records);
            self.outbox.acknowledge(&accepted).await?;
            for failed in &outcome.failed {
                tracing::warn!(event_id = %failed.event_id, code = %failed.error_code, message = %failed.error_message, "relay could not publish event; it stays in the outbox");
            }
            report.published += accepted.len();
            report.failed += outcome.failed.len();
            if records.len() < RELAY_BATCH {
                break;
            }
            // Page on from the last record read, past any the bus refused: a record that always
            // fails must not hold back the ones behind it.
            after = Some(last);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{ManualClock, MemoryActivityStore, MemoryEventBus};
    use crate::domain::{EventId, EventType};
    use time::macros::datetime;

    fn record(n: u64) -> OutboxRecord {
        OutboxRecord {
            event_id: EventId::from_ulid(ulid::Ulid::from_parts(1, u128::from(n))),
            event_type: EventType::ActivityCreated,
            occurred_at: datetime!(2026-11-26 10:00 UTC) + Duration::seconds(n as i64),
            detail: "{}".into(),
            trace_header: None,
        }
    }

    /// More refused records than one pass reads must not starve the records behind them.
    #[tokio::test]
    async fn refused_records_do_not_hold_back_the_rest() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let store = Arc::new(MemoryActivityStore::new());
        for n in 0..250 {
            store.put_outbox_record(record(n));
        }
        let bus = Arc::new(MemoryEventBus::new(Vec::new()).unwrap());
        bus.refuse_next_entries(120, "InternalFailure");
        let relay = OutboxRelay::new(store.clone(), bus.clone(), clock, Duration::seconds(60));

        let report = relay.relay_pending().await.unwrap();

        assert_eq!(
            report,
            RelayReport {
                published: 130,
                failed: 120
            }
        );
        let left = store.outbox_records();
        assert_eq!(left.len(), 120);
        assert!(
            left.iter().all(|r| r.event_id < record(120).event_id),
            "only the refused ones stay"
        );
        let report = relay.relay_pending().await.unwrap();
        assert_eq!(
            report,
            RelayReport {
                published: 120,
                failed: 0
            }
        );
        assert!(store.outbox_records().is_empty());
    }
}
