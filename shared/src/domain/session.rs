//! A session as values: the cookie's token (only its hash is ever stored), the CSRF token
//! derived from it, and what a valid session carries.

use std::fmt;

use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::domain::ids::{UserId, hex, random_token};

pub const COOKIE_NAME: &str = "sid";
const TOKEN_BYTES: usize = 32;

/// The raw cookie value. Only its hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        Self(random_token())
    }

    /// Accepts only what [`SessionToken::generate`] makes, so junk never reaches a store.
    pub fn parse(raw: &str) -> Option<Self> {
        let bytes = BASE64_URL_SAFE_NO_PAD.decode(raw).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| Self(raw.to_owned()))
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

    #[test]
    fn tokens_carry_256_random_bits() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(BASE64_URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_eq!(SessionToken::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.key().len(), 64);
        assert_ne!(a.key(), a.expose());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let valid = SessionToken::generate();
        for bad in ["", "abc", &valid.expose()[1..], &format!("{}A", valid.expose()), "!!!!"] {
            assert_eq!(SessionToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_csrf_token_is_tied_to_the_cookie_but_is_not_its_hash() {
        let token = SessionToken::generate();
        assert_eq!(token.csrf_token(), token.csrf_token());
        assert_ne!(token.csrf_token(), SessionToken::generate().csrf_token());
        assert!(!token.key().contains(&token.csrf_token()));
    }

    #[test]
    fn tokens_never_print() {
        assert_eq!(format!("{:?}", SessionToken::generate()), "SessionToken([redacted])");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Any text: a session token only if it is exactly 43 base64url characters (32 bytes).
            #[test]
            fn session_tokens_are_strict(raw in any::<String>()) {
                if SessionToken::parse(&raw).is_some() {
                    prop_assert_eq!(raw.len(), 43);
                    prop_assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                }
            }
        }
    }
}
