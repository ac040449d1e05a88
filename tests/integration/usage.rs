//! GET /usage and GET /user/profile.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{EVENTS, TestApp};
use serde_json::json;
use time::OffsetDateTime;
use voice_core::domain::{tiers::Tier, usage::UsagePeriod};

fn counter(period: UsagePeriod, used: u32) -> [(&'static str, AttributeValue); 2] {
    [
        ("usagePeriod", AttributeValue::S(period.to_string())),
        ("recordingsThisMonth", AttributeValue::N(used.to_string())),
    ]
}

#[tokio::test]
async fn usage_reports_used_limit_and_reset_date_for_each_tier() {
    let app = TestApp::spawn().await;
    let period = UsagePeriod::containing(OffsetDateTime::now_utc());
    let reset = period.next().starts_at().format(&time::format_description::well_known::Rfc3339).unwrap();

    for (tier, used, limit, remaining) in
        [(Tier::Free, 3, Some(10), Some(7)), (Tier::Basic, 100, Some(100), Some(0)), (Tier::Premium, 250, None, None)]
    {
        let user = app.sign_in(tier).await;
        app.set_user(&user.id, &counter(period, used)).await;

        let response = app.get("/usage", &user).await;

        assert_eq!(response.status, 200, "{}", response.body);
        let body = &response.body;
        assert_eq!(body["tier"], tier.as_str());
        assert_eq!(body["used"], used, "{tier}");
        assert_eq!(body["limit"], serde_json::json!(limit), "{tier}");
        assert_eq!(body["remaining"], serde_json::json!(remaining), "{tier}");
        assert_eq!(body["period"], period.to_string());
        assert_eq!(body["resetsAt"], reset.as_str());
    }
}

#[tokio::test]
async fn a_counter_from_last_month_counts_as_zero() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let last_month = UsagePeriod::containing(OffsetDateTime::now_utc()).previous();
    app.set_user(&user.id, &counter(last_month, 9)).await;

    let response = app.get("/usage", &user).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.body["used"], 0);
    assert_eq!(response.body["remaining"], 10);
}

#[tokio::test]
async fn the_month_turning_resets_what_usage_shows() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let now = OffsetDateTime::now_utc();
    app.set_user(&user.id, &counter(UsagePeriod::containing(now), 42)).await;
    let next_month = UsagePeriod::containing(now).next().starts_at() - now + time::Duration::seconds(1);

    let later = TestApp::builder().later(next_month).spawn().await;
    // The session would have idled out by then; sign in again on the later clock.
    let again = later.sign_in(Tier::Basic).await;
    later.set_user(&again.id, &counter(UsagePeriod::containing(now), 42)).await;

    assert_eq!(app.get("/usage", &user).await.body["used"], 42);
    assert_eq!(later.get("/usage", &again).await.body["used"], 0);
}

#[tokio::test]
async fn the_profile_carries_tier_features_and_usage() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Premium).await;

    let response = app.get("/user/profile", &user).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let body = &response.body;
    assert_eq!(body["userId"], user.id.as_str());
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["name"], "Test User");
    assert_eq!(body["features"]["advancedSliders"], true);
    assert!(body["usage"]["limit"].is_null());
    assert!(body["createdAt"].as_str().is_some_and(|t| t.starts_with("20")));
    assert!(body.get("csrfToken").is_none(), "the profile is not the session");
}

#[tokio::test]
async fn usage_and_profile_need_a_session() {
    let app = TestApp::spawn().await;
    for path in ["/usage", "/user/profile"] {
        let response = app.request(Method::GET, path, &[], None).await;
        assert_eq!(response.status, 401, "{path}");
        assert_eq!(response.error_code(), "UNAUTHENTICATED");
    }
}

async fn stamp(app: &TestApp, user: &integration_tests::User, period: UsagePeriod, recordings: u32, characters: u64) {
    let fields = [
        ("usagePeriod", AttributeValue::S(period.to_string())),
        ("recordingsThisMonth", AttributeValue::N(recordings.to_string())),
        ("charactersThisMonth", AttributeValue::N(characters.to_string())),
    ];
    app.set_user(&user.id, &fields).await;
}

#[tokio::test]
async fn usage_history_survives_two_resets_and_a_late_one_and_counts_characters() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let texts = ["Hello there.", "A second, longer sentence to speak."];
    for text in texts {
        let made = app.post("/tts", &user, Some(&json!({ "voiceId": "21m00Tcm4TlvDq8ikWAM", "text": text }))).await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let characters: u64 = texts.iter().map(|t| t.chars().count() as u64).sum();
    let usage = app.get("/usage", &user).await.body;
    assert_eq!((usage["used"].as_u64(), usage["characters"].as_u64()), (Some(2), Some(characters)));

    // As if those were last month's, and the monthly reset runs twice.
    let this_month = UsagePeriod::containing(OffsetDateTime::now_utc());
    let last_month = this_month.previous();
    stamp(&app, &user, last_month, 2, characters).await;
    let schedule: EventBridgeEvent =
        serde_json::from_str(&std::fs::read_to_string(format!("{EVENTS}/reset-schedule.json")).unwrap()).unwrap();
    reset::handle(app.function("reset"), schedule.clone()).await.unwrap();
    reset::handle(app.function("reset"), schedule).await.unwrap();
    let history = app.get("/usage/history?months=12", &user).await.body;
    let none = json!({ "units": 0, "cents": 0 });
    let expected =
        json!([{ "period": last_month.to_string(), "recordings": 2, "characters": characters, "overage": none }]);
    assert_eq!(history["months"], expected, "archived once, not overwritten by the second run");

    // A month the reset never reached: the first generation of the new month archives it.
    let two_back = last_month.previous();
    stamp(&app, &user, two_back, 7, 321).await;
    let made = app.post("/tts", &user, Some(&json!({ "voiceId": "21m00Tcm4TlvDq8ikWAM", "text": "Late." }))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let history = app.get("/usage/history", &user).await.body;
    let months: Vec<&str> =
        history["months"].as_array().unwrap().iter().map(|m| m["period"].as_str().unwrap()).collect();
    assert_eq!(months, [last_month.to_string(), two_back.to_string()], "newest first");
    assert_eq!(history["months"][1]["recordings"], 7);
    assert_eq!(history["months"][1]["characters"], 321);
    assert_eq!(app.get("/usage", &user).await.body["characters"], 5, "this month: the one new text");

    for bad in ["months=0", "months=121", "months=all"] {
        assert_eq!(app.get(&format!("/usage/history?{bad}"), &user).await.status, 400, "{bad}");
    }
}
