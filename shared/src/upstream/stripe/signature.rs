//! Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, where each v1
//! is HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Accepts the payload if any `v1` signature matches any of the secrets (rotation keeps two).
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[Secret<String>],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(decode_hex(value).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Checked: a timestamp near i64::MIN or MAX is stale, not an overflow.
    let age = now.checked_sub(timestamp).and_then(i64::checked_abs);
    if age.is_none_or(|age| age > TOLERANCE_SECS) {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let expected = sign(secret.expose().as_bytes(), timestamp, payload);
        if signatures.iter().any(|s| bool::from(s.as_slice().ct_eq(&expected))) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The v1 signature of `payload` at `timestamp` (also what tests and stand-ins sign with).
pub fn sign(secret: &[u8], timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// A complete `Stripe-Signature` header value.
pub fn header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let hex: String = sign(secret.as_bytes(), timestamp, payload).iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn secrets() -> Vec<Secret<String>> {
        vec![Secret::new("whsec_current".into())]
    }

    #[test]
    fn a_correct_signature_passes() {
        assert_eq!(verify(BODY, Some(&header("whsec_current", NOW, BODY)), &secrets(), NOW + 10), Ok(()));
    }

    #[test]
    fn any_v1_entry_and_any_secret_may_match() {
        let good = header("whsec_current", NOW, BODY);
        let bad = header("whsec_other", NOW, BODY);
        let both = format!("{},{}", bad, good.split(',').nth(1).unwrap());
        assert_eq!(verify(BODY, Some(&both), &secrets(), NOW), Ok(()));
        let rotating = vec![Secret::new("whsec_old".into()), Secret::new("whsec_current".into())];
        assert_eq!(verify(BODY, Some(&good), &rotating, NOW), Ok(()));
    }

    #[test]
    fn everything_else_is_refused() {
        let good = header("whsec_current", NOW, BODY);
        assert_eq!(verify(BODY, None, &secrets(), NOW), Err(SignatureError::Missing));
        assert_eq!(verify(BODY, Some("garbage"), &secrets(), NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(BODY, Some(&format!("t={NOW}")), &secrets(), NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(BODY, Some(&good), &secrets(), NOW + 301), Err(SignatureError::Stale));
        assert_eq!(verify(BODY, Some(&good), &secrets(), NOW - 301), Err(SignatureError::Stale));
        assert_eq!(
            verify(BODY, Some(&header("whsec_wrong", NOW, BODY)), &secrets(), NOW),
            Err(SignatureError::Mismatch)
        );
        let mut altered = BODY.to_vec();
        altered[5] ^= 1;
        assert_eq!(verify(&altered, Some(&good), &secrets(), NOW), Err(SignatureError::Mismatch));
        let restamped = good.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(verify(BODY, Some(&restamped), &secrets(), NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let header = format!("t={t},v1=00");
            assert_eq!(verify(BODY, Some(&header), &secrets(), NOW), Err(SignatureError::Stale), "t={t}");
            assert!(verify(BODY, Some(&header), &secrets(), i64::MIN).is_err(), "now=MIN t={t}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Any header, any body, any clock: an answer, never a panic; and nothing unsigned passes.
            #[test]
            fn arbitrary_headers_never_panic_or_pass(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..256), now in any::<i64>()) {
                prop_assert!(verify(&body, Some(&header), &secrets(), now).is_err());
            }

            /// Headers shaped like Stripe's with arbitrary numbers and hex.
            #[test]
            fn stripe_shaped_headers_never_panic(t in any::<i64>(), now in any::<i64>(), v1 in "[0-9a-fA-F]{0,80}", extra in "[a-z0-9=,]{0,20}") {
                let header = format!("t={t},v1={v1},{extra}");
                prop_assert!(verify(BODY, Some(&header), &secrets(), now).is_err());
            }

            /// A genuine signature passes at any time within the tolerance, for any body.
            #[test]
            fn genuine_signatures_pass(body in proptest::collection::vec(any::<u8>(), 0..256), t in -1_000_000_000i64..4_000_000_000, skew in -TOLERANCE_SECS..=TOLERANCE_SECS) {
                let header = header("whsec_current", t, &body);
                prop_assert_eq!(verify(&body, Some(&header), &secrets(), t + skew), Ok(()));
            }
        }
    }
}
