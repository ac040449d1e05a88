//! Every route that reads a body, fed arbitrary input through the real router: an answer below
//! 500, never a panic. Bounded (48 cases per route and input kind) so it runs in `make test`.

use http::Method;
use integration_tests::{TestApp, User};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Map, Value};
use voice_core::{domain::tiers::Tier, upstream::stripe::signature};

const CASES: u32 = 48;

/// (method, path, the field names its body has), for every route with a JSON body.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("POST", "/tts", &["voiceId", "text", "presetId", "stability", "similarityBoost", "style", "speed"]),
    ("POST", "/recordings", &["contentType", "sizeBytes", "voiceName", "text"]),
    ("PATCH", "/recordings/01KAAAAAAAAAAAAAAAAAAAAAAA", &["isFavorite"]),
    ("POST", "/voices/samples", &["contentType", "sizeBytes"]),
    ("POST", "/voices", &["name", "description", "labels", "sampleIds", "removeBackgroundNoise", "consent"]),
    ("PATCH", "/voices/01KAAAAAAAAAAAAAAAAAAAAAAA", &["name", "description"]),
    ("POST", "/presets", &["name", "stability", "similarityBoost", "style", "speed", "useSpeakerBoost"]),
    ("POST", "/billing/checkout", &["tier", "interval"]),
    ("POST", "/billing/subscription", &["tier", "interval"]),
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![Just("PREMIUM"), Just("audio/mpeg"), Just("month"), Just("")].prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the route's own field names (and sometimes a stray one), values of any type.
fn route_shaped(fields: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let names: Vec<&'static str> = fields.iter().copied().chain(["unexpected"]).collect();
    prop::collection::vec((prop::sample::select(names), any_json()), 0..8).prop_map(|pairs| {
        let object: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::to_vec(&Value::Object(object)).unwrap()
    })
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })
}

fn send(rt: &tokio::runtime::Runtime, app: &TestApp, user: &User, method: &str, path: &str, body: Vec<u8>) -> u16 {
    let method: Method = method.parse().unwrap();
    let headers =
        [("cookie", user.cookie()), ("x-csrf-token", user.csrf.clone()), ("content-type", "application/json".into())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    rt.block_on(app.request_raw(method, path, &headers, body)).status
}

#[test]
fn arbitrary_bodies_on_every_route_get_an_answer_below_500() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let app = rt.block_on(TestApp::spawn());
    for (method, path, fields) in ROUTES {
        // A fresh PREMIUM user per route and kind keeps every case under the rate limits.
        let user = rt.block_on(app.sign_in(Tier::Premium));
        runner()
            .run(&prop::collection::vec(any::<u8>(), 0..600), |body| {
                let status = send(&rt, &app, &user, method, path, body.clone());
                prop_assert!(
                    (400..500).contains(&status),
                    "{method} {path} {:?} -> {status}",
                    String::from_utf8_lossy(&body)
                );
                Ok(())
            })
            .unwrap();
        let user = rt.block_on(app.sign_in(Tier::Premium));
        runner()
            .run(&route_shaped(fields), |body| {
                let status = send(&rt, &app, &user, method, path, body.clone());
                prop_assert!(status < 500, "{method} {path} {} -> {status}", String::from_utf8_lossy(&body));
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn arbitrary_signed_webhook_bodies_get_a_4xx_or_an_acknowledgement() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let app = rt.block_on(TestApp::spawn());
    let secret = rt.block_on(app.webhook_secret());
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ];
    runner()
        .run(&bodies, |body| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let header = signature::header(&secret, now, &body);
            let response = rt.block_on(app.request_raw(
                Method::POST,
                "/billing/webhook",
                &[("stripe-signature", &header)],
                body.clone(),
            ));
            // Junk is refused; anything shaped like an event (whatever else it holds) is acknowledged.
            prop_assert!(
                matches!(response.status, 200 | 400),
                "{} -> {}",
                String::from_utf8_lossy(&body),
                response.status
            );
            Ok(())
        })
        .unwrap();
}
