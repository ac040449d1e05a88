//! Short free text from users: names and reasons, shown back to people.

use crate::ApiError;

/// `raw` trimmed, when it is `min..=max` characters and none is a control character; the error
/// names `field`. openapi.yaml writes each use as a pattern (tests/integration/openapi.rs checks
/// they agree).
pub fn printable(field: &str, raw: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    let length = trimmed.chars().count();
    if !(min..=max).contains(&length) || trimmed.chars().any(char::is_control) {
        return Err(ApiError::validation(field, format!("must be {min} to {max} printable characters")));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_counted_in_characters_and_printable() {
        let name = |raw: &str| printable("name", raw, 1, 3).ok();
        assert_eq!(name("  ab\u{3000}"), Some("ab".to_owned()));
        assert_eq!(name("äöü"), Some("äöü".to_owned()), "characters, not bytes");
        assert_eq!(name("a b"), Some("a b".to_owned()));
        for refused in ["", " \t\u{a0}", "abcd", "a\u{7}b", "a\u{85}b"] {
            assert_eq!(name(refused), None, "{refused:?}");
        }
        let error = printable("reason", "no", 3, 500).unwrap_err();
        assert!(error.to_string().contains("3 to 500 printable characters"), "{error}");
    }
}
