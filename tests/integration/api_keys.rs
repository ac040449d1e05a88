//! API keys: shown once, stored as a hash, accepted only where documented, under the same rules.

use http::Method;
use integration_tests::{TestApp, TestResponse, User};
use serde_json::json;
use voice_core::domain::tiers::Tier;

async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<&serde_json::Value>,
) -> TestResponse {
    let auth = format!("Bearer {key}");
    app.request(method, path, &[("authorization", &auth)], body).await
}

async fn create(app: &TestApp, user: &User, name: &str) -> TestResponse {
    app.post("/api-keys", user, Some(&json!({ "name": name }))).await
}

#[tokio::test]
async fn keys_are_per_tier_shown_once_and_stored_only_as_a_hash() {
    let app = TestApp::spawn().await;
    let free = app.sign_in(Tier::Free).await;
    let locked = create(&app, &free, "ci").await;
    assert_eq!((locked.status, locked.error_code()), (403, "FEATURE_LOCKED"), "{}", locked.body);

    let user = app.sign_in(Tier::Basic).await;
    let first = create(&app, &user, "laptop").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let key = first.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(first.body["prefix"].as_str().unwrap()), "{}", first.body);
    assert_eq!(create(&app, &user, "server").await.status, 201);
    let third = create(&app, &user, "one too many").await;
    assert_eq!((third.status, third.error_code()), (403, "LIMIT_REACHED"), "{}", third.body);

    let listed = app.get("/api-keys", &user).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 2);
    assert!(!listed.body.to_string().contains(&key), "the key is never shown again");
    let at_rest = app.dynamodb.scan().table_name(&app.app.config.tables.api_keys).send().await.unwrap();
    let dump = format!("{:?}", at_rest.items);
    // (The secret itself may contain `_`: it is everything after the listed prefix.)
    let secret = key.strip_prefix(&format!("{}_", first.body["prefix"].as_str().unwrap())).unwrap();
    assert!(!dump.contains(&key) && !dump.contains(secret), "only a hash is stored");
}

#[tokio::test]
async fn a_key_speaks_under_the_same_quota_only_where_keys_are_accepted_and_revocation_is_immediate() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let made = create(&app, &user, "script").await;
    let (key, id) = (made.body["key"].as_str().unwrap().to_owned(), made.body["keyId"].as_str().unwrap().to_owned());

    let spoken = with_key(
        &app,
        Method::POST,
        "/tts",
        &key,
        Some(&json!({ "voiceId": "21m00Tcm4TlvDq8ikWAM", "text": "By key." })),
    )
    .await;
    assert_eq!(spoken.status, 201, "no CSRF for keys: {}", spoken.body);
    assert_eq!(app.counter(&user).await.0, 1, "counted against the user's own quota");
    let usage = with_key(&app, Method::GET, "/usage", &key, None).await;
    assert_eq!((usage.status, usage.body["used"].as_u64()), (200, Some(1)));
    assert_eq!(with_key(&app, Method::GET, "/recordings", &key, None).await.status, 200);
    let listed = app.get("/api-keys", &user).await.body;
    assert_eq!(listed["keys"][0]["callsThisMonth"], 3, "{listed}");
    assert!(listed["keys"][0]["lastUsedAt"].is_i64());

    // Never for the account, billing or the keys themselves.
    for (method, path) in [
        (Method::GET, "/user/export"),
        (Method::DELETE, "/user"),
        (Method::POST, "/billing/checkout"),
        (Method::GET, "/api-keys"),
        (Method::GET, "/auth/session"),
    ] {
        let response = with_key(&app, method.clone(), path, &key, Some(&json!({ "tier": "PREMIUM" }))).await;
        assert!(matches!(response.status, 401 | 403), "{method} {path}: {}", response.status);
    }
    assert!(app.user_row(user.id.as_str()).await.is_some());

    assert_eq!(app.delete(&format!("/api-keys/{id}"), &user).await.status, 200);
    assert_eq!(with_key(&app, Method::GET, "/usage", &key, None).await.status, 401, "revoked at once");
    assert_eq!(with_key(&app, Method::GET, "/usage", "vk_nope_nope", None).await.status, 401);
    assert_eq!(create(&app, &user, "again").await.status, 201, "the place was given back");
}

#[tokio::test]
async fn keys_follow_the_plan_as_it_is_now() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Premium).await;
    let mut keys = Vec::new();
    for name in ["first", "second", "third"] {
        let made = create(&app, &user, name).await;
        assert_eq!(made.status, 201, "{}", made.body);
        keys.push(made.body["key"].as_str().unwrap().to_owned());
    }
    let set_tier = |tier: Tier| {
        let (app, user) = (&app, &user);
        async move {
            app.set_user(
                &user.id,
                &[("subscriptionTier", aws_sdk_dynamodb::types::AttributeValue::S(tier.as_str().into()))],
            )
            .await
        }
    };

    // Down to BASIC (2 keys): the newest two stay usable, the oldest is refused.
    set_tier(Tier::Basic).await;
    let oldest = with_key(&app, Method::GET, "/usage", &keys[0], None).await;
    assert_eq!((oldest.status, oldest.error_code()), (403, "FEATURE_LOCKED"), "{}", oldest.body);
    for key in &keys[1..] {
        assert_eq!(with_key(&app, Method::GET, "/usage", key, None).await.status, 200);
    }
    // Down to FREE: none.
    set_tier(Tier::Free).await;
    for key in &keys {
        let refused = with_key(&app, Method::GET, "/usage", key, None).await;
        assert_eq!((refused.status, refused.error_code()), (403, "FEATURE_LOCKED"), "{}", refused.body);
    }
    // Back up: all of them again.
    set_tier(Tier::Premium).await;
    assert_eq!(with_key(&app, Method::GET, "/usage", &keys[0], None).await.status, 200);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let key = create(&app, &user, "script").await.body["key"].as_str().unwrap().to_owned();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {key}");
        let response = app.request(Method::GET, "/usage", &[("authorization", &auth)], None).await;
        assert_eq!(response.status, 200, "{scheme}: {}", response.body);
    }
}
