//! Opaque, tamper-checked list cursors. A cursor seals the store's page position together with the
//! user and the filters it was issued for, under an HMAC: a client can neither forge a position
//! nor replay a cursor under another user or another filter.
//!
//! Every cursor names the key that sealed it (`<key id>.<payload>.<tag>`), and a codec holds a key
//! ring: the current key seals, every key in the ring opens. Rotating the secret is then adding a
//! key and making it current, waiting out the cursors of the old one (they live as long as a
//! client pages, minutes), and dropping it — no outstanding cursor breaks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::UserId;

use super::ports::{ListQuery, PagePosition};

type HmacSha256 = Hmac<Sha256>;

/// The shortest key a ring accepts: an HMAC-SHA256 key should carry 256 bits.
pub const MIN_KEY_BYTES: usize = 32;

/// One cursor key: the id every cursor it seals carries, and its secret.
#[derive(Clone)]
pub struct CursorKey {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for CursorKey {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a key ring was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("the key ring is not a JSON object of strings: {0}")]
    NotJson(String),
    #[error("the key ring has no `current` key id")]
    NoCurrent,
    #[error("the current key `{0}` is not in the ring")]
    CurrentMissing(String),
    #[error("key id `{0}` must be 1 to 32 characters of A-Z, a-z, 0-9, `-`, `_`")]
    BadId(String),
    #[error("key `{0}` is shorter than {MIN_KEY_BYTES} bytes")]
    TooShort(String),
}

impl CursorKey {
    pub fn new(id: &str, secret: impl Into<Vec<u8>>) -> Result<Self, KeyRingError> {
        let valid_id = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_id {
            return Err(KeyRingError::BadId(id.to_owned()));
        }
        let secret = secret.into();
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyRingError::TooShort(id.to_owned()));
        }
        Ok(Self {
            id: id.to_owned(),
            secret,
        })
    }
}

/// The keys cursors are sealed and opened with.
#[derive(Clone, Debug)]
pub struct CursorKeys {
    current: CursorKey,
    /// Keys that still open cursors during a rotation; they seal nothing.
    previous: Vec<CursorKey>,
}

impl CursorKeys {
    /// A ring of one key.
    pub fn single(key: CursorKey) -> Self {
        Self {
            current: key,
            previous: Vec::new(),
        }
    }

    /// Reads a ring from its stored form, a flat JSON object: `current` names the sealing key,
    /// every other member is a key id and its secret, e.g.
    /// `{"current": "k2", "k2": "<new secret>", "k1": "<old secret>"}`. The flat shape is what
    /// CloudFormation's `GenerateSecretString` (`SecretStringTemplate` + `GenerateStringKey`)
    /// creates, so the first key needs no human to see it.
    pub fn from_json(text: &str) -> Result<Self, KeyRingError> {
        let members: std::collections::BTreeMap<String, String> =
            serde_json::from_str(text).map_err(|e| KeyRingError::NotJson(e.to_string()))?;
        let current_id = members.get("current").ok_or(KeyRingError::NoCurrent)?;
        let mut current = None;
        let mut previous = Vec::new();
        for (id, secret) in &members {
            if id == "current" {
                continue;
            }
            let key = CursorKey::new(id, secret.as_bytes().to_vec())?;
            if id == current_id {
                current = Some(key);
            } else {
                previous.push(key);
            }
        }
        let current = current.ok_or_else(|| KeyRingError::CurrentMissing(current_id.clone()))?;
        Ok(Self { current, previous })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    fn find(&self, id: &str) -> Option<&CursorKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
    }
}

/// Seals and opens cursors with a server-side key ring.
#[derive(Clone)]
pub struct CursorCodec {
    keys: CursorKeys,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// What the cursor is bound to: user and filters.
    scope: String,
    position: PagePosition,
}

impl CursorCodec {
    /// A codec with one key, id `0`: memory mode and local runs (whose secret
    /// `Settings::cursor_secret` checks) and tests. AWS loads a ring ([`CursorKeys::from_json`]).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            keys: CursorKeys::single(CursorKey {
                id: "0".to_owned(),
                secret: secret.into(),
            }),
        }
    }

    pub fn with_keys(keys: CursorKeys) -> Self {
        Self { keys }
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

    /// The MAC of a key id and payload: the id is covered, so a cursor cannot be moved to
    /// another key.
    fn mac(key: &CursorKey, encoded_payload: &str) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&key.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(key.id.as_bytes());
        mac.update(b".");
        mac.update(encoded_payload.as_bytes());
        mac
    }

    pub fn seal(&self, user_id: &UserId, query: &ListQuery, position: &PagePosition) -> String {
        let sealed = Sealed {
            scope: Self::scope(user_id, query),
            position: position.clone(),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).unwrap_or_default());
        let key = &self.keys.current;
        let tag = Self::mac(key, &payload).finalize().into_bytes();
        format!("{}.{payload}.{}", key.id, URL_SAFE_NO_PAD.encode(tag))
    }

    /// The position inside a cursor sealed by a key of this ring for the same user and filters;
    /// `None` for anything else (garbled, forged, an unknown or retired key, another user's or
    /// another filter's cursor).
    pub fn open(&self, user_id: &UserId, query: &ListQuery, cursor: &str) -> Option<PagePosition> {
        let mut parts = cursor.split('.');
        let (id, payload, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let key = self.keys.find(id)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        Self::mac(key, payload).verify_slice(&tag).ok()?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
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
        let parts: Vec<&str> = cursor.split('.').collect();
        let [id, payload, tag] = parts[..] else {
            panic!("{cursor}")
        };
        let forged_payload =
            URL_SAFE_NO_PAD.encode(br#"{"scope":"alice|None|None|None","position":2}"#);
        assert_eq!(
            codec.open(&alice, &query(), &format!("{id}.{forged_payload}.{tag}")),
            None
        );
        assert_eq!(
            codec.open(&alice, &query(), &format!("{payload}.{tag}")),
            None
        );
        assert_eq!(codec.open(&alice, &query(), "garbage"), None);
    }

    fn ring(json: serde_json::Value) -> CursorKeys {
        CursorKeys::from_json(&json.to_string()).unwrap()
    }

    const OLD: &str = "old-secret-old-secret-old-secret-0001";
    const NEW: &str = "new-secret-new-secret-new-secret-0002";

    /// A rotation: cursors sealed with the old key still open while it stays in the ring; new
    /// cursors name the new key; once the old key is dropped its cursors are refused — and a
    /// cursor relabelled with another key id does not open either.
    #[test]
    fn an_old_key_still_opens_its_cursors_during_a_rotation() {
        let alice = UserId::parse("alice").unwrap();
        let position = PagePosition(serde_json::json!({"k": "v"}));
        let before = CursorCodec::with_keys(ring(serde_json::json!({"current": "k1", "k1": OLD})));
        let old_cursor = before.seal(&alice, &query(), &position);
        assert!(old_cursor.starts_with("k1."), "{old_cursor}");

        let during = CursorCodec::with_keys(ring(
            serde_json::json!({"current": "k2", "k2": NEW, "k1": OLD}),
        ));
        assert_eq!(
            during.open(&alice, &query(), &old_cursor),
            Some(position.clone())
        );
        let new_cursor = during.seal(&alice, &query(), &position);
        assert!(new_cursor.starts_with("k2."), "{new_cursor}");

        let after = CursorCodec::with_keys(ring(serde_json::json!({"current": "k2", "k2": NEW})));
        assert_eq!(after.open(&alice, &query(), &new_cursor), Some(position));
        assert_eq!(after.open(&alice, &query(), &old_cursor), None);
        let relabelled = format!("k2{}", &old_cursor[2..]);
        assert_eq!(during.open(&alice, &query(), &relabelled), None);
    }

    #[test]
    fn a_key_ring_must_name_a_current_key_of_enough_bytes() {
        assert_eq!(
            CursorKeys::from_json(r#"{"k1": "x"}"#).unwrap_err(),
            KeyRingError::NoCurrent
        );
        assert_eq!(
            CursorKeys::from_json(&serde_json::json!({"current": "k2", "k1": OLD}).to_string())
                .unwrap_err(),
            KeyRingError::CurrentMissing("k2".into())
        );
        assert_eq!(
            CursorKeys::from_json(r#"{"current": "k1", "k1": "short"}"#).unwrap_err(),
            KeyRingError::TooShort("k1".into())
        );
        assert_eq!(
            CursorKeys::from_json(&serde_json::json!({"current": "a.b", "a.b": OLD}).to_string())
                .unwrap_err(),
            KeyRingError::BadId("a.b".into())
        );
        assert!(matches!(
            CursorKeys::from_json("not json").unwrap_err(),
            KeyRingError::NotJson(_)
        ));
        let keys = ring(serde_json::json!({"current": "k1", "k1": OLD}));
        assert_eq!(keys.current_id(), "k1");
        assert!(
            !format!("{keys:?}").contains(OLD),
            "secrets are never printed"
        );
    }
}
