//! The activity use cases: create, get, list, update, delete. Each change writes the activity and
//! its event's outbox record in one transaction, then publishes the event at once and removes the
//! record; if publishing fails the record stays for the outbox relay, so no event is ever lost.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::Duration;

use crate::domain::{
    Activity, ActivityDraft, ActivityId, ActivityPatch, DomainEvent, EventId, EventPayload, Version,
};

use super::errors::UseCaseError;
use super::ports::{
    ActivityStore, Clock, EventPublisher, IdGenerator, IdempotencyKey, IdempotencyRecord, Outbox,
    OutboxRecord, StoreError,
};
use super::request_context::RequestContext;

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::hours(24);

/// How often an update without `If-Match` re-reads and retries after losing a race.
const UPDATE_ATTEMPTS: usize = 3;

/// An `Idempotency-Key` with a fingerprint of the body it came with.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

impl IdempotentRequest {
    pub fn new(key: IdempotencyKey, body: &[u8]) -> Self {
        let digest = Sha256::digest(body);
        let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { key, fingerprint }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created(Activity),
    /// A retry of an earlier request with the same key and body: the first answer, again.
    Replayed(Activity),
}

/// The activity use cases that change activities (and so publish events), over whichever adapters
/// the process was built with. Reading is [`super::ActivityQueries`], which needs no bus.
#[derive(Clone)]
pub struct ActivityService {
    store: Arc<dyn ActivityStore>,
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl ActivityService {
    pub fn new(
        store: Arc<dyn ActivityStore>,
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            store,
            outbox,
            publisher,
            clock,
            ids,
        }
    }

    /// Today's date in UTC, for validating activity dates.
    pub fn today(&self) -> time::Date {
        self.clock.now().date()
    }

    #[tracing::instrument(
        name = "create activity",
        skip_all,
        fields(correlation_id = %ctx.correlation_id, request_id = ctx.request_id.as_deref(), user_id = %ctx.user_id)
    )]
    pub async fn create(
        &self,
        ctx: &RequestContext,
        draft: ActivityDraft,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<CreateOutcome, UseCaseError> {
        if let Some(request) = &idempotency
            && let Some(outcome) = self.replay(ctx, request).await?
        {
            return Ok(outcome);
        }
        let now = self.clock.now();
        let activity = Activity::create(
            ActivityId::from_ulid(self.ids.next_ulid()),
            ctx.user_id.clone(),
            draft,
            now,
        );
        let event = self.event(
            ctx,
            &activity,
            EventPayload::ActivityCreated {
                title: activity.title.as_str().to_owned(),
                facts: activity.facts(),
                tags: activity.tags.to_strings(),
            },
        );
        let record = OutboxRecord::for_event(&event, ctx.trace_header.clone());
        let idempotency_record = idempotency.as_ref().map(|request| IdempotencyRecord {
            user_id: ctx.user_id.clone(),
            key: request.key.clone(),
            request_fingerprint: request.fingerprint.clone(),
            activity: activity.clone(),
            created_at: now,
            expires_at: now + IDEMPOTENCY_RETENTION,
        });
        match self
            .store
            .create(&activity, &record, idempotency_record.as_ref())
            .await
        {
            Ok(()) => {}
            // A concurrent retry with the same key won the race: answer as it did.
            Err(StoreError::IdempotencyKeyTaken) => {
                if let Some(request) = &idempotency
                    && let Some(outcome) = self.replay(ctx, request).await?
                {
                    return Ok(outcome);
                }
                return Err(UseCaseError::Conflict);
            }
            Err(error) => return Err(error.into()),
        }
        tracing::info!(activity_id = %activity.id, event_id = %event.event_id, "activity created");
        self.publish_now(record).await;
        Ok(CreateOutcome::Created(activity))
    }

    async fn replay(
        &self,
        ctx: &RequestContext,
        request: &IdempotentRequest,
    ) -> Result<Option<CreateOutcome>, UseCaseError> {
        let Some(record) = self
            .store
            .find_idempotency(&ctx.user_id, &request.key)
            .await?
        else {
            return Ok(None);
        };
        if record.expires_at <= self.clock.now() {
            return Ok(None);
        }
        if record.request_fingerprint != request.fingerprint {
            return Err(UseCaseError::IdempotencyKeyReused);
        }
        tracing::info!(activity_id = %record.activity.id, "idempotent create replayed");
        Ok(Some(CreateOutcome::Replayed(record.activity)))
    }

    /// The current activity, read as `ActivityQueries` reads it (writes start from it).
    pub async fn get(
        &self,
        ctx: &RequestContext,
        id: ActivityId,
    ) -> Result<Activity, UseCaseError> {
        super::activity_queries::ActivityQueries::by_id(self.store.clone())
            .get(ctx, id)
            .await
    }

    /// Applies a patch. With `if_match`, a stale version answers `PreconditionFailed`; without,
    /// a lost race is retried on the fresh version a few times before answering `Conflict`.
    #[tracing::instrument(
        name = "update activity",
        skip_all,
        fields(correlation_id = %ctx.correlation_id, request_id = ctx.request_id.as_deref(), user_id = %ctx.user_id, activity_id = %id)
    )]
    pub async fn update(
        &self,
        ctx: &RequestContext,
        id: ActivityId,
        patch: &ActivityPatch,
        if_match: Option<Version>,
    ) -> Result<Activity, UseCaseError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(ctx, id).await?;
            if let Some(expected) = if_match
                && expected != current.version
            {
                return Err(UseCaseError::PreconditionFailed {
                    current: current.version,
                });
            }
            let Some(updated) = current.patched(patch, self.clock.now()) else {
                return Ok(current);
            };
            let event = self.event(
                ctx,
                &updated,
                EventPayload::ActivityUpdated {
                    before: current.facts(),
                    after: updated.facts(),
                    version: updated.version.get(),
                },
            );
            let record = OutboxRecord::for_event(&event, ctx.trace_header.clone());
            match self.store.update(&updated, current.version, &record).await {
                Ok(()) => {
                    tracing::info!(activity_id = %id, event_id = %event.event_id, version = %updated.version, "activity updated");
                    self.publish_now(record).await;
                    return Ok(updated);
                }
                Err(StoreError::VersionConflict) if if_match.is_none() => continue,
                Err(StoreError::VersionConflict) => {
                    let current = self.get(ctx, id).await?;
                    return Err(UseCaseError::PreconditionFailed {
                        current: current.version,
                    });
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(UseCaseError::Conflict)
    }

    #[tracing::instrument(
        name = "delete activity",
        skip_all,
        fields(correlation_id = %ctx.correlation_id, request_id = ctx.request_id.as_deref(), user_id = %ctx.user_id, activity_id = %id)
    )]
    pub async fn delete(
        &self,
        ctx: &RequestContext,
        id: ActivityId,
        if_match: Option<Version>,
    ) -> Result<(), UseCaseError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(ctx, id).await?;
            if let Some(expected) = if_match
                && expected != current.version
            {
                return Err(UseCaseError::PreconditionFailed {
                    current: current.version,
                });
            }
            let event = self.event(
                ctx,
                &current,
                EventPayload::ActivityDeleted {
                    deleted: current.facts(),
                    version: current.version.get(),
                },
            );
            let record = OutboxRecord::for_event(&event, ctx.trace_header.clone());
            match self.store.delete(&current, &record).await {
                Ok(()) => {
                    tracing::info!(activity_id = %id, event_id = %event.event_id, "activity deleted");
                    self.publish_now(record).await;
                    return Ok(());
                }
                Err(StoreError::VersionConflict) if if_match.is_none() => continue,
                // The activity changed between the check and the delete: as for update, a client
                // that named a version learns it is stale.
                Err(StoreError::VersionConflict) => {
                    let current = self.get(ctx, id).await?;
                    return Err(UseCaseError::PreconditionFailed {
                        current: current.version,
                    });
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(UseCaseError::Conflict)
    }

    fn event(
        &self,
        ctx: &RequestContext,
        activity: &Activity,
        payload: EventPayload,
    ) -> DomainEvent {
        DomainEvent {
            event_id: EventId::from_ulid(self.ids.next_ulid()),
            occurred_at: self.clock.now(),
            aggregate_id: activity.id.to_string(),
            user_id: ctx.user_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
            // The use case's own span: consumers of the event continue the trace from here.
            trace_parent: crate::traces::current(),
            payload,
        }
    }

    /// Publishes a committed event and removes its outbox record (see `publishing`).
    async fn publish_now(&self, record: OutboxRecord) {
        super::publishing::publish_committed(
            self.publisher.as_ref(),
            self.outbox.as_ref(),
            &[record],
        )
        .await;
    }
}
