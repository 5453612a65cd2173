//! The edge of `relay-outbox`: one scheduled run of the outbox relay inside the invocation's time,
//! and the metrics that make a stuck outbox visible. Logging refused records was not enough: a
//! record the bus refuses forever was retried every minute with nothing to alarm on.

use time::{Duration, OffsetDateTime};

use crate::application::{OutboxRelay, RelayError, RelayReport};
use crate::telemetry::{self, Metric};

/// The function name the relay's metrics are reported under.
pub const FUNCTION: &str = crate::functions::RELAY_OUTBOX;

/// The relay's metric names (namespace `activelog`, dimension `function = relay-outbox`); the
/// template's alarms name them too.
pub mod metric {
    /// Records published and removed from the outbox in a run.
    pub const PUBLISHED: &str = "RelayPublished";
    /// Records the bus refused in a run; they stay in the outbox.
    pub const REFUSED: &str = "RelayRefused";
    /// Age in seconds of the oldest record still in the outbox after a run (0 when empty).
    pub const OLDEST_PENDING: &str = "OutboxOldestPendingSeconds";
    /// 1 when a run stopped at its deadline with work left.
    pub const STOPPED_EARLY: &str = "RelayStoppedEarly";
}

/// Time kept back from the invocation's deadline: the pass in progress must still publish its
/// records and remove them (at most 100 entries and 100 deletes, well under this).
pub const DEADLINE_MARGIN: Duration = Duration::seconds(15);

/// A Lambda deadline (epoch milliseconds, `Context::deadline`) as a time.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(deadline_ms) * 1_000_000).ok()
}

/// One relay run that starts no pass within [`DEADLINE_MARGIN`] of `deadline` (within half the
/// time left when that is shorter), then reports its metrics. A failed run is an error (the function's `Errors` alarm); the oldest-pending age
/// is measured after every successful run, so a record refused forever shows as a rising age.
pub async fn run(
    relay: &OutboxRelay,
    deadline: Option<OffsetDateTime>,
) -> Result<RelayReport, RelayError> {
    let run = run_and_measure(relay, deadline).await;
    // The environment may be frozen once the function answers: the run's spans go out first.
    crate::traces::flush();
    run
}

async fn run_and_measure(
    relay: &OutboxRelay,
    deadline: Option<OffsetDateTime>,
) -> Result<RelayReport, RelayError> {
    let report = relay
        .relay_pending_before(deadline, DEADLINE_MARGIN)
        .await?;
    let oldest = match relay.oldest_pending_age().await {
        Ok(age) => Some(age),
        Err(error) => {
            tracing::warn!(%error, "could not measure the oldest pending outbox record");
            None
        }
    };
    telemetry::emit_metrics(FUNCTION, &metrics(&report, oldest));
    Ok(report)
}

/// The metrics of one run; the age is left out when it could not be measured.
pub fn metrics(report: &RelayReport, oldest_pending: Option<Duration>) -> Vec<Metric<'static>> {
    let mut metrics = vec![
        Metric::count(metric::PUBLISHED, report.published as u64),
        Metric::count(metric::REFUSED, report.failed as u64),
        Metric::count(metric::STOPPED_EARLY, u64::from(report.stopped_early)),
    ];
    if let Some(age) = oldest_pending {
        metrics.push(Metric::seconds(
            metric::OLDEST_PENDING,
            age.as_seconds_f64(),
        ));
    }
    metrics
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::datetime;

    use super::*;
    use crate::adapters::memory::{ManualClock, MemoryActivityStore, MemoryEventBus};
    use crate::application::{Clock, OutboxRecord};
    use crate::domain::{EventId, EventType};

    /// Outbox record `n`, written ten minutes before the clocks of these tests start.
    fn pending(n: u64) -> OutboxRecord {
        OutboxRecord {
            event_id: EventId::from_ulid(ulid::Ulid::from_parts(1, n.into())),
            event_type: EventType::ActivityCreated,
            occurred_at: datetime!(2026-11-26 11:50 UTC),
            detail: "{}".into(),
            trace_header: None,
        }
    }

    /// A record refused forever is published 0 times, refused once per run, and its age rises
    /// run after run: the metrics the alarms watch.
    #[tokio::test]
    async fn a_refused_record_shows_as_refused_and_as_a_rising_oldest_pending_age() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let store = Arc::new(MemoryActivityStore::new());
        store.put_outbox_record(pending(1));
        let bus = Arc::new(MemoryEventBus::new(Vec::new()).unwrap());
        let relay = OutboxRelay::new(store, bus.clone(), clock.clone(), Duration::seconds(60));
        let mut ages = Vec::new();
        for _ in 0..2 {
            bus.refuse_next_entries(1, "InternalFailure");
            let report = run(&relay, Some(clock.now() + Duration::seconds(50)))
                .await
                .unwrap();
            let age = relay.oldest_pending_age().await.unwrap();
            let metrics = metrics(&report, Some(age));
            let value = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
            assert_eq!(value(metric::PUBLISHED), Some(0.0));
            assert_eq!(value(metric::REFUSED), Some(1.0));
            assert_eq!(value(metric::STOPPED_EARLY), Some(0.0));
            ages.push(value(metric::OLDEST_PENDING).unwrap());
            clock.advance(Duration::minutes(1));
        }
        assert_eq!(ages, [600.0, 660.0]);
    }

    /// Every run makes one pass, even past its deadline (bounded work: one page); with more than
    /// one page to go, a run that is past its deadline stops after that first pass.
    #[tokio::test]
    async fn a_run_past_its_deadline_makes_one_pass_and_stops() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-26 12:00 UTC)));
        let store = Arc::new(MemoryActivityStore::new());
        store.put_outbox_record(pending(1));
        let bus = Arc::new(MemoryEventBus::new(Vec::new()).unwrap());
        let relay = OutboxRelay::new(store.clone(), bus, clock.clone(), Duration::seconds(60));
        for n in 2..=150 {
            store.put_outbox_record(pending(n));
        }
        let report = run(&relay, Some(clock.now() - Duration::seconds(1)))
            .await
            .unwrap();
        assert!(report.stopped_early);
        assert_eq!(report.published, 100, "one pass");
        assert_eq!(store.outbox_records().len(), 50);

        let report = run(&relay, Some(clock.now() + Duration::seconds(10)))
            .await
            .unwrap();
        assert!(!report.stopped_early);
        assert_eq!(report.published, 50);
        assert!(store.outbox_records().is_empty());
    }

    #[test]
    fn lambda_deadlines_are_epoch_milliseconds() {
        assert_eq!(
            deadline_from_epoch_ms(1_795_000_000_123),
            Some(datetime!(2026-11-18 11:06:40.123 UTC))
        );
    }
}
