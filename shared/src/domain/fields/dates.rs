//! The day an activity took place: a plain calendar date, bounded so it cannot lie in the future.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;
use time::format_description::well_known::Iso8601;

use crate::domain::validation::FieldError;

/// The calendar day the activity took place (no time zone: the day the user saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivityDate(Date);

impl ActivityDate {
    /// Parses `YYYY-MM-DD` for the field `field`, without a bound on the date.
    pub fn parse_any(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_calendar_date(raw)
            .map(Self)
            .ok_or_else(|| FieldError::new(field, "must be a calendar date YYYY-MM-DD"))
    }

    /// Parses a date for a new or changed activity: at most one day after `today` (UTC), which
    /// allows for users ahead of UTC but not for activities that have not happened.
    pub fn parse(raw: &str, today: Date) -> Result<Self, FieldError> {
        let date = Self::parse_any("activity_date", raw)?;
        match today.next_day() {
            Some(limit) if date.0 > limit => Err(FieldError::new(
                "activity_date",
                "must not be more than one day in the future",
            )),
            _ => Ok(date),
        }
    }

    pub fn from_date(date: Date) -> Self {
        Self(date)
    }

    pub fn date(self) -> Date {
        self.0
    }
}

fn parse_calendar_date(raw: &str) -> Option<Date> {
    // ISO 8601 also accepts week and ordinal dates; clients must send the plain calendar form.
    let shaped = raw.len() == 10 && raw.as_bytes()[4] == b'-' && raw.as_bytes()[7] == b'-';
    if !shaped {
        return None;
    }
    Date::parse(raw, &Iso8601::DATE).ok()
}

impl TryFrom<String> for ActivityDate {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse_any("activity_date", &raw)
    }
}

impl From<ActivityDate> for String {
    fn from(date: ActivityDate) -> Self {
        date.to_string()
    }
}

impl fmt::Display for ActivityDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn activity_date_allows_tomorrow_not_later() {
        let today = date!(2026 - 11 - 26);
        assert!(ActivityDate::parse("2026-11-27", today).is_ok());
        assert!(ActivityDate::parse("2026-11-28", today).is_err());
        assert!(ActivityDate::parse("2026-02-30", today).is_err());
        assert!(ActivityDate::parse("2026-W48-1", today).is_err());
        assert_eq!(
            ActivityDate::parse("2024-02-29", today)
                .unwrap()
                .to_string(),
            "2024-02-29"
        );
    }
}
