//! How an activity's version travels over HTTP: as a strong entity tag (`ETag: "3"`) and back in
//! `If-Match`. The domain only knows versions; the quoting belongs to the edge.

use crate::domain::{FieldError, Version};

/// The `ETag` value of a version, e.g. `"3"`.
pub fn of(version: Version) -> String {
    format!("\"{}\"", version.get())
}

/// Parses an `If-Match` value: a strong entity tag holding the version, e.g. `"3"`. Exactly what
/// the OpenAPI pattern says: digits in quotes, nothing else (no sign, no weak tag, no list).
/// Digits past u64 name no version any activity has or will have: a well-formed tag that matches
/// nothing (412), never a wrapped or malformed one.
pub fn parse(raw: &str) -> Result<Version, FieldError> {
    let digits = raw
        .trim_matches([' ', '\t'])
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            FieldError::new("If-Match", "must be a quoted version such as \"3\", or *")
        })?;
    Ok(Version::new(digits.parse::<u64>().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags() {
        assert_eq!(parse("\"3\"").unwrap(), Version::new(3));
        assert!(parse("3").is_err());
        assert!(parse("W/\"3\"").is_err());
        assert_eq!(parse(" \"3\"\t").unwrap(), Version::new(3));
        // Beyond i64 and beyond u64: a version no activity has, not a wrapped one.
        assert_eq!(
            parse("\"9223372036854775808\"").unwrap(),
            Version::new(9_223_372_036_854_775_808)
        );
        assert_eq!(
            parse("\"99999999999999999999999\"").unwrap(),
            Version::new(u64::MAX)
        );
        for refused in ["\"+3\"", "\"\"", "\"3\", \"4\"", "\"-1\"", "\"3 \""] {
            assert!(parse(refused).is_err(), "{refused}");
        }
        assert_eq!(of(Version::new(7)), "\"7\"");
    }
}
