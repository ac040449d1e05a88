//! Audio through CloudFront: the URL the functions sign is the one botocore's `CloudFrontSigner`
//! writes with the same key (an independent implementation), and the distribution (its local
//! stand-in, `local/standins/cdn.py`) serves exactly what was signed, until it expires, with
//! range requests for seeking; anything altered is refused.

use std::{path::Path, process::Command};

use integration_tests::{TestApp, unique};
use voice_core::domain::audio::AudioType;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// botocore's signed URL of `resource` until `expires`, with the local private key.
fn botocore_url(resource: &str, expires: i64, key_pair_id: &str) -> String {
    let script = r#"
import datetime, sys
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
signer = CloudFrontSigner(sys.argv[4], lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1()))
until = datetime.datetime.fromtimestamp(int(sys.argv[3]), datetime.timezone.utc)
print(signer.generate_presigned_url(sys.argv[2], date_less_than=until))
"#;
    let python = Path::new(ROOT).join(".local/venv/bin/python");
    let key = Path::new(ROOT).join(".local/cloudfront/private.pem");
    let output = Command::new(python)
        .args(["-c", script])
        .arg(key)
        .args([resource, &expires.to_string(), key_pair_id])
        .output()
        .expect("the stack's Python (local/stack.sh installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn with_query(url: &str, name: &str, value: &str) -> String {
    let (resource, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| if pair.starts_with(&format!("{name}=")) { format!("{name}={value}") } else { pair.to_owned() })
        .collect();
    format!("{resource}?{}", query.join("&"))
}

fn query_value<'a>(url: &'a str, name: &str) -> &'a str {
    let query = url.split_once('?').unwrap().1;
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')).unwrap()
}

#[tokio::test]
async fn the_signed_url_is_botocores_and_the_distribution_serves_only_what_it_signs() {
    let app = TestApp::spawn().await;
    let cdn = app.app.config.cdn.clone().expect("the local stack serves audio through the CloudFront stand-in");
    // An object as a generation leaves it, under a user id with a character to encode.
    let key = format!("auth0|cdn-{}/recording one.mp3", unique(""));
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    app.app.audio().put(&key, AudioType::Mpeg, bytes.clone()).await.unwrap();

    let url = app.app.audio().audio_url(&key).await.unwrap();
    assert!(url.starts_with(cdn.base.as_str().trim_end_matches('/')), "{url}");
    assert!(url.contains("auth0%7Ccdn-") && url.contains("/recording%20one.mp3?"), "{url}");
    let expires: i64 = query_value(&url, "Expires").parse().unwrap();
    let resource = url.split_once('?').unwrap().0;
    assert_eq!(url, botocore_url(resource, expires, &cdn.key_pair_id), "the same URL, signature included");

    let http = reqwest::Client::new();
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "audio/mpeg");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let seek = http.get(&url).header("range", "bytes=1000-1099").send().await.unwrap();
    assert_eq!(seek.status(), 206);
    assert_eq!(seek.headers()["content-range"], "bytes 1000-1099/4096");
    assert_eq!(seek.bytes().await.unwrap().as_ref(), &bytes[1000..1100]);

    // Each alteration is refused: another signature, another object, a later expiry, another
    // key, no signature; and a URL signed to expire a second ago.
    let signature = query_value(&url, "Signature");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let other_object = url.replace("recording%20one.mp3", "recording%20two.mp3");
    let refused = [
        with_query(&url, "Signature", &format!("{flipped}{}", &signature[1..])),
        other_object,
        with_query(&url, "Expires", &(expires + 3600).to_string()),
        with_query(&url, "Key-Pair-Id", "KSOMEOTHERKEY"),
        resource.to_owned(),
        botocore_url(resource, time::OffsetDateTime::now_utc().unix_timestamp() - 1, &cdn.key_pair_id),
    ];
    for altered in refused {
        let answer = http.get(&altered).send().await.unwrap();
        assert_eq!(answer.status(), 403, "{altered}");
        assert!(answer.text().await.unwrap().contains("AccessDenied"));
    }
}

#[tokio::test]
async fn without_a_distribution_audio_urls_are_presigned_s3_urls() {
    let app = TestApp::builder().config(|c| c.cdn = None).spawn().await;
    let key = format!("auth0|no-cdn-{}/take.mp3", unique(""));
    app.app.audio().put(&key, AudioType::Mpeg, b"ID3 presigned".to_vec()).await.unwrap();
    let url = app.app.audio().audio_url(&key).await.unwrap();
    assert!(url.contains("X-Amz-Expires=600") && url.contains("X-Amz-Signature="), "{url}");
    let answer = reqwest::get(&url).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.bytes().await.unwrap().as_ref(), b"ID3 presigned");
}
