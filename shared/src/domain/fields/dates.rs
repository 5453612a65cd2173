//! The day an activity took place: a plain calendar date, bounded so it cannot lie in the future.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use time::Date;
use time::format_description::well_known::Iso8601;

use crate::domain::validation::FieldError;

/// The calendar day the activity took place (no time zone: the day the user saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ActivityDate(Date);

impl ActivityDate {
    /// Parses `YYYY-MM-DD` for the field `field`, without a bound on the date.
    pub fn parse_any(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_calendar_date(raw)
            .map(Self)
            .ok_or_else(|| FieldError::new(field, "must be a calendar date YYYY-MM-DD"))
    }

    /// The earliest day a new or changed activity may have: older dates are typing mistakes
    /// (`0026` for `2026`) that would otherwise sit in every all-time statistic.
    pub const EARLIEST: Date = time::macros::date!(1900 - 01 - 01);

    /// Parses a date for a new or changed activity: from [`Self::EARLIEST`] to one day after
    /// `today` (UTC), which allows for users ahead of UTC but not for activities that have not
    /// happened.
    pub fn parse(raw: &str, today: Date) -> Result<Self, FieldError> {
        let date = Self::parse_any("activity_date", raw)?;
        if date.0 < Self::EARLIEST {
            return Err(FieldError::new(
                "activity_date",
                "must not be before 1900-01-01",
            ));
        }
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

/// `date` as `YYYY-MM-DD` in `out`, when its year has four digits (every parsed activity date);
/// `None` otherwise, for `fmt` or `time` to write. Also the date part of the API's RFC 3339
/// timestamps (`http::rfc3339`).
pub(crate) fn write_iso_date(date: Date, out: &mut [u8; 10]) -> Option<&str> {
    let year = u32::try_from(date.year())
        .ok()
        .filter(|year| *year < 10_000)?;
    write_digits(&mut out[0..4], year);
    out[4] = b'-';
    write_digits(&mut out[5..7], u32::from(u8::from(date.month())));
    out[7] = b'-';
    write_digits(&mut out[8..10], u32::from(date.day()));
    std::str::from_utf8(out).ok()
}

/// `value`'s last `out.len()` decimal digits, zero-padded.
pub(crate) fn write_digits(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Written from a stack buffer, not through `fmt`'s padding: every activity in a response and
/// event carries a date (issue 15).
impl fmt::Display for ActivityDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0u8; 10];
        if let Some(text) = write_iso_date(self.0, &mut buffer) {
            return f.write_str(text);
        }
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

impl Serialize for ActivityDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0u8; 10];
        match write_iso_date(self.0, &mut buffer) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_str(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_text_is_the_padded_iso_date_as_fmt_writes_it() {
        for day in [
            date!(2026 - 11 - 26),
            date!(1900 - 01 - 01),
            date!(0026 - 03 - 09),
            date!(9999 - 12 - 31),
            date!(0000 - 01 - 01),
        ] {
            let padded = format!(
                "{:04}-{:02}-{:02}",
                day.year(),
                u8::from(day.month()),
                day.day()
            );
            assert_eq!(ActivityDate(day).to_string(), padded);
            assert_eq!(
                serde_json::to_string(&ActivityDate(day)).unwrap(),
                format!("\"{padded}\"")
            );
        }
        // Outside four digits the buffer is not used, and fmt writes what it always wrote.
        let far = Date::from_calendar_date(-12, time::Month::May, 4).unwrap();
        assert_eq!(ActivityDate(far).to_string(), "-012-05-04");
    }

    #[test]
    fn activity_date_allows_tomorrow_not_later() {
        let today = date!(2026 - 11 - 26);
        assert!(ActivityDate::parse("2026-11-27", today).is_ok());
        assert!(ActivityDate::parse("2026-11-28", today).is_err());
        assert!(ActivityDate::parse("1900-01-01", today).is_ok());
        assert!(ActivityDate::parse("1899-12-31", today).is_err());
        assert!(ActivityDate::parse("0026-11-27", today).is_err());
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
