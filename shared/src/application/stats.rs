//! Reading statistics. Writing them is the stats consumer's job (`application::stats_updater`).

use std::sync::Arc;

use crate::domain::{PeriodKey, UserStats};

use super::errors::UseCaseError;
use super::ports::StatsStore;
use super::request_context::RequestContext;

#[derive(Clone)]
pub struct StatsQueries {
    store: Arc<dyn StatsStore>,
}

impl StatsQueries {
    pub fn new(store: Arc<dyn StatsStore>) -> Self {
        Self { store }
    }

    pub async fn get(
        &self,
        ctx: &RequestContext,
        period: PeriodKey,
    ) -> Result<UserStats, UseCaseError> {
        Ok(self.store.get(&ctx.user_id, period).await?)
    }
}
