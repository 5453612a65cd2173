//! Which version of the statistics projection a process reads or writes. A projection's logic
//! changes (a new total, a fixed rounding); a rebuild for the new logic then writes a new version
//! beside the old one, which the readers keep reading until they are switched over. Version 1 is
//! the projection as it was before versions existed: its storage is unchanged.

use std::fmt;
use std::str::FromStr;

/// A statistics projection version: 1 or more. `v1` is the original projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectionVersion(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a projection version is a whole number from 1 (got `{0}`)")]
pub struct InvalidProjectionVersion(pub String);

impl ProjectionVersion {
    /// The original projection, stored as it was before versions existed.
    pub const FIRST: Self = Self(1);

    pub fn new(version: u32) -> Result<Self, InvalidProjectionVersion> {
        if version == 0 {
            return Err(InvalidProjectionVersion(version.to_string()));
        }
        Ok(Self(version))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn is_first(self) -> bool {
        self == Self::FIRST
    }
}

impl Default for ProjectionVersion {
    fn default() -> Self {
        Self::FIRST
    }
}

impl FromStr for ProjectionVersion {
    type Err = InvalidProjectionVersion;

    /// `2` or `v2`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let trimmed = raw.trim();
        let digits = trimmed.strip_prefix('v').unwrap_or(trimmed);
        digits
            .parse::<u32>()
            .ok()
            .and_then(|v| Self::new(v).ok())
            .ok_or_else(|| InvalidProjectionVersion(raw.to_owned()))
    }
}

impl fmt::Display for ProjectionVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_one_or_more() {
        assert_eq!("1".parse(), Ok(ProjectionVersion::FIRST));
        assert_eq!("v2".parse::<ProjectionVersion>().unwrap().get(), 2);
        assert_eq!(ProjectionVersion::new(3).unwrap().to_string(), "v3");
        for bad in ["0", "v0", "-1", "two", "", "1.5"] {
            assert!(bad.parse::<ProjectionVersion>().is_err(), "{bad}");
        }
        assert!(ProjectionVersion::default().is_first());
    }
}
