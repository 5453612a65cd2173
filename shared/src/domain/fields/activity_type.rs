//! What kind of activity it was: the closed list statistics are broken down by.

use std::fmt;
use std::str::FromStr;

#[cfg(test)]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::validation::FieldError;

/// What kind of activity it was. Statistics are broken down by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ActivityType {
    Running,
    Cycling,
    Swimming,
    Walking,
    Hiking,
    Strength,
    Yoga,
    Other,
}

impl ActivityType {
    pub const ALL: [ActivityType; 8] = [
        Self::Running,
        Self::Cycling,
        Self::Swimming,
        Self::Walking,
        Self::Hiking,
        Self::Strength,
        Self::Yoga,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Cycling => "cycling",
            Self::Swimming => "swimming",
            Self::Walking => "walking",
            Self::Hiking => "hiking",
            Self::Strength => "strength",
            Self::Yoga => "yoga",
            Self::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                FieldError::new("type", format!("must be one of {}", names.join(", ")))
            })
    }
}

impl FromStr for ActivityType {
    type Err = FieldError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl fmt::Display for ActivityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_type_round_trips() {
        for t in ActivityType::ALL {
            assert_eq!(ActivityType::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(ActivityType::parse("Running").unwrap_err().field, "type");
    }
}
