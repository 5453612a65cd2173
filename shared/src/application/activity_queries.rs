//! Reading activities: one by id, or a page of a user's listing. Kept apart from the writing use
//! cases so that a read-only function needs neither a bus nor, unless it lists, a cursor secret.

use std::sync::Arc;

use crate::domain::{Activity, ActivityDate, ActivityId, ActivityType};

use super::errors::UseCaseError;
use super::pagination::CursorCodec;
use super::ports::{ActivityStore, ListQuery};
use super::request_context::RequestContext;

/// A list request as the HTTP edge parsed it; `cursor` is still the client's opaque string.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub from: Option<ActivityDate>,
    pub to: Option<ActivityDate>,
    pub activity_type: Option<ActivityType>,
    pub limit: usize,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListedActivities {
    pub items: Vec<Arc<Activity>>,
    pub next_cursor: Option<String>,
}

/// The activity read use cases.
#[derive(Clone)]
pub struct ActivityQueries {
    store: Arc<dyn ActivityStore>,
    /// Present in processes that list (and so issue and open cursors).
    cursors: Option<CursorCodec>,
}

impl ActivityQueries {
    /// Reads by id only: for a function that never lists.
    pub fn by_id(store: Arc<dyn ActivityStore>) -> Self {
        Self {
            store,
            cursors: None,
        }
    }

    /// Reads by id and lists, sealing cursors with `cursors`.
    pub fn with_listing(store: Arc<dyn ActivityStore>, cursors: CursorCodec) -> Self {
        Self {
            store,
            cursors: Some(cursors),
        }
    }

    pub async fn get(
        &self,
        ctx: &RequestContext,
        id: ActivityId,
    ) -> Result<Activity, UseCaseError> {
        self.store
            .get(&ctx.user_id, id)
            .await?
            .ok_or(UseCaseError::NotFound)
    }

    pub async fn list(
        &self,
        ctx: &RequestContext,
        request: ListRequest,
    ) -> Result<ListedActivities, UseCaseError> {
        let Some(cursors) = &self.cursors else {
            return Err(UseCaseError::Internal(
                "this process was built to read by id only; listing needs CURSOR_SECRET".into(),
            ));
        };
        let mut query = ListQuery {
            from: request.from,
            to: request.to,
            activity_type: request.activity_type,
            limit: request.limit,
            after: None,
        };
        if let Some(cursor) = &request.cursor {
            let position = cursors
                .open(&ctx.user_id, &query, cursor)
                .ok_or(UseCaseError::InvalidCursor)?;
            query.after = Some(position);
        }
        // A range that holds no day holds no activity: an empty last page, nothing read. (Not
        // an error: no schema can say "from ≤ to", and the answer is well defined.)
        if let (Some(from), Some(to)) = (request.from, request.to)
            && from > to
        {
            return Ok(ListedActivities {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let page = self.store.list(&ctx.user_id, &query).await?;
        let next_cursor = page
            .next
            .map(|position| cursors.seal(&ctx.user_id, &query, &position));
        Ok(ListedActivities {
            items: page.items,
            next_cursor,
        })
    }
}
