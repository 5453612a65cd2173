//! The real clock and id generator.

use time::OffsetDateTime;
use ulid::Ulid;

use crate::application::{Clock, IdGenerator};

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// ULIDs from the system clock and a thread-local random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn next_ulid(&self) -> Ulid {
        Ulid::new()
    }
}
