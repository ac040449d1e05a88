//! Identifiers parsed once at the edge, then trusted.

use std::fmt;

use serde::Serialize;

/// The IdP's `sub` claim, e.g. `auth0|65f0c2…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a user id must be 1 to 255 printable characters")]
pub struct InvalidUserId;

impl UserId {
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidUserId> {
        let raw = raw.into();
        let printable = raw.chars().all(|c| !c.is_control());
        if raw.is_empty() || raw.len() > 255 || !printable {
            return Err(InvalidUserId);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(UserId::parse("auth0|abc123").is_ok());
        assert_eq!(UserId::parse(""), Err(InvalidUserId));
        assert_eq!(UserId::parse("a\nb"), Err(InvalidUserId));
        assert_eq!(UserId::parse("x".repeat(256)), Err(InvalidUserId));
    }
}
