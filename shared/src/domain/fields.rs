//! The values an activity is made of. Each type can only hold a valid value: it is parsed once, at
//! the edge, and the rest of the program never re-checks it. Every parse error names its field.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::Date;
use time::format_description::well_known::Iso8601;
use ulid::Ulid;

use super::validation::FieldError;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
        write!(f, "{}", self.0)
    }
}

/// Parses a canonical ULID. The decoder alone accepts a first character above `7`, which overflows
/// 128 bits and silently aliases a smaller id; such strings are not ULIDs.
pub(crate) fn parse_ulid(raw: &str) -> Option<Ulid> {
    if raw.len() != 26 || !matches!(raw.as_bytes()[0], b'0'..=b'7') {
        return None;
    }
    Ulid::from_string(raw).ok()
}

/// What kind of activity it was. Statistics are broken down by this.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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

/// An activity's title: at most 200 characters as sent, not blank, kept trimmed. The limit
/// applies to the text as sent so that the OpenAPI `maxLength` says exactly what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivityTitle(String);

impl ActivityTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("title", "must not be empty"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "title",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActivityTitle {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ActivityTitle> for String {
    fn from(title: ActivityTitle) -> Self {
        title.0
    }
}

/// A description or notes: at most 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FreeText(String);

impl FreeText {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FreeText {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse("text", &raw)
    }
}

impl From<FreeText> for String {
    fn from(text: FreeText) -> Self {
        text.0
    }
}

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

/// One tag: 1 to 32 characters, not starting or ending with whitespace. Refused rather than
/// trimmed, so that two tags are duplicates exactly when their texts are equal (the OpenAPI
/// `uniqueItems` can only say that much).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("each tag must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        if raw.trim() != raw {
            return Err(FieldError::new(
                field,
                "must not start or end with whitespace",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse("tags", &raw)
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> Self {
        tag.0
    }
}

/// At most 10 distinct tags, in the order the client gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Tag>", into = "Vec<Tag>")]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX: usize = 10;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, FieldError> {
        if raw.len() > Self::MAX {
            return Err(FieldError::new(
                "tags",
                format!("must hold at most {} tags", Self::MAX),
            ));
        }
        let mut tags: Vec<Tag> = Vec::with_capacity(raw.len());
        for (index, tag) in raw.iter().enumerate() {
            let tag = Tag::parse(&format!("tags[{index}]"), tag.as_ref())?;
            if tags.contains(&tag) {
                return Err(FieldError::new(
                    format!("tags[{index}]"),
                    "duplicates an earlier tag",
                ));
            }
            tags.push(tag);
        }
        Ok(Self(tags))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|t| t.0.clone()).collect()
    }
}

impl TryFrom<Vec<Tag>> for Tags {
    type Error = FieldError;
    fn try_from(tags: Vec<Tag>) -> Result<Self, Self::Error> {
        let raw: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        Self::parse(&raw)
    }
}

impl From<Tags> for Vec<Tag> {
    fn from(tags: Tags) -> Self {
        tags.0
    }
}

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

    /// Parses an `If-Match` value: a strong entity tag holding the version, e.g. `"3"`.
    pub fn parse_entity_tag(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("If-Match", "must be a quoted version such as \"3\"");
        let inner = raw
            .trim()
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .ok_or_else(invalid)?;
        inner.parse::<u64>().map(Self).map_err(|_| invalid())
    }

    pub fn entity_tag(self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
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
    use time::macros::date;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(ActivityTitle::parse("  Run  ").unwrap().as_str(), "Run");
        assert_eq!(ActivityTitle::parse("   ").unwrap_err().field, "title");
        assert!(ActivityTitle::parse(&"é".repeat(200)).is_ok());
        assert!(ActivityTitle::parse(&"é".repeat(201)).is_err());
        // The limit is on the text as sent (what OpenAPI's maxLength measures), padding included.
        assert!(ActivityTitle::parse(&format!(" {} ", "é".repeat(199))).is_err());
        assert!(ActivityTitle::parse(&format!(" {}", "é".repeat(199))).is_ok());
        assert!(
            ActivityTitle::parse("\u{85}\u{3000}").is_err(),
            "Unicode whitespace is blank"
        );
    }

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

    #[test]
    fn tags_are_bounded_distinct_and_named_by_index() {
        let ten: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert!(Tags::parse(&ten).is_ok());
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(Tags::parse(&eleven).unwrap_err().field, "tags");
        assert_eq!(Tags::parse(&["ok", ""]).unwrap_err().field, "tags[1]");
        assert_eq!(Tags::parse(&["a", "a"]).unwrap_err().field, "tags[1]");
        assert!(Tags::parse(&["x".repeat(33)]).is_err());
        // Surrounding whitespace is refused, not trimmed: equal texts are the only duplicates.
        assert!(Tags::parse(&[" a"]).is_err());
        assert!(Tags::parse(&["a\t"]).is_err());
        assert!(Tags::parse(&["a b"]).is_ok());
        assert!(Tags::parse(&["a", "A"]).is_ok());
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

    #[test]
    fn activity_type_round_trips() {
        for t in ActivityType::ALL {
            assert_eq!(ActivityType::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(ActivityType::parse("Running").unwrap_err().field, "type");
    }

    #[test]
    fn entity_tags() {
        assert_eq!(Version::parse_entity_tag("\"3\"").unwrap(), Version::new(3));
        assert!(Version::parse_entity_tag("3").is_err());
        assert!(Version::parse_entity_tag("W/\"3\"").is_err());
        assert_eq!(Version::new(7).entity_tag(), "\"7\"");
    }

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
