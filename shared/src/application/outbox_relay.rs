//! The outbox relay: publishes whatever the HTTP path could not (a failed publish, or a process that
//! died between its transaction and its publish) and removes what the bus accepted. Duplicates are
//! possible and harmless: consumers deduplicate on `event_id`.

use std::sync::Arc;

use time::Duration;

use time::OffsetDateTime;
use tracing::Instrument;

use super::ports::{Clock, EventPublisher, Outbox, OutboxRecord, PublishError, StoreError};

/// How many records one relay pass reads at most.
pub const RELAY_BATCH: usize = 100;

/// What one relay run did; also the `relay-outbox` function's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayReport {
    pub published: usize,
    /// Records the bus refused (they stay in the outbox for the next run).
    pub failed: usize,
    /// The run stopped at its deadline with records possibly left to read.
    #[serde(default)]
    pub stopped_early: bool,
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
        self.relay_pending_until(None).await
    }

    /// As [`Self::relay_pending`], but starts no pass after the first at or after `stop_at`: a
    /// Lambda run killed at its timeout mid-pass would have published records without removing
    /// them (the next run publishes them again) and would count as a failed run; stopping in time
    /// leaves the rest to the next run, one minute later. The first pass (at most
    /// [`RELAY_BATCH`] records) always runs, so every run makes progress whatever its deadline
    /// says (an emulator may count its own build time in it).
    #[tracing::instrument(name = "outbox relay", skip_all)]
    pub async fn relay_pending_until(
        &self,
        stop_at: Option<OffsetDateTime>,
    ) -> Result<RelayReport, RelayError> {
        let mut report = RelayReport::default();
        let older_than = self.clock.now() - self.grace;
        let mut after: Option<OutboxRecord> = None;
        loop {
            if let Some(stop_at) = stop_at
                && after.is_some()
                && self.clock.now() >= stop_at
            {
                tracing::warn!(
                    published = report.published,
                    "relay stopped at its deadline; the next run continues"
                );
                report.stopped_early = true;
                break;
            }
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
            // One pass publishes records of many requests: it links to each one's trace.
            let pass = tracing::info_span!("relay pass", records = records.len());
            crate::traces::link_all(&pass, records.iter().filter_map(OutboxRecord::trace_parent));
            let outcome = async {
                let outcome = self.publisher.publish(&records).await?;
                self.outbox.acknowledge(&outcome.accepted(&records)).await?;
                Ok::<_, RelayError>(outcome)
            }
            .instrument(pass)
            .await?;
            let accepted = outcome.accepted(&records);
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

    /// As [`Self::relay_pending_until`], stopping `margin` before `deadline` — or, when less than
    /// twice the margin is left (a short timeout), halfway there, so a run always gets a share
    /// of its time.
    pub async fn relay_pending_before(
        &self,
        deadline: Option<OffsetDateTime>,
        margin: Duration,
    ) -> Result<RelayReport, RelayError> {
        let stop_at = deadline.map(|deadline| {
            let left = deadline - self.clock.now();
            deadline - margin.min(left / 2).max(Duration::ZERO)
        });
        self.relay_pending_until(stop_at).await
    }

    /// How long the oldest record still in the outbox (published or not, in grace or not) has
    /// waited; zero when the outbox is empty. Rising past a few minutes means committed events
    /// are not reaching the bus.
    pub async fn oldest_pending_age(&self) -> Result<Duration, RelayError> {
        let now = self.clock.now();
        let oldest = self.outbox.pending(now + Duration::seconds(1), 1).await?;
        Ok(oldest.first().map_or(Duration::ZERO, |record| {
            (now - record.occurred_at).max(Duration::ZERO)
        }))
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

    /// A bus that takes 20 s per call: a run that must stop 30 s after it starts does two passes
    /// of 100 and leaves the rest for the next run, which finishes; the oldest pending record's
    /// age is what is left.
    #[tokio::test]
    async fn a_run_stops_before_its_deadline_and_the_next_one_continues() {
        struct SlowBus {
            bus: Arc<MemoryEventBus>,
            clock: Arc<ManualClock>,
        }
        #[async_trait::async_trait]
        impl EventPublisher for SlowBus {
            async fn publish(
                &self,
                records: &[OutboxRecord],
            ) -> Result<crate::application::PublishReport, PublishError> {
                self.clock.advance(Duration::seconds(20));
                self.bus.publish(records).await
            }
        }
        let start = datetime!(2026-11-26 12:00 UTC);
        let clock = Arc::new(ManualClock::new(start));
        let store = Arc::new(MemoryActivityStore::new());
        for n in 0..250 {
            store.put_outbox_record(record(n));
        }
        let bus = Arc::new(MemoryEventBus::new(Vec::new()).unwrap());
        let slow = Arc::new(SlowBus {
            bus,
            clock: clock.clone(),
        });
        let relay = OutboxRelay::new(store.clone(), slow, clock.clone(), Duration::seconds(60));

        let report = relay
            .relay_pending_until(Some(start + Duration::seconds(30)))
            .await
            .unwrap();
        assert_eq!(report.published, 200);
        assert!(report.stopped_early);
        assert_eq!(store.outbox_records().len(), 50);
        // record(200) occurred at 10:00 + 200 s; the clock is at 12:00:40.
        assert_eq!(
            relay.oldest_pending_age().await.unwrap(),
            Duration::seconds(2 * 3600 + 40 - 200)
        );

        let next = relay.relay_pending_until(None).await.unwrap();
        assert_eq!(next.published, 50);
        assert!(!next.stopped_early);
        assert_eq!(relay.oldest_pending_age().await.unwrap(), Duration::ZERO);
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
                failed: 120,
                stopped_early: false
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
                failed: 0,
                stopped_early: false
            }
        );
        assert!(store.outbox_records().is_empty());
    }
}
