//! The text a user writes: the title, free-form notes and tags, trimmed and bounded so a stored
//! activity never holds an empty title or an unbounded field.

use serde::{Deserialize, Serialize};

use crate::domain::validation::FieldError;

/// An activity's title: trimmed, 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivityTitle(String);

impl ActivityTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(FieldError::new("title", "must not be empty"));
        }
        if chars > Self::MAX_CHARS {
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

/// One tag: trimmed, 1 to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("each tag must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(trimmed.to_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(ActivityTitle::parse("  Run  ").unwrap().as_str(), "Run");
        assert_eq!(ActivityTitle::parse("   ").unwrap_err().field, "title");
        assert!(ActivityTitle::parse(&"é".repeat(200)).is_ok());
        assert!(ActivityTitle::parse(&"é".repeat(201)).is_err());
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
    }
}
