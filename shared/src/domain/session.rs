//! A session as values: the cookie's token (only its hash is ever stored), the CSRF token
//! derived from it, and what a valid session carries.
//!
//! The token is `{slot}.{random}`: 256 random bits after the user's cache slot ([`user_slot`]).
//! The slot lets the hot path name every Redis key of the request (the session, the user's
//! snapshot, the rate counters) before reading any of them, all in one hash slot, so one script
//! reads and counts them in one round trip on a clustered cache. The slot is part of what is
//! hashed into the storage key: a cookie with an edited slot names no session.

use std::fmt;

use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::domain::ids::{UserId, hex, random_token};

pub const COOKIE_NAME: &str = "sid";
const TOKEN_BYTES: usize = 32;
/// Hex digits of a user's cache slot.
const SLOT_LEN: usize = 16;

/// The user's cache slot: 64 bits of SHA-256 over the user id, as hex. Every Redis key of the
/// user carries it as a hash tag (`{slot}`), so they live in one cluster hash slot.
pub fn user_slot(user: &UserId) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"slot\0");
    hasher.update(user.as_str().as_bytes());
    hex(&hasher.finalize()[..SLOT_LEN / 2])
}

/// The raw cookie value. Only its hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A fresh token for a session of `user`.
    pub fn generate(user: &UserId) -> Self {
        Self(format!("{}.{}", user_slot(user), random_token()))
    }

    /// Accepts only what [`SessionToken::generate`] makes, so junk never reaches a store.
    pub fn parse(raw: &str) -> Option<Self> {
        let (slot, random) = raw.split_once('.')?;
        let slot_ok = slot.len() == SLOT_LEN && slot.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let bytes = BASE64_URL_SAFE_NO_PAD.decode(random).ok()?;
        (slot_ok && bytes.len() == TOKEN_BYTES).then(|| Self(raw.to_owned()))
    }

    /// The cache slot of the user the token was issued to.
    pub fn slot(&self) -> &str {
        &self.0[..SLOT_LEN]
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The storage key: hex SHA-256 of the token.
    pub fn key(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// The CSRF token, derived from the cookie so it needs no storage; the stored hash cannot
    /// produce it and a page on another origin cannot read the cookie it comes from.
    pub fn csrf_token(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"csrf\0");
        hasher.update(self.0.as_bytes());
        BASE64_URL_SAFE_NO_PAD.encode(hasher.finalize())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub key: String,
    pub user_id: UserId,
    pub created_at: i64,
    pub absolute_expires_at: i64,
    /// When the person last gave their credentials to the IdP, as its ID token said (unix
    /// seconds); None when it did not say.
    pub authenticated_at: Option<i64>,
    pub csrf_token: String,
}

/// Where the browser is; kept with the session for the user's own security overview.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn tokens_carry_the_users_slot_and_256_random_bits() {
        let ada = user("auth0|ada");
        let a = SessionToken::generate(&ada);
        let b = SessionToken::generate(&ada);
        assert_ne!(a, b);
        assert_eq!(a.slot(), user_slot(&ada));
        assert_eq!(a.slot(), b.slot());
        assert_ne!(user_slot(&ada), user_slot(&user("auth0|bob")));
        let (_, random) = a.expose().split_once('.').unwrap();
        assert_eq!(BASE64_URL_SAFE_NO_PAD.decode(random).unwrap().len(), 32);
        assert_eq!(SessionToken::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.key().len(), 64);
        assert_ne!(a.key(), a.expose());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let valid = SessionToken::generate(&user("auth0|ada"));
        let raw = valid.expose();
        let (slot, random) = raw.split_once('.').unwrap();
        let bad = [
            "".to_owned(),
            "abc".to_owned(),
            random.to_owned(),
            raw[1..].to_owned(),
            format!("{raw}A"),
            format!("{}.{random}", slot.to_uppercase()),
            format!("{slot}{random}"),
            "!!!!".to_owned(),
        ];
        for bad in bad {
            assert_eq!(SessionToken::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn an_edited_slot_names_another_session() {
        let token = SessionToken::generate(&user("auth0|ada"));
        let edited = format!("{}{}", user_slot(&user("auth0|bob")), &token.expose()[16..]);
        assert_ne!(SessionToken::parse(&edited).unwrap().key(), token.key());
    }

    #[test]
    fn the_csrf_token_is_tied_to_the_cookie_but_is_not_its_hash() {
        let token = SessionToken::generate(&user("auth0|ada"));
        assert_eq!(token.csrf_token(), token.csrf_token());
        assert_ne!(token.csrf_token(), SessionToken::generate(&user("auth0|ada")).csrf_token());
        assert!(!token.key().contains(&token.csrf_token()));
    }

    #[test]
    fn tokens_never_print() {
        assert_eq!(format!("{:?}", SessionToken::generate(&user("auth0|ada"))), "SessionToken([redacted])");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Any text: a session token only if it is 16 hex digits, a dot and exactly 43 base64url
            /// characters (32 bytes).
            #[test]
            fn session_tokens_are_strict(raw in any::<String>()) {
                if SessionToken::parse(&raw).is_some() {
                    prop_assert_eq!(raw.len(), 16 + 1 + 43);
                    prop_assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
                }
            }
        }
    }
}
