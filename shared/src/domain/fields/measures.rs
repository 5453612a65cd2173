//! The measures of an activity: duration, distance and energy, in units that sum exactly
//! (whole minutes, whole metres, whole kilocalories) and within bounds a human can reach.

use serde::{Deserialize, Serialize};

use crate::domain::validation::FieldError;

/// How long the activity lasted: 1 to 1440 whole minutes (one day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DurationMinutes(u16);

impl DurationMinutes {
    pub const MAX: u32 = 1440;

    pub fn parse(raw: u32) -> Result<Self, FieldError> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(Self(raw as u16))
        } else {
            Err(FieldError::new(
                "duration_minutes",
                format!("must be between 1 and {}", Self::MAX),
            ))
        }
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl TryFrom<u32> for DurationMinutes {
    type Error = FieldError;
    fn try_from(raw: u32) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<DurationMinutes> for u32 {
    fn from(d: DurationMinutes) -> Self {
        d.get()
    }
}

/// A distance, held in whole metres so that sums stay exact; clients speak kilometres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Distance {
    metres: u32,
}

impl Distance {
    pub const MAX_KM: f64 = 1000.0;
    pub const MAX_METRES: u32 = 1_000_000;

    /// Parses kilometres as a client sends them; rounds to the nearest metre.
    pub fn from_km(km: f64) -> Result<Self, FieldError> {
        if !km.is_finite() || !(0.0..=Self::MAX_KM).contains(&km) {
            return Err(FieldError::new(
                "distance_km",
                "must be a finite number between 0 and 1000",
            ));
        }
        Ok(Self {
            metres: (km * 1000.0).round() as u32,
        })
    }

    pub fn from_metres(metres: u32) -> Result<Self, FieldError> {
        if metres > Self::MAX_METRES {
            return Err(FieldError::new(
                "distance_m",
                format!("must be at most {}", Self::MAX_METRES),
            ));
        }
        Ok(Self { metres })
    }

    pub fn metres(self) -> u32 {
        self.metres
    }

    pub fn km(self) -> f64 {
        f64::from(self.metres) / 1000.0
    }
}

impl TryFrom<u32> for Distance {
    type Error = FieldError;
    fn try_from(metres: u32) -> Result<Self, Self::Error> {
        Self::from_metres(metres)
    }
}

impl From<Distance> for u32 {
    fn from(d: Distance) -> Self {
        d.metres
    }
}

/// Energy burned, 0 to 20000 kcal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Calories(u32);

impl Calories {
    pub const MAX: u32 = 20_000;

    pub fn parse(raw: u32) -> Result<Self, FieldError> {
        if raw <= Self::MAX {
            Ok(Self(raw))
        } else {
            Err(FieldError::new(
                "calories_burned",
                format!("must be between 0 and {}", Self::MAX),
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Calories {
    type Error = FieldError;
    fn try_from(raw: u32) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<Calories> for u32 {
    fn from(c: Calories) -> Self {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_bounds() {
        assert!(DurationMinutes::parse(0).is_err());
        assert_eq!(DurationMinutes::parse(1).unwrap().get(), 1);
        assert_eq!(DurationMinutes::parse(1440).unwrap().get(), 1440);
        assert!(DurationMinutes::parse(1441).is_err());
    }

    #[test]
    fn distance_is_exact_metres() {
        assert_eq!(Distance::from_km(5.2).unwrap().metres(), 5200);
        assert_eq!(Distance::from_km(0.0).unwrap().metres(), 0);
        assert_eq!(Distance::from_km(1000.0).unwrap().metres(), 1_000_000);
        assert_eq!(Distance::from_km(42.195).unwrap().km(), 42.195);
        for bad in [f64::NAN, f64::INFINITY, -0.5, 1000.001] {
            assert_eq!(Distance::from_km(bad).unwrap_err().field, "distance_km");
        }
    }

    #[test]
    fn calories_bounds() {
        assert!(Calories::parse(20_000).is_ok());
        assert!(Calories::parse(20_001).is_err());
    }
}
