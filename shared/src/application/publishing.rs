//! Publish-then-acknowledge, shared by every use case that writes events through the outbox: the
//! change and its outbox records are already committed, so a failure here loses nothing — it is
//! logged and left to the outbox relay, and the caller still succeeds.
//!
//! The step is bounded by [`PUBLISH_BUDGET`]: the change is committed, so the caller's answer must
//! not wait on a slow or stalled bus (an HTTP client that times out retries, and without an
//! `Idempotency-Key` that retry creates a second activity). Past the budget the records stay in
//! the outbox, where the relay finds them once their grace period is over.

use std::time::Duration;

use tracing::Instrument;

use super::ports::{EventPublisher, Outbox, OutboxRecord};

/// The most a committed change waits for its events to be published and acknowledged. A healthy
/// PutEvents plus DeleteItem takes tens of milliseconds; the HTTP functions' 10 s timeout has
/// room for the store's own operation timeouts plus this.
pub const PUBLISH_BUDGET: Duration = Duration::from_secs(2);

/// Publishes committed events at once and removes the outbox records the bus accepted, within
/// [`PUBLISH_BUDGET`].
pub(crate) async fn publish_committed(
    publisher: &dyn EventPublisher,
    outbox: &dyn Outbox,
    records: &[OutboxRecord],
) {
    if records.is_empty() {
        return;
    }
    let span = tracing::info_span!("outbox publish", events = records.len());
    let publishing = publish_and_acknowledge(publisher, outbox, records).instrument(span);
    if tokio::time::timeout(PUBLISH_BUDGET, publishing)
        .await
        .is_err()
    {
        tracing::warn!(
            events = records.len(),
            budget_ms = PUBLISH_BUDGET.as_millis() as u64,
            "publishing took longer than its budget; answered anyway, the relay publishes what is left in the outbox"
        );
    }
}

async fn publish_and_acknowledge(
    publisher: &dyn EventPublisher,
    outbox: &dyn Outbox,
    records: &[OutboxRecord],
) {
    match publisher.publish(records).await {
        Ok(report) => {
            for failed in &report.failed {
                tracing::warn!(event_id = %failed.event_id, code = %failed.error_code, message = %failed.error_message, "event not accepted by the bus; left in the outbox for the relay");
            }
            let accepted = report.accepted(records);
            if !accepted.is_empty()
                && let Err(error) = outbox.acknowledge(&accepted).await
            {
                tracing::warn!(%error, "events published but outbox records not removed; the relay will publish them again");
            }
        }
        Err(error) => {
            tracing::warn!(%error, events = records.len(), "publishing failed; left in the outbox for the relay");
        }
    }
}
