//! The EventBridge adapter: `EventPublisher` over `PutEvents`.
//!
//! `PutEvents` takes at most 10 entries and 256 KiB per request, and it can accept some entries of
//! a request while refusing others: a successful response says so in `FailedEntryCount` and in
//! each entry's `ErrorCode`. The SDK's retry layer does not look inside a successful response,
//! so this adapter does: refused entries are sent again, alone, with a bounded exponential
//! backoff, and whatever is still refused is reported to the caller (which leaves the record in
//! the outbox for the relay). Nothing is dropped silently.
//!
//! `archive.rs`: the bus archive's replays (`EventArchive`).

mod archive;

pub use archive::EventBridgeArchive;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use tracing::Instrument;

use crate::adapters::aws_call;
use crate::adapters::aws_error::{AwsFailure, classify, error_code, is_transient_code};
use crate::application::{EventPublisher, FailedEntry, OutboxRecord, PublishError, PublishReport};

/// At most this many entries per `PutEvents` request.
pub const MAX_ENTRIES_PER_REQUEST: usize = 10;
/// At most this many bytes per `PutEvents` request, entries measured as AWS documents.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// How refused entries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per entry, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled before each further one.
    pub base_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
        }
    }
}

/// Entry error codes that will not pass by retrying (the entry itself is wrong, or not allowed).
const PERMANENT_ENTRY_CODES: &[&str] = &[
    "MalformedDetail",
    "InvalidArgument",
    "ValidationException",
    "AccessDeniedException",
    "NotAuthorizedForSourceException",
    "NotAuthorizedForDetailTypeException",
];

#[derive(Clone)]
pub struct EventBridgePublisher {
    client: Client,
    event_bus_name: String,
    retry: RetryPolicy,
}

impl EventBridgePublisher {
    pub fn new(client: Client, event_bus_name: impl Into<String>) -> Self {
        Self {
            client,
            event_bus_name: event_bus_name.into(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn entry(&self, record: &OutboxRecord) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(record.source())
            .detail_type(record.event_type.as_str())
            .detail(&record.detail)
            .event_bus_name(&self.event_bus_name)
            // The event's own time, not the time the relay got round to publishing it.
            .time(
                DateTime::from_nanos(record.occurred_at.unix_timestamp_nanos())
                    .unwrap_or_else(|_| DateTime::from_secs(record.occurred_at.unix_timestamp())),
            )
            // The PutEvents span's own position when traced (X-Ray then shows the bus hop under
            // it), else the header the record was written with.
            .set_trace_header(
                crate::traces::current()
                    .map(|position| position.to_xray_header())
                    .or_else(|| record.trace_header.clone()),
            )
            .build()
    }

    /// Sends one chunk; returns the records refused, each with the bus's code and message.
    async fn put_chunk(&self, chunk: &[&OutboxRecord]) -> Result<Vec<FailedEntry>, CallFailed> {
        let call = aws_call::eventbridge("PutEvents", &self.event_bus_name);
        // Each entry carries the call's position as its trace header.
        let entries = call.in_scope(|| chunk.iter().map(|r| self.entry(r)).collect());
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .instrument(call)
            .await
            .map_err(|e| CallFailed {
                code: error_code(&e).unwrap_or("RequestFailed").to_owned(),
                failure: classify(&e),
            })?;
        if output.failed_entry_count() == 0 {
            return Ok(Vec::new());
        }
        // Result entries are in request order, one per request entry.
        let results = output.entries();
        Ok(chunk
            .iter()
            .enumerate()
            .filter_map(|(index, record)| {
                let result = results.get(index);
                let code = result.and_then(|r| r.error_code());
                match (result, code) {
                    (Some(_), None) => None,
                    _ => Some(FailedEntry {
                        event_id: record.event_id,
                        error_code: code.unwrap_or("MissingResultEntry").to_owned(),
                        error_message: result
                            .and_then(|r| r.error_message())
                            .unwrap_or_default()
                            .to_owned(),
                    }),
                }
            })
            .collect())
    }

    /// Publishes one chunk, sending refused entries again (alone) after a growing pause, up to
    /// the policy's attempts; returns what is still refused. `Err` only when the first request
    /// itself failed, i.e. nothing of the chunk is known to be accepted.
    async fn publish_chunk(
        &self,
        mut pending: Vec<&OutboxRecord>,
    ) -> Result<Vec<FailedEntry>, CallFailed> {
        let mut refused = Vec::new();
        let attempts = self.retry.max_attempts.max(1);
        for attempt in 1..=attempts {
            if attempt > 1 {
                let factor = 2u32.saturating_pow(attempt - 2);
                tokio::time::sleep(self.retry.base_backoff.saturating_mul(factor)).await;
            }
            let failed = match self.put_chunk(&pending).await {
                Ok(failed) => failed,
                Err(call) if attempt == 1 => return Err(call),
                Err(call) => {
                    refused.extend(pending.iter().map(|r| call.entry(r)));
                    return Ok(refused);
                }
            };
            let (retryable, permanent): (Vec<FailedEntry>, Vec<FailedEntry>) =
                failed.into_iter().partition(|f| {
                    !PERMANENT_ENTRY_CODES.contains(&f.error_code.as_str())
                        || is_transient_code(&f.error_code)
                });
            refused.extend(permanent);
            if retryable.is_empty() || attempt == attempts {
                refused.extend(retryable);
                return Ok(refused);
            }
            for entry in &retryable {
                tracing::info!(event_id = %entry.event_id, code = %entry.error_code, attempt, "entry refused by the bus; sending it again");
            }
            pending.retain(|r| retryable.iter().any(|f| f.event_id == r.event_id));
        }
        Ok(refused)
    }
}

/// A `PutEvents` request that failed as a whole (after the SDK's own retries).
struct CallFailed {
    code: String,
    failure: AwsFailure,
}

impl CallFailed {
    fn message(&self) -> &str {
        match &self.failure {
            AwsFailure::Transient(m) | AwsFailure::Permanent(m) => m,
        }
    }

    fn entry(&self, record: &OutboxRecord) -> FailedEntry {
        FailedEntry {
            event_id: record.event_id,
            error_code: self.code.clone(),
            error_message: self.message().to_owned(),
        }
    }
}

/// An entry's size as AWS documents it for the 256 KiB limit ("Calculating PutEvents event entry
/// size"): 14 bytes for `Time` when present, plus the UTF-8 bytes of `Source`, `DetailType`,
/// `Detail` and each of `Resources` (none here).
pub fn entry_size(record: &OutboxRecord) -> usize {
    const TIME: usize = 14;
    TIME + record.source().len() + record.event_type.as_str().len() + record.detail.len()
}

/// Splits records into requests of at most [`MAX_ENTRIES_PER_REQUEST`] entries and
/// [`MAX_REQUEST_BYTES`] bytes, in order. A record too large for any request comes back apart.
pub fn chunks(records: &[OutboxRecord]) -> (Vec<Vec<&OutboxRecord>>, Vec<&OutboxRecord>) {
    let mut chunks: Vec<Vec<&OutboxRecord>> = Vec::new();
    let mut too_large = Vec::new();
    let mut bytes = 0;
    for record in records {
        let size = entry_size(record);
        if size > MAX_REQUEST_BYTES {
            too_large.push(record);
            continue;
        }
        match chunks.last_mut() {
            Some(chunk)
                if chunk.len() < MAX_ENTRIES_PER_REQUEST && bytes + size <= MAX_REQUEST_BYTES =>
            {
                chunk.push(record);
                bytes += size;
            }
            _ => {
                chunks.push(vec![record]);
                bytes = size;
            }
        }
    }
    (chunks, too_large)
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<PublishReport, PublishError> {
        let (chunks, too_large) = chunks(records);
        let mut report = PublishReport {
            failed: too_large
                .into_iter()
                .map(|record| FailedEntry {
                    event_id: record.event_id,
                    error_code: "EntryTooLarge".into(),
                    error_message: format!(
                        "entry is {} bytes; PutEvents takes at most {MAX_REQUEST_BYTES}",
                        entry_size(record)
                    ),
                })
                .collect(),
        };
        let mut any_request_succeeded = false;
        let mut last_call_failure = None;
        for chunk in chunks {
            match self.publish_chunk(chunk.clone()).await {
                Ok(failed) => {
                    any_request_succeeded = true;
                    report.failed.extend(failed);
                }
                Err(call) => {
                    tracing::warn!(code = %call.code, error = %call.message(), entries = chunk.len(), "PutEvents request failed");
                    report.failed.extend(chunk.iter().map(|r| call.entry(r)));
                    last_call_failure = Some(call);
                }
            }
        }
        match last_call_failure {
            // Nothing got through at all: say why, as an error.
            Some(call) if !any_request_succeeded => Err(match call.failure {
                AwsFailure::Transient(message) => PublishError::Unavailable(message),
                AwsFailure::Permanent(message) => PublishError::Failed(message),
            }),
            _ => Ok(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType};
    use time::OffsetDateTime;
    use ulid::Ulid;

    fn record(detail_bytes: usize) -> OutboxRecord {
        OutboxRecord {
            event_id: EventId::from_ulid(Ulid::new()),
            event_type: EventType::ActivityCreated,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            detail: "x".repeat(detail_bytes),
            trace_header: None,
        }
    }

    #[test]
    fn entry_size_counts_time_source_detail_type_and_detail() {
        // 14 + "activelog.activities" (20) + "activity.created" (16) + 100.
        assert_eq!(entry_size(&record(100)), 150);
    }

    #[test]
    fn chunks_hold_at_most_ten_entries_and_256_kib() {
        let small: Vec<OutboxRecord> = (0..23).map(|_| record(100)).collect();
        let (chunks_of_small, too_large) = chunks(&small);
        assert!(too_large.is_empty());
        assert_eq!(
            chunks_of_small.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 3]
        );

        // Three entries of 100 KiB: two fit in 256 KiB, the third starts a new request.
        let big: Vec<OutboxRecord> = (0..3).map(|_| record(100 * 1024)).collect();
        let (chunks_of_big, _) = chunks(&big);
        assert_eq!(
            chunks_of_big.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 1]
        );
        for chunk in &chunks_of_big {
            assert!(chunk.iter().map(|r| entry_size(r)).sum::<usize>() <= MAX_REQUEST_BYTES);
        }

        // Exactly at the limit fits; one byte more cannot be sent at all.
        let fixed = entry_size(&record(0));
        let at_limit = [record(MAX_REQUEST_BYTES - fixed)];
        let (fits, none) = chunks(&at_limit);
        assert_eq!((fits.len(), none.len()), (1, 0));
        let over_limit = [record(MAX_REQUEST_BYTES - fixed + 1)];
        let (nothing, alone) = chunks(&over_limit);
        assert_eq!((nothing.len(), alone.len()), (0, 1));
    }
}
