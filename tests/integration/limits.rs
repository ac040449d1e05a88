//! Limits on everything that costs: per-user per-tier request rates, Stripe calls, sign-in per IP.

use http::Method;
use integration_tests::{TestApp, TestResponse};
use voice_core::domain::tiers::{Limit, Tier};

fn assert_rate_limited(response: &TestResponse) {
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(response.error_code(), "RATE_LIMITED");
    let retry_after: u64 = response.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.body["error"]["retryAfter"], retry_after);
}

#[tokio::test]
async fn every_authenticated_route_shares_the_tiers_request_rate() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let per_minute = Tier::Free.rules().per_minute(Limit::Requests);
    // A minute boundary would reset the counter mid-test: start early in a window.
    let second = time::OffsetDateTime::now_utc().second();
    if second > 40 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - u64::from(second))).await;
    }
    let paths = ["/recordings", "/voices", "/presets", "/usage"];
    for i in 0..per_minute as usize {
        let response = app.get(paths[i % paths.len()], &user).await;
        assert_eq!(response.status, 200, "request {i}: {}", response.body);
    }
    for path in paths {
        assert_rate_limited(&app.get(path, &user).await);
    }
    // Another user is not affected.
    let other = app.sign_in(Tier::Free).await;
    assert_eq!(app.get("/recordings", &other).await.status, 200);
}

#[tokio::test]
async fn stripe_calls_are_limited_per_user_and_tier() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let per_minute = Tier::Free.rules().per_minute(Limit::Billing);
    let second = time::OffsetDateTime::now_utc().second();
    if second > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - u64::from(second))).await;
    }
    for i in 0..per_minute {
        let response = app.post("/billing/portal", &user, None).await;
        assert_eq!(response.status, 200, "portal call {i}: {}", response.body);
    }
    assert_rate_limited(&app.post("/billing/portal", &user, None).await);
    assert_rate_limited(&app.get("/billing/invoices", &user).await);
    // Routes that do not call Stripe still answer.
    assert_eq!(app.get("/usage", &user).await.status, 200);
}

#[tokio::test]
async fn sign_in_is_limited_per_client_address() {
    let app = TestApp::spawn().await;
    let second = time::OffsetDateTime::now_utc().second();
    if second > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - u64::from(second))).await;
    }
    for i in 0..20 {
        let response = app.request(Method::GET, "/auth/login", &[], None).await;
        assert_eq!(response.status, 302, "login {i}: {}", response.body);
    }
    assert_rate_limited(&app.request(Method::GET, "/auth/login", &[], None).await);
    for i in 0..20 {
        let response = app.request(Method::GET, "/auth/callback?code=x&state=y", &[], None).await;
        assert_ne!(response.status, 429, "callback {i}");
    }
    assert_rate_limited(&app.request(Method::GET, "/auth/callback?code=x&state=y", &[], None).await);
    // Another address signs in as usual.
    let elsewhere = TestApp::spawn().await;
    assert_eq!(elsewhere.request(Method::GET, "/auth/login", &[], None).await.status, 302);
}
