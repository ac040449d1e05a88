//! Identifiers parsed once at the edge, then trusted; and the one source of random tokens.

use std::fmt;

use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Serialize;
use time::OffsetDateTime;

/// `N` random bytes from the OS-seeded CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// 32 random bytes (256 bits), base64url: session ids, OIDC state, nonce and PKCE verifier.
pub fn random_token() -> String {
    BASE64_URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` random bytes as hex (short opaque ids, request ids, test prefixes).
pub fn random_hex<const N: usize>() -> String {
    hex(&random_bytes::<N>())
}

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
        // The id starts every S3 key of the user (`{userId}/recordings/…`): a `/` could reach
        // into another user's prefix.
        let printable = raw.chars().all(|c| !c.is_control() && c != '/');
        if raw.is_empty() || raw.len() > 255 || !printable {
            return Err(InvalidUserId);
        }
        Ok(Self(raw))
    }

    /// A user id as a URL path carries it, percent-encoded (`auth0%7C…` is `auth0|…`).
    pub fn from_path(raw: &str) -> Option<Self> {
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
        Self::parse(decoded).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owner of workspace `id`'s shared voice library: `workspace:{id}`. A library is kept
    /// as a person's voices are (same table, slots and residency, its own S3 prefix); sign-in
    /// refuses a `sub` of this form, so no person is ever one.
    pub fn library_of(workspace: &Ulid) -> Self {
        Self(format!("{LIBRARY}{workspace}"))
    }

    /// The workspace whose library this id is, if it is one.
    pub fn library_workspace(&self) -> Option<Ulid> {
        self.0.strip_prefix(LIBRARY).and_then(Ulid::parse)
    }
}

/// How a workspace library's owner id begins.
const LIBRARY: &str = "workspace:";

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address as the IdP asserted it: trimmed, one `@` with text on both sides, at most
/// 254 characters. (Deliverability is the IdP's business; this only keeps junk out.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an email address")]
pub struct InvalidEmail;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let raw = raw.trim();
        let (local, domain) = raw.split_once('@').ok_or(InvalidEmail)?;
        let valid = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && raw.chars().count() <= 254
            && !raw.chars().any(|c| c.is_control() || c.is_whitespace());
        if valid { Ok(Self(raw.to_owned())) } else { Err(InvalidEmail) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A voice id as ElevenLabs knows it: 1 to 64 letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ElevenLabsVoiceId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be 1 to 64 letters, digits, '-' or '_'")]
pub struct InvalidVoiceId;

impl ElevenLabsVoiceId {
    pub fn parse(raw: &str) -> Result<Self, InvalidVoiceId> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid { Ok(Self(raw.to_owned())) } else { Err(InvalidVoiceId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ElevenLabsVoiceId {
    type Error = InvalidVoiceId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl fmt::Display for ElevenLabsVoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32, so ids sort by time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Ulid(String);

/// Our ids are ULIDs: recordings, cloned voices, voice samples, consent records.
pub type RecordingId = Ulid;
pub type VoiceId = Ulid;
pub type SampleId = Ulid;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Ulid {
    pub fn generate(at: OffsetDateTime) -> Self {
        let millis = (at.unix_timestamp_nanos() / 1_000_000) as u128 & ((1 << 48) - 1);
        let random = random_bytes::<10>();
        let value = (millis << 80) | random.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        let text = (0..26).rev().map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char).collect();
        Self(text)
    }

    /// When the id was made (its first 48 bits, milliseconds since the epoch).
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        let millis = self.0.bytes().take(10).try_fold(0i128, |acc, b| {
            let digit = CROCKFORD.iter().position(|c| *c == b)?;
            Some((acc << 5) | digit as i128)
        })?;
        OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let valid = raw.len() == 26 && raw.bytes().all(|b| CROCKFORD.contains(&b)) && raw.as_bytes()[0] <= b'7';
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(UserId::parse("auth0|abc123").is_ok());
        assert_eq!(UserId::parse(""), Err(InvalidUserId));
        assert_eq!(UserId::parse("a\nb"), Err(InvalidUserId));
        assert_eq!(UserId::parse("x".repeat(256)), Err(InvalidUserId));
        assert_eq!(UserId::parse("auth0|alice/recordings"), Err(InvalidUserId), "a slash reaches into S3 prefixes");
        assert_eq!(UserId::parse("a\u{7f}b"), Err(InvalidUserId));
    }

    #[test]
    fn a_ulid_tells_the_millisecond_it_was_made() {
        let at = datetime!(2026-12-01 16:45:12.345 UTC);
        assert_eq!(Ulid::generate(at).timestamp(), Some(at));
    }

    #[test]
    fn emails_need_one_at_with_text_around_it() {
        assert_eq!(Email::parse(" ada@example.com ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "@example.com", "ada@", "a@b@c", "a b@example.com", "a\n@example.com"] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad:?}");
        }
    }

    #[test]
    fn elevenlabs_voice_ids_are_short_and_plain() {
        assert!(ElevenLabsVoiceId::parse("21m00Tcm4TlvDq8ikWAM").is_ok());
        for bad in ["", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert_eq!(ElevenLabsVoiceId::parse(bad), Err(InvalidVoiceId), "{bad:?}");
        }
    }

    #[test]
    fn random_tokens_carry_256_bits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(BASE64_URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_eq!(random_hex::<6>().len(), 12);
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn recording_ids_sort_by_time_and_parse_back() {
        let earlier = RecordingId::generate(datetime!(2026-11-01 0:00 UTC));
        let later = RecordingId::generate(datetime!(2026-11-01 0:00:00.001 UTC));
        assert!(earlier < later);
        assert_eq!(earlier.as_str().len(), 26);
        assert_eq!(RecordingId::parse(earlier.as_str()), Some(earlier.clone()));
        for bad in [
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "01ARZ3NDEKTSV4RRFFQ69G5FAu",
            "81ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert_eq!(RecordingId::parse(bad), None, "{bad}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Any text: a user id exactly when it is 1-255 bytes with no slash or control character.
            #[test]
            fn user_ids_never_hold_a_slash_or_control_character(raw in any::<String>()) {
                let valid = !raw.is_empty() && raw.len() <= 255 && !raw.chars().any(|c| c == '/' || c.is_control());
                prop_assert_eq!(UserId::parse(raw.clone()).is_ok(), valid);
            }

            /// Any text: an id of ours only if it round-trips exactly.
            #[test]
            fn ulids_parse_only_what_they_print(raw in any::<String>()) {
                if let Some(id) = Ulid::parse(&raw) {
                    prop_assert_eq!(id.as_str(), raw.as_str());
                }
            }
        }
    }
}
