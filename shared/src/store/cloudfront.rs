//! Audio through CloudFront: signed URLs with a canned policy (the URL and when it stops
//! working), signed by the private key of a key group the distribution trusts. CloudFront takes
//! only RSA-SHA1 (PKCS#1 v1.5) here, and a base64 of its own (`+` `=` `/` written `-` `_` `~`).
//! The private key lives in SSM and is fetched on first use, like the other secrets.

use anyhow::anyhow;
use base64::Engine;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, pkcs1::DecodeRsaPrivateKey, pkcs8::DecodePrivateKey};
use sha1::{Digest, Sha1};
use url::Url;

use crate::config::Secret;

/// Signs URLs of the distribution's objects.
pub struct UrlSigner {
    /// The distribution's base, such as `https://d111111abcdef8.cloudfront.net/`.
    base: Url,
    /// The id CloudFront gave the public key (`K…`).
    key_pair_id: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("base", &self.base.as_str()).field("key_pair_id", &self.key_pair_id).finish()
    }
}

/// Everything but the unreserved characters, `/` included (an object key's `/` stays a path
/// separator: it is encoded segment by segment).
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl UrlSigner {
    /// A signer for the key in `pem` (PKCS#1, as `openssl genrsa` writes it, or PKCS#8). The
    /// error names what is wrong, never the key.
    pub fn new(base: Url, key_pair_id: String, pem: &Secret<String>) -> anyhow::Result<Self> {
        let pem = pem.expose().trim();
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| anyhow!("the CloudFront private key is not an RSA private key in PEM (PKCS#1 or PKCS#8)"))?;
        if key_pair_id.is_empty() {
            anyhow::bail!("the CloudFront key pair id is empty");
        }
        Ok(Self { base, key_pair_id, key })
    }

    /// The distribution's URL of `object_key` (each path segment percent-encoded).
    pub fn resource(&self, object_key: &str) -> String {
        let path: Vec<String> = object_key
            .split('/')
            .map(|segment| percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        format!("{}/{}", self.base.as_str().trim_end_matches('/'), path.join("/"))
    }

    /// `object_key`'s URL, good until `expires` (unix seconds) and for nothing else.
    pub fn sign(&self, object_key: &str, expires: i64) -> String {
        let resource = self.resource(object_key);
        let policy = canned_policy(&resource, expires);
        let digest = Sha1::digest(policy.as_bytes());
        let signature = self
            .key
            .sign(Pkcs1v15Sign::new::<Sha1>(), &digest)
            .expect("a PKCS#1 v1.5 signature of a SHA-1 digest fits any RSA key CloudFront takes");
        format!("{resource}?Expires={expires}&Signature={}&Key-Pair-Id={}", url_safe(&signature), self.key_pair_id)
    }
}

/// The policy CloudFront rebuilds from a canned URL and checks the signature against: exactly
/// these bytes, no spaces.
fn canned_policy(resource: &str, expires: i64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

/// CloudFront's URL-safe base64: standard base64 with `+` `=` `/` replaced by `-` `_` `~`.
fn url_safe(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rsa::{RsaPublicKey, pkcs1::EncodeRsaPrivateKey, pkcs8::LineEnding};

    use super::*;

    fn signer() -> (UrlSigner, RsaPublicKey) {
        let key = RsaPrivateKey::new(&mut rand_core_06(), 2048).unwrap();
        let public = key.to_public_key();
        let pem = key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
        let base = Url::parse("https://d111111abcdef8.cloudfront.net").unwrap();
        (UrlSigner::new(base, "K2JCJMDEHXQW5F".into(), &Secret::new(pem)).unwrap(), public)
    }

    /// rsa 0.9 takes rand_core 0.6's RNG; the OS one is enough for a test key.
    fn rand_core_06() -> rsa::rand_core::OsRng {
        rsa::rand_core::OsRng
    }

    #[test]
    fn the_url_carries_expiry_signature_and_key_and_the_signature_is_over_the_canned_policy() {
        let (signer, public) = signer();
        let url = signer.sign("auth0|ada/rec 1.mp3", 1_900_000_000);
        let resource = "https://d111111abcdef8.cloudfront.net/auth0%7Cada/rec%201.mp3";
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, resource);
        let parts: Vec<(&str, &str)> = query.split('&').map(|p| p.split_once('=').unwrap()).collect();
        assert_eq!(parts[0], ("Expires", "1900000000"));
        assert_eq!(parts[2], ("Key-Pair-Id", "K2JCJMDEHXQW5F"));
        let signature = parts[1].1;
        assert!(!signature.contains(['+', '=', '/']), "CloudFront's alphabet: {signature}");
        let standard: String = signature
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '=',
                '~' => '/',
                c => c,
            })
            .collect();
        let signature = base64::engine::general_purpose::STANDARD.decode(standard).unwrap();
        let policy = canned_policy(resource, 1_900_000_000);
        let digest = Sha1::digest(policy.as_bytes());
        public.verify(Pkcs1v15Sign::new::<Sha1>(), &digest, &signature).unwrap();
        let other = canned_policy(resource, 1_900_000_001);
        assert!(public.verify(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(other.as_bytes()), &signature).is_err());
    }

    #[test]
    fn a_key_that_is_not_one_is_refused_without_printing_it() {
        let base = Url::parse("https://cdn.example").unwrap();
        let error = UrlSigner::new(base, "K1".into(), &Secret::new("not a key, secret-ish".into())).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("not an RSA private key") && !message.contains("secret-ish"), "{message}");
    }
}
