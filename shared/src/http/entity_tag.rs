//! How an activity's version travels over HTTP: as a strong entity tag (`ETag: "3"`) and back in
//! `If-Match`. The domain only knows versions; the quoting belongs to the edge.

use crate::domain::{FieldError, Version};

/// The `ETag` value of a version, e.g. `"3"`.
pub fn of(version: Version) -> String {
    format!("\"{}\"", version.get())
}

/// Parses an `If-Match` value: a strong entity tag holding the version, e.g. `"3"`.
pub fn parse(raw: &str) -> Result<Version, FieldError> {
    let invalid = || FieldError::new("If-Match", "must be a quoted version such as \"3\"");
    let inner = raw
        .trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(invalid)?;
    inner
        .parse::<u64>()
        .map(Version::new)
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags() {
        assert_eq!(parse("\"3\"").unwrap(), Version::new(3));
        assert!(parse("3").is_err());
        assert!(parse("W/\"3\"").is_err());
        assert_eq!(of(Version::new(7)), "\"7\"");
    }
}
