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

/// A text of exactly `characters` characters never spoken before (a repeat is served from the
/// generation cache and costs nothing).
fn speech(voice: &str, characters: usize) -> serde_json::Value {
    let text: String = integration_tests::unique("").chars().chain(std::iter::repeat('a')).take(characters).collect();
    json!({ "voiceId": voice, "text": text })
}

const VOICE: &str = "21m00Tcm4TlvDq8ikWAM";

/// A new key of `user`'s with `budget` characters a month: (key, id).
async fn key_with_budget(app: &TestApp, user: &User, budget: Option<u64>) -> (String, String) {
    let made = app.post("/api-keys", user, Some(&json!({ "name": "budgeted", "monthlyCharacterLimit": budget }))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["monthlyCharacterLimit"], json!(budget));
    (made.body["key"].as_str().unwrap().to_owned(), made.body["keyId"].as_str().unwrap().to_owned())
}

async fn key_listed(app: &TestApp, user: &User, id: &str) -> serde_json::Value {
    let listed = app.get("/api-keys", user).await.body;
    listed["keys"].as_array().unwrap().iter().find(|k| k["keyId"] == id).unwrap().clone()
}

#[tokio::test]
async fn a_key_past_its_character_budget_is_refused_while_other_keys_and_the_session_still_speak() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let (budgeted, id) = key_with_budget(&app, &user, Some(30)).await;
    let (free_key, _) = key_with_budget(&app, &user, None).await;

    let first = with_key(&app, Method::POST, "/tts", &budgeted, Some(&speech(VOICE, 20))).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let refused = with_key(&app, Method::POST, "/tts", &budgeted, Some(&speech(VOICE, 20))).await;
    assert_eq!((refused.status, refused.error_code()), (403, "LIMIT_REACHED"), "{}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("budget of 30 characters a month and 10 left"), "{message}");
    assert!(message.contains(&format!("PATCH /api-keys/{id}")), "{message}");
    let streamed = with_key(&app, Method::POST, "/tts/stream", &budgeted, Some(&speech(VOICE, 20))).await;
    assert_eq!((streamed.status, streamed.error_code()), (403, "LIMIT_REACHED"), "streamed too");
    assert_eq!(app.counter(&user).await.0, 1, "a refused key touches no quota");

    let other = with_key(&app, Method::POST, "/tts", &free_key, Some(&speech(VOICE, 20))).await;
    assert_eq!(other.status, 201, "another key of the account: {}", other.body);
    assert_eq!(app.post("/tts", &user, Some(&speech(VOICE, 20))).await.status, 201, "the web session");
    let listed = key_listed(&app, &user, &id).await;
    assert_eq!((&listed["monthlyCharacterLimit"], &listed["charactersThisMonth"]), (&json!(30), &json!(20)));

    // Raised, it speaks again; what it spoke this month counts against the new budget.
    let raised = app.patch(&format!("/api-keys/{id}"), &user, &json!({ "monthlyCharacterLimit": 45 })).await;
    assert_eq!((raised.status, &raised.body["monthlyCharacterLimit"]), (200, &json!(45)), "{}", raised.body);
    assert_eq!(with_key(&app, Method::POST, "/tts", &budgeted, Some(&speech(VOICE, 20))).await.status, 201);
    assert_eq!(with_key(&app, Method::POST, "/tts", &budgeted, Some(&speech(VOICE, 6))).await.status, 403);
    let removed = app.patch(&format!("/api-keys/{id}"), &user, &json!({ "monthlyCharacterLimit": null })).await;
    assert_eq!((removed.status, &removed.body["monthlyCharacterLimit"]), (200, &json!(null)), "{}", removed.body);
    assert_eq!(with_key(&app, Method::POST, "/tts", &budgeted, Some(&speech(VOICE, 200))).await.status, 201);

    // A new month starts the budget again.
    app.patch(&format!("/api-keys/{id}"), &user, &json!({ "monthlyCharacterLimit": 30 })).await;
    let key_hash = app.dynamodb.scan().table_name(&app.app.config.tables.api_keys).send().await.unwrap();
    let row = key_hash.items().iter().find(|row| row["keyId"].as_s().unwrap() == &id).unwrap();
    app.dynamodb
        .update_item()
        .table_name(&app.app.config.tables.api_keys)
        .key("keyHash", row["keyHash"].clone())
        .update_expression("SET charactersPeriod = :old")
        .expression_attribute_values(":old", aws_sdk_dynamodb::types::AttributeValue::S("2020-01".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(key_listed(&app, &user, &id).await["charactersThisMonth"], 0, "last month's count is not this month's");
    assert_eq!(with_key(&app, Method::POST, "/tts", &budgeted, Some(&speech(VOICE, 30))).await.status, 201);
    assert_eq!(key_listed(&app, &user, &id).await["charactersThisMonth"], 30);
}

#[tokio::test]
async fn concurrent_requests_never_overspend_a_keys_budget_and_failures_give_characters_back() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let user = app.sign_in(Tier::Basic).await;
    let (key, id) = key_with_budget(&app, &user, Some(100)).await;

    // An upstream failure and a refusal by the plan give the characters back.
    let failing = app.elevenlabs().voice_that(integration_tests::elevenlabs::Fault::Fail).await;
    let failed = with_key(&app, Method::POST, "/tts", &key, Some(&speech(&failing, 20))).await;
    assert!(failed.status >= 500, "{}: {}", failed.status, failed.body);
    let month = voice_core::domain::usage::UsagePeriod::containing(time::OffsetDateTime::now_utc()).to_string();
    let used = |n: u32| {
        [
            ("usagePeriod", aws_sdk_dynamodb::types::AttributeValue::S(month.clone())),
            ("recordingsThisMonth", aws_sdk_dynamodb::types::AttributeValue::N(n.to_string())),
        ]
    };
    app.set_user(&user.id, &used(100)).await;
    let refused = with_key(&app, Method::POST, "/tts", &key, Some(&speech(VOICE, 20))).await;
    assert_eq!(refused.error_code(), "LIMIT_REACHED", "the plan's 100: {}", refused.body);
    assert_eq!(key_listed(&app, &user, &id).await["charactersThisMonth"], 0, "given back");
    app.set_user(&user.id, &used(0)).await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (app, key) = (app.clone(), key.clone());
        tasks.spawn(async move { with_key(&app, Method::POST, "/tts", &key, Some(&speech(VOICE, 20))).await.status });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 5, "{statuses:?}");
    assert_eq!(key_listed(&app, &user, &id).await["charactersThisMonth"], 100);
}

#[tokio::test]
async fn key_budgets_are_bounded_and_only_the_owner_sets_them() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let (_, id) = key_with_budget(&app, &user, Some(1_000)).await;
    for bad in [json!({ "monthlyCharacterLimit": 0 }), json!({ "monthlyCharacterLimit": 10_000_001 }), json!({})] {
        let response = app.patch(&format!("/api-keys/{id}"), &user, &bad).await;
        assert_eq!((response.status, response.error_code()), (400, "VALIDATION_FAILED"), "{bad}: {}", response.body);
    }
    let too_big = app.post("/api-keys", &user, Some(&json!({ "name": "x", "monthlyCharacterLimit": -1 }))).await;
    assert_eq!(too_big.status, 400, "{}", too_big.body);
    let stranger = app.sign_in(Tier::Basic).await;
    let theirs = app.patch(&format!("/api-keys/{id}"), &stranger, &json!({ "monthlyCharacterLimit": 5 })).await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    assert_eq!(key_listed(&app, &user, &id).await["monthlyCharacterLimit"], 1_000);
}
