//! Reading a request: its body (size limit, content type, strict JSON) and its parameters (path,
//! query, headers). Everything here turns raw text into domain values or into an [`HttpError`]
//! that names what is wrong.
//!
//! Two classes of bad input answer differently: a body that is not the JSON we accept (syntax,
//! wrong types, unknown fields) is `400 malformed-request` with serde's message, which names the
//! field and position; a well-formed body with values out of range is `422 validation-failed`
//! listing every offending field. Bad path, query and header parameters are `400
//! invalid-parameter`, again listing every one.

use std::collections::BTreeSet;

use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;

use crate::application::{IdempotencyKey, IdempotentRequest, ListRequest};
use crate::domain::{
    ActivityDate, ActivityId, ActivityType, FieldError, PeriodKey, ValidationErrors, Version,
};

use super::entity_tag;
use super::problem::HttpError;

/// The largest body accepted. An activity is well under 30 KiB even with every text field full.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Page sizes a list accepts, and the default.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 20;
/// Longer than any cursor this API issues; anything longer is refused before decoding.
const MAX_CURSOR_CHARS: usize = 2048;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A body parsed as `T`, with the raw bytes it came from.
pub struct JsonBody<'r, T> {
    pub value: T,
    pub bytes: &'r [u8],
}

/// Media types a JSON body may be declared as; `extra` adds e.g. `application/merge-patch+json`.
fn check_content_type(request: &Request, extra: &[&str]) -> Result<(), HttpError> {
    let Some(value) = request
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
    else {
        // `cargo lambda invoke` and hand-written events often omit it; the body is still JSON.
        return Ok(());
    };
    let raw = value.to_str().unwrap_or("");
    let media_type = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" || extra.contains(&media_type.as_str()) {
        Ok(())
    } else {
        Err(HttpError::UnsupportedMediaType(raw.to_owned()))
    }
}

/// Reads the body as strict JSON: size limit first, then content type, then serde (whose message
/// names the unknown field or the wrong type, with line and column).
pub fn json_body<'r, T: DeserializeOwned>(
    request: &'r Request,
    extra_media_types: &[&str],
) -> Result<JsonBody<'r, T>, HttpError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(HttpError::PayloadTooLarge {
            size: bytes.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    check_content_type(request, extra_media_types)?;
    // serde would read a struct from a JSON array too (by position); only an object is accepted.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(HttpError::MalformedBody(
                "The request body is empty; send a JSON object.".into(),
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(HttpError::MalformedBody(
                "The request body must be a JSON object.".into(),
            ));
        }
    }
    let value = serde_json::from_slice(bytes)
        .map_err(|e| HttpError::MalformedBody(format!("The request body is not valid: {e}.")))?;
    Ok(JsonBody { value, bytes })
}

/// The activity id of the path (`/activities/{id}`).
pub fn activity_id(request: &Request) -> Result<ActivityId, HttpError> {
    let raw = request
        .path_parameters_ref()
        .and_then(|p| p.first("id"))
        .ok_or_else(|| FieldError::new("id", "is required in the path"))?;
    Ok(ActivityId::parse(raw)?)
}

/// `If-Match`: a version the client expects; `*` (or none) expects nothing.
pub fn if_match(request: &Request) -> Result<Option<Version>, HttpError> {
    let Some(value) = request.headers().get(lambda_http::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or("");
    if raw.trim() == "*" {
        return Ok(None);
    }
    Ok(Some(entity_tag::parse(raw)?))
}

/// `Idempotency-Key`, fingerprinted with the body it came with. The fingerprint is of the
/// body's canonical JSON, so a retry that re-serialises the same object (other key order or
/// spacing) is still recognised as the same request.
pub fn idempotency(request: &Request, body: &[u8]) -> Result<Option<IdempotentRequest>, HttpError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = IdempotencyKey::parse(value.to_str().unwrap_or(""))?;
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| canonical_json(&v))
        .unwrap_or_default();
    Ok(Some(IdempotentRequest::new(key, canonical.as_bytes())))
}

/// JSON with object keys sorted, whatever order serde_json's map keeps them in.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical_json(v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// Query parameters, checked against the names a route accepts.
struct Query<'r> {
    map: Option<&'r lambda_http::aws_lambda_events::query_map::QueryMap>,
}

impl<'r> Query<'r> {
    /// Refuses names the route does not know, so a typo (`?typ=run`) is an error, not a silently
    /// unfiltered answer.
    fn of(request: &'r Request, known: &[&str], errors: &mut ValidationErrors) -> Self {
        let map = request.query_string_parameters_ref();
        let names: BTreeSet<&str> = map.iter().flat_map(|m| m.iter()).map(|(k, _)| k).collect();
        for name in names {
            if !known.contains(&name) {
                errors.push(FieldError::new(
                    name,
                    format!(
                        "is not a parameter of this route (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        Self { map }
    }

    /// The one value of `name`, if given; giving it twice is an error.
    fn single(&self, name: &str) -> Result<Option<&'r str>, FieldError> {
        match self.map.and_then(|m| m.all(name)) {
            None => Ok(None),
            Some(values) if values.len() == 1 => Ok(values.first().copied()),
            Some(_) => Err(FieldError::new(name, "must be given at most once")),
        }
    }
}

/// `GET /activities?from&to&type&limit&cursor`.
pub fn list_request(request: &Request) -> Result<ListRequest, HttpError> {
    let mut errors = ValidationErrors::default();
    let query = Query::of(
        request,
        &["from", "to", "type", "limit", "cursor"],
        &mut errors,
    );
    let date = |name: &str, errors: &mut ValidationErrors| -> Option<ActivityDate> {
        let raw = errors.collect(query.single(name)).flatten()?;
        errors.collect(ActivityDate::parse_any(name, raw))
    };
    let from = date("from", &mut errors);
    let to = date("to", &mut errors);
    let activity_type = errors
        .collect(query.single("type"))
        .flatten()
        .and_then(|raw| errors.collect(ActivityType::parse(raw)));
    let limit = match errors.collect(query.single("limit")).flatten() {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        },
    };
    let cursor = errors.collect(query.single("cursor")).flatten();
    if let Some(cursor) = cursor
        && (cursor.is_empty() || cursor.len() > MAX_CURSOR_CHARS)
    {
        errors.push(FieldError::new("cursor", "is not a cursor this API issued"));
    }
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        errors.push(FieldError::new("from", "must not be after `to`"));
    }
    errors.into_result().map_err(HttpError::InvalidParameters)?;
    Ok(ListRequest {
        from,
        to,
        activity_type,
        limit,
        cursor: cursor.map(str::to_owned),
    })
}

/// `GET /stats?period=all|week|month&date=YYYY-MM-DD`: `period` defaults to `all`; `date` picks
/// the ISO week or calendar month and is required for those, because only the client knows
/// which day it is where the user lives; it is refused for `all`, which has no date.
pub fn stats_period(request: &Request) -> Result<PeriodKey, HttpError> {
    let mut errors = ValidationErrors::default();
    let query = Query::of(request, &["period", "date"], &mut errors);
    let period = errors.collect(query.single("period")).flatten();
    let date = errors
        .collect(query.single("date"))
        .flatten()
        .and_then(|raw| errors.collect(ActivityDate::parse_any("date", raw)));
    let key = match (period.unwrap_or("all"), date) {
        ("all", None) => Some(PeriodKey::AllTime),
        ("all", Some(_)) => {
            errors.push(FieldError::new(
                "date",
                "must not be given when period is `all`",
            ));
            None
        }
        ("week", Some(date)) => Some(PeriodKey::week_of(date.date())),
        ("month", Some(date)) => Some(PeriodKey::month_of(date.date())),
        ("week" | "month", None) => {
            // Only report a missing date when no malformed one was reported already.
            if !errors.errors().iter().any(|e| e.field == "date") {
                errors.push(FieldError::new(
                    "date",
                    "is required when period is `week` or `month`",
                ));
            }
            None
        }
        _ => {
            errors.push(FieldError::new("period", "must be one of all, week, month"));
            None
        }
    };
    match (errors.into_result(), key) {
        (Ok(()), Some(key)) => Ok(key),
        (Err(errors), _) => Err(HttpError::InvalidParameters(errors)),
        // Every branch above that yields no key records an error; kept total all the same.
        (Ok(()), None) => Err(FieldError::new("period", "is invalid").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order_and_spacing() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y":1,"x":2}], "a": "é"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":"é","b":[1,{"x":2,"y":1}]}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a":"é","b":[{"x":2,"y":1},1]}"#).unwrap();
        assert_ne!(canonical_json(&a), canonical_json(&c));
    }
}
