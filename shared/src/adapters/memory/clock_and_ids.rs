//! A clock tests move by hand, and ids that are predictable but still unique and sortable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use time::{Duration, OffsetDateTime};
use ulid::Ulid;

use crate::application::{Clock, IdGenerator};

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// ULIDs whose random part counts up from 1: unique, sortable and the same in every test run.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdGenerator for SequentialIds {
    fn next_ulid(&self) -> Ulid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // A fixed timestamp keeps ids stable; the counter keeps them unique and ordered.
        Ulid::from_parts(1_764_115_200_000, u128::from(n))
    }
}
