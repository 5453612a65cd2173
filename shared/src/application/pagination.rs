//! Opaque, tamper-checked list cursors. A cursor seals the store's page position together with the
//! user and the filters it was issued for, under an HMAC: a client can neither forge a position
//! nor replay a cursor under another user or another filter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::UserId;

use super::ports::{ListQuery, PagePosition};

type HmacSha256 = Hmac<Sha256>;

/// Seals and opens cursors with a server-side secret (`CURSOR_SECRET`).
#[derive(Clone)]
pub struct CursorCodec {
    secret: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// What the cursor is bound to: user and filters.
    scope: String,
    position: PagePosition,
}

impl CursorCodec {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    fn scope(user_id: &UserId, query: &ListQuery) -> String {
        let date = |d: Option<crate::domain::ActivityDate>| d.map(|d| d.to_string());
        format!(
            "{}|{:?}|{:?}|{:?}",
            user_id,
            date(query.from),
            date(query.to),
            query.activity_type.map(|t| t.as_str())
        )
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(payload);
        mac
    }

    pub fn seal(&self, user_id: &UserId, query: &ListQuery, position: &PagePosition) -> String {
        let sealed = Sealed {
            scope: Self::scope(user_id, query),
            position: position.clone(),
        };
        let payload = serde_json::to_vec(&sealed).unwrap_or_default();
        let tag = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The position inside a cursor this codec sealed for the same user and filters; `None` for
    /// anything else (garbled, forged, another user's or another filter's cursor).
    pub fn open(&self, user_id: &UserId, query: &ListQuery, cursor: &str) -> Option<PagePosition> {
        let (payload, tag) = cursor.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(&payload).verify_slice(&tag).ok()?;
        let sealed: Sealed = serde_json::from_slice(&payload).ok()?;
        (sealed.scope == Self::scope(user_id, query)).then_some(sealed.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ActivityType;

    fn query() -> ListQuery {
        ListQuery {
            from: None,
            to: None,
            activity_type: None,
            limit: 20,
            after: None,
        }
    }

    #[test]
    fn a_cursor_opens_only_for_its_user_and_filters() {
        let codec = CursorCodec::new(b"secret".to_vec());
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let position = PagePosition(serde_json::json!({"k": "v"}));
        let cursor = codec.seal(&alice, &query(), &position);

        assert_eq!(codec.open(&alice, &query(), &cursor), Some(position));
        assert_eq!(codec.open(&bob, &query(), &cursor), None);
        let filtered = ListQuery {
            activity_type: Some(ActivityType::Yoga),
            ..query()
        };
        assert_eq!(codec.open(&alice, &filtered, &cursor), None);
        assert_eq!(
            CursorCodec::new(b"other".to_vec()).open(&alice, &query(), &cursor),
            None
        );
    }

    #[test]
    fn a_tampered_cursor_is_refused() {
        let codec = CursorCodec::new(b"secret".to_vec());
        let alice = UserId::parse("alice").unwrap();
        let cursor = codec.seal(&alice, &query(), &PagePosition(serde_json::json!(1)));
        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged_payload =
            URL_SAFE_NO_PAD.encode(br#"{"scope":"alice|None|None|None","position":2}"#);
        assert_eq!(
            codec.open(&alice, &query(), &format!("{forged_payload}.{tag}")),
            None
        );
        assert_eq!(codec.open(&alice, &query(), payload), None);
        assert_eq!(codec.open(&alice, &query(), "garbage"), None);
    }
}
