//! RFC 3339 timestamps written into a stack buffer instead of a `String`: every activity in a
//! response carries two, a page up to a hundred activities, and `time`'s general formatter (one
//! allocation and a walk over a format description per timestamp) was a measurable share of a
//! list request (docs/benchmarks.md, issue 15). The text is exactly what
//! `time::serde::rfc3339` writes (a test compares them): UTC instants, whose form is fixed, are
//! written here; any other offset, or a year outside 0–9999, is left to `time` itself.

use serde::Serializer;
use time::OffsetDateTime;

use crate::domain::{write_digits, write_iso_date};

/// `YYYY-MM-DDTHH:MM:SS.fffffffffZ`, the longest UTC form.
const LONGEST: usize = 30;

/// Serialises `at` as `time::serde::rfc3339::serialize` does.
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; LONGEST];
    match write_utc(at, &mut buffer) {
        Some(text) => serializer.serialize_str(text),
        None => time::serde::rfc3339::serialize(at, serializer),
    }
}

/// `at` in RFC 3339 as `time` writes it, when `at` is UTC with a four-digit year; else `None`.
fn write_utc<'b>(at: &OffsetDateTime, buffer: &'b mut [u8; LONGEST]) -> Option<&'b str> {
    if !at.offset().is_utc() {
        return None;
    }
    let date: &mut [u8; 10] = (&mut buffer[0..10]).try_into().ok()?;
    write_iso_date(at.date(), date)?;
    buffer[10] = b'T';
    write_digits(&mut buffer[11..13], u32::from(at.hour()));
    buffer[13] = b':';
    write_digits(&mut buffer[14..16], u32::from(at.minute()));
    buffer[16] = b':';
    write_digits(&mut buffer[17..19], u32::from(at.second()));
    let mut len = 19;
    // As `time` does: the fraction only when not zero, without its trailing zeros.
    let mut nanos = at.nanosecond();
    if nanos != 0 {
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        buffer[len] = b'.';
        write_digits(&mut buffer[len + 1..len + 1 + width], nanos);
        len += 1 + width;
    }
    buffer[len] = b'Z';
    len += 1;
    std::str::from_utf8(&buffer[..len]).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::{datetime, offset};

    use super::*;

    fn ours(at: OffsetDateTime) -> String {
        serialize(&at, serde_json::value::Serializer)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn times(at: OffsetDateTime) -> String {
        time::serde::rfc3339::serialize(&at, serde_json::value::Serializer)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn writes_what_time_writes() {
        let base = datetime!(2026-11-23 09:05:07 UTC);
        let mut instants = vec![
            base,
            datetime!(0000-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59.999_999_999 UTC),
            datetime!(2024-02-29 12:00 UTC),
            // Another offset is time's to write.
            datetime!(2026-11-23 09:05:07.5 +01:00),
            base.to_offset(offset!(-03:30)),
        ];
        for nanos in [
            1,
            10,
            100,
            120,
            1_000,
            5_000_000,
            123_456_789,
            100_000_000,
            999_999_990,
            20_300,
        ] {
            instants.push(base.replace_nanosecond(nanos).unwrap());
        }
        // A spread of ordinary instants, a prime number of seconds apart.
        for step in 0..2_000i64 {
            instants.push(base + time::Duration::new(step * 7_919_993, (step * 48_271) as i32));
        }
        for at in instants {
            assert_eq!(ours(at), times(at), "{at:?}");
        }
    }

    #[test]
    fn leaves_what_it_cannot_write_to_time() {
        let far = datetime!(2026-01-01 00:00 UTC).replace_year(-1).unwrap();
        assert!(write_utc(&far, &mut [0; LONGEST]).is_none());
        assert_eq!(
            serialize(&far, serde_json::value::Serializer).is_err(),
            time::serde::rfc3339::serialize(&far, serde_json::value::Serializer).is_err()
        );
    }
}
