//! Limits on everything that costs: per-user per-tier request rates, Stripe calls, sign-in per IP,
//! uploads, storage and favourites.

use aws_lambda_events::event::{dynamodb::Event, eventbridge::EventBridgeEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{EVENTS, TestApp, TestResponse, User};
use serde_json::json;
use voice_core::{
    domain::tiers::{Limit, Tier},
    flows::upload_sweep::GRACE_SECS,
};

fn assert_rate_limited(response: &TestResponse) {
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(response.error_code(), "RATE_LIMITED");
    let retry_after: u64 = response.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.body["error"]["retryAfter"], retry_after);
}

#[tokio::test]
async fn every_authenticated_route_shares_the_tiers_request_rate() {
    // A minute boundary would reset the counters mid-test: the app's clock starts a new minute.
    let app = TestApp::builder().at_a_minutes_start().spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let per_minute = Tier::Free.rules().per_minute(Limit::Requests);
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

/// A FREE user's Stripe calls of the minute, each answered, and the next one refused.
async fn spend_the_minutes_stripe_calls(app: &TestApp, user: &User) {
    for i in 0..Tier::Free.rules().per_minute(Limit::Billing) {
        let response = app.post("/billing/portal", user, None).await;
        assert_eq!(response.status, 200, "portal call {i}: {}", response.body);
    }
    assert_rate_limited(&app.post("/billing/portal", user, None).await);
}

#[tokio::test]
async fn stripe_calls_are_limited_per_user_and_tier() {
    // A minute boundary would reset the counters mid-test: the app's clock starts a new minute.
    let app = TestApp::builder().at_a_minutes_start().spawn().await;
    let user = app.sign_in(Tier::Free).await;
    spend_the_minutes_stripe_calls(&app, &user).await;
    assert_rate_limited(&app.get("/billing/invoices", &user).await);
    // Routes that do not call Stripe still answer.
    assert_eq!(app.get("/usage", &user).await.status, 200);
}

#[tokio::test]
async fn with_redis_down_the_limits_that_spend_money_count_in_dynamodb() {
    let app = TestApp::builder().redis_down().at_a_minutes_start().spawn().await;
    let user = app.sign_in(Tier::Free).await;
    spend_the_minutes_stripe_calls(&app, &user).await;
    // What spends nothing is let through while Redis is away.
    for _ in 0..3 {
        assert_eq!(app.get("/usage", &user).await.status, 200);
    }
}

#[tokio::test]
async fn with_redis_down_sign_in_is_refused_rather_than_unlimited() {
    let app = TestApp::builder().redis_down().spawn().await;
    let response = app.request(Method::GET, "/auth/login", &[], None).await;
    assert_eq!((response.status, response.error_code()), (503, "UPSTREAM_UNAVAILABLE"), "{}", response.body);
}

#[tokio::test]
async fn sign_in_is_limited_per_client_address() {
    // A minute boundary would reset the counters mid-test: the app's clock starts a new minute.
    let app = TestApp::builder().at_a_minutes_start().spawn().await;
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

async fn upload(app: &TestApp, user: &User, path: &str, bytes: u64) -> TestResponse {
    app.post(path, user, Some(&json!({ "contentType": "audio/webm", "sizeBytes": bytes }))).await
}

#[tokio::test]
async fn fifty_upload_requests_from_a_free_user_stop_at_the_tiers_count() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let rules = Tier::Free.rules();
    let mut granted = 0;
    for i in 0..50u32 {
        // Recordings and voice samples draw on the same monthly count.
        let path = if i % 2 == 0 { "/recordings" } else { "/voices/samples" };
        let response = upload(&app, &user, path, 1_000_000).await;
        if response.status == 201 {
            granted += 1;
            continue;
        }
        assert_eq!(response.status, 403, "{path} #{i}: {}", response.body);
        assert_eq!(response.error_code(), "LIMIT_REACHED");
        assert!(response.body["error"]["upgradeUrl"].is_string());
    }
    assert_eq!(granted, rules.uploads_per_month);

    let usage = app.get("/usage", &user).await.body;
    let allowances = &usage["allowances"];
    assert_eq!(allowances["uploads"], json!({ "used": rules.uploads_per_month, "limit": rules.uploads_per_month }));
    // Only recordings count toward storage (10 of them, 1 MB each).
    assert_eq!(allowances["storageBytes"], json!({ "used": 10_000_000, "limit": rules.storage_bytes }));
}

#[tokio::test]
async fn storage_is_reserved_per_upload_and_freed_when_the_upload_goes() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let limit = Tier::Free.rules().storage_bytes;
    app.set_user(&user.id, &[("storageBytes", AttributeValue::N((limit - 6_000_000).to_string()))]).await;

    let fits = upload(&app, &user, "/recordings", 5_000_000).await;
    assert_eq!(fits.status, 201, "{}", fits.body);
    let too_big = upload(&app, &user, "/recordings", 5_000_000).await;
    assert_eq!((too_big.status, too_big.error_code()), (403, "LIMIT_REACHED"), "{}", too_big.body);
    assert!(too_big.body["error"]["message"].as_str().unwrap().contains("storage"));

    let id = fits.body["recordingId"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/recordings/{id}"), &user).await.status, 200);
    assert_eq!(upload(&app, &user, "/recordings", 5_000_000).await.status, 201, "the deleted upload's bytes are free");
}

#[tokio::test]
async fn an_expired_upload_frees_its_storage_once_however_often_its_record_arrives() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    app.set_user(&user.id, &[("storageBytes", AttributeValue::N("10000".into()))]).await;
    let text = std::fs::read_to_string(format!("{EVENTS}/stream-upload-ttl.json")).unwrap();
    let event: Event = serde_json::from_str(&text.replace("auth0|events-user", user.id.as_str())).unwrap();

    for _ in 0..3 {
        let response = ttl_cleanup::handle(app.function("ttl-cleanup"), event.clone()).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let row = app.user_row(user.id.as_str()).await.unwrap();
    assert_eq!(row.storage_bytes, 10_000 - 4_096, "freed once");
}

#[tokio::test]
async fn favourites_are_capped_per_tier() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let limit = Tier::Free.rules().favourites;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let made = upload(&app, &user, "/recordings", 1000).await;
        ids.push(made.body["recordingId"].as_str().unwrap().to_owned());
    }
    app.set_user(&user.id, &[("favourites", AttributeValue::N((limit - 1).to_string()))]).await;
    let favourite = |id: &str, on: bool| {
        let path = format!("/recordings/{id}");
        let app = &app;
        let user = &user;
        async move { app.patch(&path, user, &json!({ "isFavorite": on })).await }
    };

    // Five concurrent requests for the same favourite take one place.
    let same = futures_util::future::join_all((0..5).map(|_| favourite(&ids[0], true))).await;
    assert!(same.iter().all(|r| r.status == 200), "{:?}", same.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(app.user_row(user.id.as_str()).await.unwrap().favourites, limit);

    let over = favourite(&ids[1], true).await;
    assert_eq!((over.status, over.error_code()), (403, "LIMIT_REACHED"), "{}", over.body);
    assert_eq!(favourite(&ids[0], false).await.status, 200);
    assert_eq!(favourite(&ids[1], true).await.status, 200, "the place was given back");
    let usage = app.get("/usage", &user).await.body;
    assert_eq!(usage["allowances"]["favourites"], json!({ "used": limit, "limit": limit }));
}

#[tokio::test]
async fn an_upload_url_that_expires_unused_gives_its_allowance_back() {
    // The uploads are made "earlier" (this app's clock runs behind), so that their URLs have
    // expired by now; a sweep at the real time then never touches other tests' fresh uploads.
    let ago = app_config_presign_secs() + GRACE_SECS + 1;
    let app = TestApp::builder().later(time::Duration::seconds(-ago)).spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let used = upload(&app, &user, "/recordings", 4096).await;
    let unused = upload(&app, &user, "/recordings", 5000).await;
    let unused_sample = upload(&app, &user, "/voices/samples", 4096).await;
    for made in [&used, &unused, &unused_sample] {
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let mut put = reqwest::Client::new().put(used.body["uploadUrl"].as_str().unwrap());
    for (name, value) in used.body["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert!(put.body(vec![7u8; 4096]).send().await.unwrap().status().is_success());
    let before = app.get("/usage", &user).await.body["allowances"].clone();
    assert_eq!(before["uploads"]["used"], 3);
    assert_eq!(before["storageBytes"]["used"], 4096 + 5000);

    let now = TestApp::spawn().await;
    let schedule: EventBridgeEvent =
        serde_json::from_str(&std::fs::read_to_string(format!("{EVENTS}/sweep-schedule.json")).unwrap()).unwrap();
    let report = sweep::handle(now.function("sweep"), schedule.clone()).await.unwrap();
    assert!(report.given_back >= 2 && report.confirmed >= 1, "{report:?}");

    let after = app.get("/usage", &user).await.body["allowances"].clone();
    assert_eq!(after["uploads"]["used"], 1, "the two unused URLs were given back");
    assert_eq!(after["storageBytes"]["used"], 4096, "only the uploaded recording keeps its bytes");
    let id = |r: &TestResponse| r.body["recordingId"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/recordings/{}", id(&used)), &user).await.status, 200, "the used one stays");
    assert_eq!(app.get(&format!("/recordings/{}", id(&unused)), &user).await.status, 404, "the unused one is gone");

    // A second run finds nothing of these left to settle.
    sweep::handle(now.function("sweep"), schedule).await.unwrap();
    assert_eq!(app.get("/usage", &user).await.body["allowances"], after);
}

fn app_config_presign_secs() -> i64 {
    integration_tests::stack_config().voice.presign_ttl.as_secs() as i64
}
