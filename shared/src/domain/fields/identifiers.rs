//! The identifiers: who owns an activity, which activity it is, and which request caused what.
//! Each parses once at the edge; an invalid id cannot exist past it.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use ulid::Ulid;

use crate::domain::validation::FieldError;

/// Who owns an activity: the `sub` claim of the caller's token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: impl Into<String>) -> Result<Self, FieldError> {
        let raw = raw.into();
        let len = raw.chars().count();
        if len == 0 || len > Self::MAX_LEN {
            return Err(FieldError::new(
                "user_id",
                format!("must be 1 to {} characters", Self::MAX_LEN),
            ));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(FieldError::new(
                "user_id",
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An activity's id: a ULID, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ActivityId(Ulid);

impl ActivityId {
    pub fn from_ulid(ulid: Ulid) -> Self {
        Self(ulid)
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_ulid(raw)
            .map(Self)
            .ok_or_else(|| FieldError::new("id", "must be a 26-character ULID"))
    }
}

impl TryFrom<String> for ActivityId {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ActivityId> for String {
    fn from(id: ActivityId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The canonical text, written from a stack buffer: every activity in a response, event and log
/// line carries an id, and a `String` per id was a measurable share of a list (issue 15).
impl Serialize for ActivityId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_ulid(&self.0, serializer)
    }
}

/// A ULID as its 26-character canonical string, without an allocation.
pub(crate) fn serialize_ulid<S: Serializer>(ulid: &Ulid, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; ulid::ULID_LEN];
    serializer.serialize_str(ulid.array_to_str(&mut buffer))
}

/// Parses a canonical ULID. The decoder alone accepts a first character above `7`, which overflows
/// 128 bits and silently aliases a smaller id; such strings are not ULIDs.
pub(crate) fn parse_ulid(raw: &str) -> Option<Ulid> {
    if raw.len() != 26 || !matches!(raw.as_bytes()[0], b'0'..=b'7') {
        return None;
    }
    Ulid::from_string(raw).ok()
}

/// Ties together the log lines and events caused by one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '='));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(
                "correlation_id",
                "must be 1 to 128 characters of letters, digits and - _ . : =",
            ))
        }
    }

    pub fn generate() -> Self {
        Self(Ulid::new().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<CorrelationId> for String {
    fn from(id: CorrelationId) -> Self {
        id.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse() {
        assert!(ActivityId::parse("01JDQ7Z8R0A4X6T3V9N2B5C7D1").is_ok());
        assert_eq!(ActivityId::parse("nope").unwrap_err().field, "id");
        assert!(ActivityId::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_ok());
        assert!(
            ActivityId::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZ").is_err(),
            "overflows 128 bits"
        );
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(CorrelationId::parse("abc-123").is_ok());
        assert!(CorrelationId::parse("a\nb").is_err());
    }
}
