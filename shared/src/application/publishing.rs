//! Publish-then-acknowledge, shared by every use case that writes events through the outbox: the
//! change and its outbox records are already committed, so a failure here loses nothing — it is
//! logged and left to the outbox relay, and the caller still succeeds.

use super::ports::{EventPublisher, Outbox, OutboxRecord};

/// Publishes committed events at once and removes the outbox records the bus accepted.
pub(crate) async fn publish_committed(
    publisher: &dyn EventPublisher,
    outbox: &dyn Outbox,
    records: &[OutboxRecord],
) {
    if records.is_empty() {
        return;
    }
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
