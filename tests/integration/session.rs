//! GET /auth/session and POST /auth/logout against DynamoDB and Redis.

use std::time::Duration as StdDuration;

use http::Method;
use integration_tests::TestApp;
use redis::AsyncCommands;
use serde_json::json;
use time::Duration;
use voice_core::{
    domain::{
        ids::Email,
        session::{COOKIE_NAME, SessionToken},
        tiers::Tier,
        user::Profile,
    },
    store::sessions::redis_key,
};

#[tokio::test]
async fn a_valid_cookie_returns_the_user_and_refreshes_the_redis_ttl() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let key = user.redis_key();
    let _: () = app.redis().await.expire(&key, 100).await.unwrap();

    let response = app.get("/auth/session", &user).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let body = &response.body;
    assert_eq!(body["userId"], user.id.as_str());
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["tier"], "BASIC");
    assert_eq!(body["features"], serde_json::to_value(Tier::Basic.features()).unwrap());
    assert_eq!(body["usage"]["used"], 0);
    assert_eq!(body["usage"]["limit"], 100);
    assert_eq!(body["csrfToken"], user.csrf.as_str());
    assert_eq!(response.headers["cache-control"], "no-store");
    let ttl: i64 = app.redis().await.ttl(&key).await.unwrap();
    assert!(ttl > 890, "the sliding TTL was not refreshed: {ttl}");
}

#[tokio::test]
async fn missing_malformed_and_unknown_cookies_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let unknown = format!("sid={}", "A".repeat(43));
    let cases: [&[(&str, &str)]; 5] = [
        &[],
        &[("cookie", "other=1")],
        &[("cookie", "sid=not-a-token")],
        &[("cookie", "sid=")],
        &[("cookie", &unknown)],
    ];
    for headers in cases {
        let response = app.request(Method::GET, "/auth/session", headers, None).await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(response.body, json!({"error": {"code": "UNAUTHENTICATED", "message": "sign-in required"}}));
    }
}

#[tokio::test]
async fn a_session_idle_past_the_window_is_refused_by_both_stores() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    // Redis' copy expires by itself after the idle window: its TTL is the window.
    let ttl: i64 = app.redis().await.ttl(user.redis_key()).await.unwrap();
    assert!((890..=900).contains(&ttl), "{ttl}");
    // Should Redis still hold it past the window (a clock's view), DynamoDB's lastSeenAt, touched
    // at least every re-check (60 s), refuses it.
    let idle = TestApp::builder().later(Duration::seconds(900 + 60 + 1)).spawn().await;
    assert_eq!(idle.get("/auth/session", &user).await.status, 401, "Redis' copy is idle");
    let idle = TestApp::builder().later(Duration::seconds(901)).spawn().await;

    let user = app.sign_in(Tier::Free).await;
    let _: () = app.redis().await.del(user.redis_key()).await.unwrap();
    assert_eq!(idle.get("/auth/session", &user).await.status, 401, "DynamoDB's copy is idle");
    assert_eq!(app.get("/auth/session", &user).await.status, 200, "still valid now");
}

#[tokio::test]
async fn the_absolute_lifetime_caps_an_active_session() {
    let short = |by: i64| {
        TestApp::builder()
            .config(|c| {
                c.session.absolute = StdDuration::from_secs(1800);
                // No DynamoDB re-check in between: Redis' own copy must enforce the cap.
                c.session.durable_recheck = StdDuration::from_secs(3600);
            })
            .later(Duration::seconds(by))
    };
    let app = short(0).spawn().await;
    let user = app.sign_in(Tier::Free).await;

    // Used every ~13 minutes: always inside the sliding window.
    assert_eq!(short(800).spawn().await.get("/auth/session", &user).await.status, 200);
    assert_eq!(short(1600).spawn().await.get("/auth/session", &user).await.status, 200);
    let past_cap = short(1801).spawn().await;
    assert_eq!(past_cap.get("/auth/session", &user).await.status, 401, "past the cap, though touched 201 s ago");
    assert_eq!(app.cached_session(&user).await, None, "the dead entry is dropped from Redis");
    assert_eq!(past_cap.get("/auth/session", &user).await.status, 401, "DynamoDB refuses it too");

    // DynamoDB enforces the cap on its own: touched there at 1600 s, then Redis is flushed.
    let rechecking = |by: i64| short(by).config(|c| c.session.durable_recheck = StdDuration::from_secs(60));
    let user = app.sign_in(Tier::Free).await;
    assert_eq!(rechecking(800).spawn().await.get("/auth/session", &user).await.status, 200);
    assert_eq!(rechecking(1600).spawn().await.get("/auth/session", &user).await.status, 200);
    let _: () = app.redis().await.del(user.redis_key()).await.unwrap();
    assert_eq!(rechecking(1801).spawn().await.get("/auth/session", &user).await.status, 401);
}

#[tokio::test]
async fn with_redis_down_or_flushed_a_valid_session_validates_from_dynamodb_and_redis_is_refilled() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Premium).await;
    let redis_down = TestApp::builder().redis_down().spawn().await;

    let response = redis_down.get("/auth/session", &user).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["tier"], "PREMIUM");

    // Flushed: the entry is gone; while Redis is down nothing can refill it.
    let _: () = app.redis().await.del(user.redis_key()).await.unwrap();
    assert_eq!(redis_down.get("/auth/session", &user).await.status, 200);
    assert_eq!(app.cached_session(&user).await, None);

    // Redis is back: the next request validates from DynamoDB and refills it.
    assert_eq!(app.get("/auth/session", &user).await.status, 200);
    let refilled = app.cached_session(&user).await.expect("Redis was refilled");
    assert!(refilled.contains(user.id.as_str()), "{refilled}");
    let ttl: i64 = app.redis().await.ttl(user.redis_key()).await.unwrap();
    assert!(ttl > 890, "{ttl}");
}

#[tokio::test]
async fn logout_needs_the_csrf_token_or_an_allowed_origin() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let cookie = user.cookie();

    let refused: [&[(&str, &str)]; 3] = [
        &[("cookie", &cookie)],
        &[("cookie", &cookie), ("x-csrf-token", "forged")],
        &[("cookie", &cookie), ("x-csrf-token", &user.csrf), ("origin", "https://evil.example")],
    ];
    for headers in refused {
        let response = app.request(Method::POST, "/auth/logout", headers, None).await;
        assert_eq!(response.status, 403, "{headers:?}");
        assert_eq!(response.error_code(), "CSRF_FAILED");
    }
    assert_eq!(app.get("/auth/session", &user).await.status, 200, "a refused logout changes nothing");

    let allowed_origin = app.app.config.web.allowed_origins[0].clone();
    let response =
        app.request(Method::POST, "/auth/logout", &[("cookie", &cookie), ("origin", &allowed_origin)], None).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn logout_clears_both_stores_and_the_cookie() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;

    let response = app.post("/auth/logout", &user, None).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let logout_url = response.body["logoutUrl"].as_str().unwrap();
    let issuer = app.app.config.idp.issuer.as_str();
    assert!(logout_url.starts_with(&format!("{issuer}oidc/logout?client_id=")), "{logout_url}");
    assert!(logout_url.contains("post_logout_redirect_uri="), "{logout_url}");
    let cookie = response.set_cookie().unwrap();
    assert!(cookie.starts_with("sid=;") && cookie.contains("Max-Age=0"), "{cookie}");
    assert!(app.session_item(&user).await.is_none(), "DynamoDB still holds the session");
    assert_eq!(app.cached_session(&user).await.as_deref(), Some("revoked"));
    assert_eq!(app.get("/auth/session", &user).await.status, 401);
    assert_eq!(TestApp::builder().redis_down().spawn().await.get("/auth/session", &user).await.status, 401);
}

#[tokio::test]
async fn logout_with_redis_down_still_ends_the_session() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let redis_down = TestApp::builder().redis_down().spawn().await;

    let response = redis_down.post("/auth/logout", &user, None).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert!(app.session_item(&user).await.is_none());
    assert_eq!(redis_down.get("/auth/session", &user).await.status, 401);
    // Redis kept its entry through the outage; the next durable re-check finds the session gone.
    assert!(app.cached_session(&user).await.is_some());
    let after_recheck = TestApp::builder().later(Duration::seconds(61)).spawn().await;
    assert_eq!(after_recheck.get("/auth/session", &user).await.status, 401);
    assert_eq!(app.cached_session(&user).await, None);
}

#[tokio::test]
async fn logout_with_dynamodb_down_still_ends_the_session() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let aws_down = TestApp::builder().aws_down().spawn().await;

    let response = aws_down.post("/auth/logout", &user, None).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert!(app.session_item(&user).await.is_some(), "DynamoDB was down: its copy remains");
    assert_eq!(app.get("/auth/session", &user).await.status, 401, "Redis' tombstone refuses it");

    // DynamoDB is back; the sweep makes the sign-out durable, so that a later Redis outage does
    // not revive the session from its durable copy.
    let schedule: aws_lambda_events::event::eventbridge::EventBridgeEvent = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/sweep-schedule.json", integration_tests::EVENTS)).unwrap(),
    )
    .unwrap();
    sweep::handle(app.function("sweep"), schedule).await.unwrap();
    assert!(app.session_item(&user).await.is_none(), "the durable copy is gone");
    assert_eq!(TestApp::builder().redis_down().spawn().await.get("/auth/session", &user).await.status, 401);
}

#[tokio::test]
async fn every_sign_in_gets_a_new_session_id() {
    let app = TestApp::spawn().await;
    let first = app.sign_in(Tier::Free).await;
    let profile = Profile { user_id: first.id.clone(), email: Email::parse(&first.email).unwrap(), name: None };
    let again = app.open_session(&profile, &Default::default()).await.unwrap();
    assert_ne!(again.token, first.token);
    assert_ne!(again.token.key(), first.session_key());
    assert_eq!(again.user.id, first.id);
}

/// What anyone who can reach the cache could write: a victim's identity under a token of their
/// own, checked "ten years from now".
fn forged_entry(victim: &str, now: i64, mac: &str) -> String {
    json!({
        "userId": victim, "createdAt": now, "absoluteExpiresAt": now + 3600,
        "checkedAt": now + 10 * 365 * 24 * 3600, "mac": mac,
    })
    .to_string()
}

#[tokio::test]
async fn a_forged_redis_entry_is_refused_now_and_after_the_recheck_window() {
    let app = TestApp::spawn().await;
    let victim = app.sign_in(Tier::Premium).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let genuine: String = app.redis().await.get(victim.redis_key()).await.unwrap();
    let genuine_mac = serde_json::from_str::<serde_json::Value>(&genuine).unwrap()["mac"].as_str().unwrap().to_owned();

    // Without a MAC, with a made-up one, and with the victim's genuine one copied under another key.
    for mac in ["", "00", genuine_mac.as_str()] {
        let token = SessionToken::generate(&victim.id);
        let key = redis_key(token.slot(), &token.key());
        let _: () = app.redis().await.set_ex(&key, forged_entry(victim.id.as_str(), now, mac), 900).await.unwrap();
        let cookie = format!("{COOKIE_NAME}={}", token.expose());
        let response = app.request(Method::GET, "/auth/session", &[("cookie", &cookie)], None).await;
        assert_eq!(response.status, 401, "mac {mac:?}: {}", response.body);
        // A forged entry is dropped on sight; planted again, it is still refused 62 s later.
        let _: () = app.redis().await.set_ex(&key, forged_entry(victim.id.as_str(), now, mac), 900).await.unwrap();
        let later = TestApp::builder().later(Duration::seconds(62)).spawn().await;
        let response = later.request(Method::GET, "/auth/session", &[("cookie", &cookie)], None).await;
        assert_eq!(response.status, 401, "mac {mac:?}, 62 s later: {}", response.body);
    }
    // The victim's own session is untouched.
    assert_eq!(app.get("/auth/session", &victim).await.status, 200);
}

#[tokio::test]
async fn a_genuine_entry_edited_in_redis_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let other = app.sign_in(Tier::Premium).await;
    let key = user.redis_key();
    let raw: String = app.redis().await.get(&key).await.unwrap();
    let mut entry: serde_json::Value = serde_json::from_str(&raw).unwrap();
    entry["userId"] = other.id.as_str().into();
    let _: () = app.redis().await.set_ex(&key, entry.to_string(), 900).await.unwrap();

    let response = app.get("/auth/session", &user).await;
    // DynamoDB decides: the session is the user's own, never the other user's.
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["userId"], user.id.as_str());
}

#[tokio::test]
async fn a_logout_wins_over_two_hundred_reads_in_flight() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let reads = (0..200).map(|_| app.get("/auth/session", &user));
    let logout = async {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        app.post("/auth/logout", &user, None).await
    };
    let (responses, logout) = tokio::join!(futures_util::future::join_all(reads), logout);
    assert_eq!(logout.status, 200, "{}", logout.body);
    // (429: past BASIC's requests per minute, counted after the session was read.)
    assert!(responses.iter().all(|r| matches!(r.status, 200 | 401 | 429)));

    assert_eq!(app.get("/auth/session", &user).await.status, 401, "right after the last read");
    let cached: Option<String> = app.redis().await.get(user.redis_key()).await.unwrap();
    assert_eq!(cached.as_deref(), Some("revoked"), "no read re-stored the session over the tombstone");
}
