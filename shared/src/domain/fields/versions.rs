//! An activity's version, the counter optimistic concurrency compares. How a version travels
//! over HTTP (`ETag`, `If-Match`) is the HTTP edge's business, not the domain's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An activity's version for optimistic concurrency: 1 when created, +1 per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(u64);

impl Version {
    pub const FIRST: Version = Version(1);

    pub fn new(raw: u64) -> Self {
        Self(raw)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
