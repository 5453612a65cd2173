//! The JSON shapes of activities, in snake_case and in the domain's words: what a client sends to
//! create or change an activity, and what it gets back (an activity, a page of them).
//!
//! Incoming shapes are deliberately loose in *values* and strict in *structure*: unknown fields
//! and wrong JSON types fail serde (400), while every field is read as an `Option` so that all
//! missing and out-of-range values are collected into one 422 answer instead of one per retry.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, OffsetDateTime};

use crate::application::ListedActivities;
use crate::domain::{
    Activity, ActivityDate, ActivityDraft, ActivityPatch, ActivityTitle, ActivityType, Calories,
    Change, Distance, DurationMinutes, FieldError, FreeText, Tags, ValidationErrors,
};

/// An activity as the API returns it, written straight from the domain value as JSON text: no
/// copy of its strings, no `String` per id, date or timestamp, and the keys written as the
/// literals they are. Through serde, every key of every activity went through serde_json's
/// string escaping and three small writes of its own: 39 % of a list of 20's instructions
/// (callgrind; issue 15). Field order and values are what a derived `Serialize` of the shape
/// `{id, type, title, description, notes, duration_minutes, distance_km, calories_burned, tags,
/// activity_date, created_at, updated_at, version}` wrote (a test keeps it so); every value still
/// goes through serde_json, so strings are escaped as before.
#[derive(Debug, Clone, Copy)]
pub struct ActivityJson<'a>(pub &'a Activity);

/// About what one activity's JSON takes, to size a body's buffer once.
const ACTIVITY_JSON_SIZE: usize = 400;

impl ActivityJson<'_> {
    /// The activity's JSON text.
    pub fn to_json(self) -> String {
        let mut out = Vec::with_capacity(ACTIVITY_JSON_SIZE);
        self.write(&mut out);
        utf8(out)
    }

    fn write(self, out: &mut Vec<u8>) {
        let a = self.0;
        out.extend_from_slice(br#"{"id":"#);
        value(out, &a.id);
        out.extend_from_slice(br#","type":"#);
        value(out, &a.activity_type);
        out.extend_from_slice(br#","title":"#);
        value(out, a.title.as_str());
        out.extend_from_slice(br#","description":"#);
        value(out, &a.description.as_ref().map(FreeText::as_str));
        out.extend_from_slice(br#","notes":"#);
        value(out, &a.notes.as_ref().map(FreeText::as_str));
        out.extend_from_slice(br#","duration_minutes":"#);
        value(out, &a.duration.get());
        out.extend_from_slice(br#","distance_km":"#);
        value(out, &a.distance.map(Distance::km));
        out.extend_from_slice(br#","calories_burned":"#);
        value(out, &a.calories.map(Calories::get));
        out.extend_from_slice(br#","tags":"#);
        value(out, &TagsJson(&a.tags));
        out.extend_from_slice(br#","activity_date":"#);
        value(out, &a.activity_date);
        out.extend_from_slice(br#","created_at":"#);
        value(out, &Rfc3339(&a.created_at));
        out.extend_from_slice(br#","updated_at":"#);
        value(out, &Rfc3339(&a.updated_at));
        out.extend_from_slice(br#","version":"#);
        value(out, &a.version.get());
        out.push(b'}');
    }
}

/// Appends `value` as serde_json writes it. Writing into a `Vec` cannot fail, nor can these
/// values (strings, numbers, `null`, a list of strings) fail to serialise.
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).unwrap_or_default();
}

/// JSON punctuation, literal keys and serde_json's output are all UTF-8: this cannot fail.
fn utf8(text: Vec<u8>) -> String {
    String::from_utf8(text).unwrap_or_default()
}

struct TagsJson<'a>(&'a Tags);

impl Serialize for TagsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|tag| tag.as_str()))
    }
}

struct Rfc3339<'a>(&'a OffsetDateTime);

impl Serialize for Rfc3339<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        super::rfc3339::serialize(self.0, serializer)
    }
}

/// One page of a listing, `{"items": [...], "next_cursor": ...}`; `next_cursor` is `null` on the
/// last page.
#[derive(Debug, Clone, Copy)]
pub struct ActivityPageJson<'a>(pub &'a ListedActivities);

impl ActivityPageJson<'_> {
    /// The page's JSON text, in one buffer sized for its activities.
    pub fn to_json(self) -> String {
        let page = self.0;
        let mut out = Vec::with_capacity(64 + page.items.len() * ACTIVITY_JSON_SIZE);
        out.extend_from_slice(br#"{"items":["#);
        for (i, activity) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            ActivityJson(activity).write(&mut out);
        }
        out.extend_from_slice(br#"],"next_cursor":"#);
        value(&mut out, &page.next_cursor);
        out.push(b'}');
        utf8(out)
    }
}

/// The body of `POST /activities`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object with the fields of an activity"
)]
pub struct NewActivityJson {
    #[serde(rename = "type")]
    pub activity_type: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub notes: Option<String>,
    pub duration_minutes: Option<serde_json::Number>,
    pub distance_km: Option<f64>,
    pub calories_burned: Option<serde_json::Number>,
    pub tags: Option<Vec<String>>,
    pub activity_date: Option<String>,
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, FieldError> {
    value.ok_or_else(|| FieldError::new(field, "is required"))
}

/// A JSON number as a whole, non-negative count; the domain type then checks the range. A whole
/// number written with a fraction (`30.0`) is that number: JSON Schema's `integer`, which the
/// OpenAPI document promises, includes it.
fn whole_number(field: &str, number: &serde_json::Number) -> Result<u32, FieldError> {
    let whole_float = number
        .as_f64()
        .filter(|f| number.is_f64() && f.fract() == 0.0);
    match (number.as_u64(), number.as_i64(), whole_float) {
        // Saturating keeps a huge number huge, so the domain's range message applies.
        (Some(n), _, _) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        (None, Some(_), _) => Err(FieldError::new(field, "must not be negative")),
        (None, None, Some(f)) if f < 0.0 => Err(FieldError::new(field, "must not be negative")),
        // Float to int casts saturate in Rust: a huge whole number stays out of range.
        (None, None, Some(f)) => Ok(f as u32),
        (None, None, None) => Err(FieldError::new(field, "must be a whole number")),
    }
}

impl NewActivityJson {
    /// Parses every field, collecting every error; `today` bounds `activity_date`.
    pub fn into_draft(self, today: Date) -> Result<ActivityDraft, ValidationErrors> {
        let mut e = ValidationErrors::default();
        let activity_type = e
            .collect(required("type", self.activity_type))
            .and_then(|raw| e.collect(ActivityType::parse(&raw)));
        let title = e
            .collect(required("title", self.title))
            .and_then(|raw| e.collect(ActivityTitle::parse(&raw)));
        let description = self
            .description
            .and_then(|raw| e.collect(FreeText::parse("description", &raw)));
        let notes = self
            .notes
            .and_then(|raw| e.collect(FreeText::parse("notes", &raw)));
        let duration = e
            .collect(required("duration_minutes", self.duration_minutes))
            .and_then(|n| e.collect(whole_number("duration_minutes", &n)))
            .and_then(|n| e.collect(DurationMinutes::parse(n)));
        let distance = self
            .distance_km
            .and_then(|km| e.collect(Distance::from_km(km)));
        let calories = self
            .calories_burned
            .and_then(|n| e.collect(whole_number("calories_burned", &n)))
            .and_then(|n| e.collect(Calories::parse(n)));
        let tags = match self.tags {
            None => Some(Tags::default()),
            Some(raw) => e.collect(Tags::parse(&raw)),
        };
        let activity_date = e
            .collect(required("activity_date", self.activity_date))
            .and_then(|raw| e.collect(ActivityDate::parse(&raw, today)));
        // Any error, including one in an optional field, fails the whole draft.
        e.into_result()?;
        match (activity_type, title, duration, tags, activity_date) {
            (Some(activity_type), Some(title), Some(duration), Some(tags), Some(activity_date)) => {
                Ok(ActivityDraft {
                    activity_type,
                    title,
                    description,
                    notes,
                    duration,
                    distance,
                    calories,
                    tags,
                    activity_date,
                })
            }
            // Unreachable while every `None` above records an error; kept total instead of panicking.
            _ => Err(FieldError::new("body", "is incomplete").into()),
        }
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`), which JSON
/// merge patch gives different meanings: keep versus clear.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of `PATCH /activities/{id}`: a JSON merge patch (RFC 7396). An absent field is kept,
/// `null` clears an optional field, and a required field cannot be cleared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object with the fields of an activity to change"
)]
pub struct ActivityPatchJson {
    #[serde(rename = "type", default, deserialize_with = "present")]
    pub activity_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub duration_minutes: Option<Option<serde_json::Number>>,
    #[serde(default, deserialize_with = "present")]
    pub distance_km: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub calories_burned: Option<Option<serde_json::Number>>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub activity_date: Option<Option<String>>,
}

/// A required field in a patch: absent keeps it, `null` is an error, a value replaces it.
fn replace<R, T>(
    e: &mut ValidationErrors,
    field: &str,
    raw: Option<Option<R>>,
    parse: impl FnOnce(R) -> Result<T, FieldError>,
) -> Option<T> {
    match raw {
        None => None,
        Some(None) => {
            e.push(FieldError::new(
                field,
                "is required and cannot be cleared with null",
            ));
            None
        }
        Some(Some(raw)) => e.collect(parse(raw)),
    }
}

/// An optional field in a patch: absent keeps it, `null` clears it, a value replaces it.
fn change<R, T>(
    e: &mut ValidationErrors,
    raw: Option<Option<R>>,
    parse: impl FnOnce(R) -> Result<T, FieldError>,
) -> Change<T> {
    match raw {
        None => Change::Keep,
        Some(None) => Change::Clear,
        Some(Some(raw)) => e.collect(parse(raw)).map_or(Change::Keep, Change::Set),
    }
}

impl ActivityPatchJson {
    pub fn into_patch(self, today: Date) -> Result<ActivityPatch, ValidationErrors> {
        let mut e = ValidationErrors::default();
        let patch = ActivityPatch {
            activity_type: replace(&mut e, "type", self.activity_type, |raw| {
                ActivityType::parse(&raw)
            }),
            title: replace(&mut e, "title", self.title, |raw| {
                ActivityTitle::parse(&raw)
            }),
            description: change(&mut e, self.description, |raw| {
                FreeText::parse("description", &raw)
            }),
            notes: change(&mut e, self.notes, |raw| FreeText::parse("notes", &raw)),
            duration: replace(&mut e, "duration_minutes", self.duration_minutes, |n| {
                DurationMinutes::parse(whole_number("duration_minutes", &n)?)
            }),
            distance: change(&mut e, self.distance_km, Distance::from_km),
            calories: change(&mut e, self.calories_burned, |n| {
                Calories::parse(whole_number("calories_burned", &n)?)
            }),
            tags: change(&mut e, self.tags, |raw| Tags::parse(&raw)),
            activity_date: replace(&mut e, "activity_date", self.activity_date, |raw| {
                ActivityDate::parse(&raw, today)
            }),
        };
        e.into_result().map(|()| patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 26);

    #[test]
    fn a_draft_reports_every_bad_field_at_once() {
        let body: NewActivityJson = serde_json::from_str(
            r#"{"type":"surfing","duration_minutes":-3,"calories_burned":1.5,"distance_km":-1,
                "activity_date":"2026-12-25","tags":["a","a"]}"#,
        )
        .unwrap();
        let errors = body.into_draft(TODAY).unwrap_err();
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "type",
                "title",
                "duration_minutes",
                "distance_km",
                "calories_burned",
                "tags[1]",
                "activity_date"
            ]
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_fail_to_parse() {
        let unknown = serde_json::from_str::<NewActivityJson>(r#"{"user_id":"bob"}"#).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `user_id`"),
            "{unknown}"
        );
        let wrong =
            serde_json::from_str::<NewActivityJson>(r#"{"duration_minutes":"30"}"#).unwrap_err();
        assert!(wrong.to_string().contains("line 1"), "{wrong}");
        let not_object = serde_json::from_str::<ActivityPatchJson>(r#""run""#).unwrap_err();
        assert!(
            not_object.to_string().contains("a JSON object"),
            "{not_object}"
        );
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let patch: ActivityPatchJson =
            serde_json::from_str(r#"{"notes":null,"distance_km":3.5}"#).unwrap();
        let patch = patch.into_patch(TODAY).unwrap();
        assert_eq!(patch.notes, Change::Clear);
        assert_eq!(patch.description, Change::Keep);
        assert_eq!(patch.distance, Change::Set(Distance::from_km(3.5).unwrap()));
        let clearing_required: ActivityPatchJson =
            serde_json::from_str(r#"{"title":null,"duration_minutes":null}"#).unwrap();
        let errors = clearing_required.into_patch(TODAY).unwrap_err();
        assert_eq!(errors.errors().len(), 2);
    }

    #[test]
    fn an_activity_is_written_in_the_apis_shape() {
        let body: NewActivityJson = serde_json::from_str(
            r#"{"type":"cycling","title":"Ride \"home\"","notes":"tired\n☔ \\ \u0007","duration_minutes":45,
                "distance_km":12.345,"tags":["commute","rain"],"activity_date":"2026-11-25"}"#,
        )
        .unwrap();
        let created = time::macros::datetime!(2026-11-26 08:15:30.1205 UTC);
        let mut activity = Activity::create(
            crate::domain::ActivityId::from_ulid(ulid::Ulid::from_parts(1_764_000_000_000, 7)),
            crate::domain::UserId::parse("alice").unwrap(),
            body.into_draft(TODAY).unwrap(),
            created,
        );
        activity.updated_at = time::macros::datetime!(2026-11-26 09:00 UTC);
        let rfc3339 = |at: OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let expected = serde_json::json!({
            "id": activity.id.to_string(),
            "type": "cycling",
            "title": "Ride \"home\"",
            "description": null,
            "notes": "tired\n☔ \\ \u{7}",
            "duration_minutes": 45,
            "distance_km": 12.345,
            "calories_burned": null,
            "tags": ["commute", "rain"],
            "activity_date": "2026-11-25",
            "created_at": rfc3339(activity.created_at),
            "updated_at": rfc3339(activity.updated_at),
            "version": activity.version.get(),
        });
        let written = ActivityJson(&activity).to_json();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&written).unwrap(),
            expected
        );
        // The fields in the order the derived shape wrote them.
        let order = [
            "id",
            "type",
            "title",
            "description",
            "notes",
            "duration_minutes",
            "distance_km",
            "calories_burned",
            "tags",
            "activity_date",
            "created_at",
            "updated_at",
            "version",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|field| written.find(&format!("\"{field}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{written}");
        assert!(
            written.contains(r#""created_at":"2026-11-26T08:15:30.1205Z""#),
            "{written}"
        );
        // Strings escaped as serde_json escapes them.
        assert!(
            written.contains(
                r#""title":"Ride \"home\"","description":null,"notes":"tired\n☔ \\ \u0007""#
            ),
            "{written}"
        );
        let page = ListedActivities {
            items: vec![Arc::new(activity.clone()), Arc::new(activity)],
            next_cursor: Some("next".into()),
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ActivityPageJson(&page).to_json()).unwrap(),
            serde_json::json!({"items": [expected.clone(), expected], "next_cursor": "next"})
        );
        let last = ListedActivities {
            items: Vec::new(),
            next_cursor: None,
        };
        assert_eq!(
            ActivityPageJson(&last).to_json(),
            r#"{"items":[],"next_cursor":null}"#
        );
    }

    #[test]
    fn a_whole_number_may_be_written_with_a_fraction() {
        let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).unwrap();
        assert_eq!(whole_number("n", &number("30")), Ok(30));
        assert_eq!(whole_number("n", &number("30.0")), Ok(30));
        assert_eq!(whole_number("n", &number("3e1")), Ok(30));
        assert!(whole_number("n", &number("30.5")).is_err());
        assert!(whole_number("n", &number("-1.0")).is_err());
        assert_eq!(whole_number("n", &number("1e30")), Ok(u32::MAX));
    }
}
