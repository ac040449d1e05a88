//! POST /tts, GET /voices and presets, against the ElevenLabs stand-in, moto (DynamoDB, S3) and
//! Redis. The tier behaviour is set directly on the user row where billing is not involved.

use std::{sync::Arc, time::Duration as StdDuration};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    SAMPLE_MP3, TestApp, TestResponse, User, VOICE, download,
    elevenlabs::{AccountLimits, Fault},
    unique,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::{
    domain::{tiers::Tier, usage::UsagePeriod},
    store::rate_limit as ratelimit,
    telemetry::metrics,
};

/// A generation request with text of its own: an identical request would be served from the
/// generation cache, with no quota spent and no call upstream.
fn speak(voice: &str) -> Value {
    json!({ "voiceId": voice, "text": format!("Hello there, {}.", unique("")) })
}

async fn with_counter(app: &TestApp, user: &User, period: UsagePeriod, used: u32) {
    app.set_user(
        &user.id,
        &[
            ("usagePeriod", AttributeValue::S(period.to_string())),
            ("recordingsThisMonth", AttributeValue::N(used.to_string())),
        ],
    )
    .await;
}

fn this_month() -> UsagePeriod {
    UsagePeriod::containing(OffsetDateTime::now_utc())
}

/// Runs `n` generations at once; returns the statuses.
async fn concurrently(app: &Arc<TestApp>, user: &User, n: usize) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (app, user) = (app.clone(), user.clone());
        tasks.spawn(async move { app.post("/tts", &user, Some(&speak(VOICE))).await.status });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn a_free_user_gets_ten_generations_then_limit_reached() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;

    for n in 1..=10 {
        let response = app.post("/tts", &user, Some(&speak(VOICE))).await;
        assert_eq!(response.status, 201, "generation {n}: {}", response.body);
        assert_eq!(response.body["usage"]["used"], n);
    }
    let refused = app.post("/tts", &user, Some(&speak(VOICE))).await;

    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.error_code(), "LIMIT_REACHED");
    assert_eq!(refused.body["error"]["upgradeUrl"], app.app.config.voice.upgrade_url.as_str());
    let usage = app.get("/usage", &user).await;
    assert_eq!((usage.body["used"].clone(), usage.body["limit"].clone()), (json!(10), json!(10)));
}

#[tokio::test]
async fn fifty_concurrent_generations_with_ten_left_succeed_exactly_ten_times() {
    let app = Arc::new(TestApp::spawn().await);
    for (tier, used, limit) in [(Tier::Free, 0, 10), (Tier::Basic, 90, 100)] {
        let user = app.sign_in(tier).await;
        with_counter(&app, &user, this_month(), used).await;

        let statuses = concurrently(&app, &user, 50).await;

        let succeeded = statuses.iter().filter(|s| **s == 201).count();
        assert_eq!(succeeded, 10, "{tier}: {statuses:?}");
        assert!(statuses.iter().all(|s| [201, 403, 429].contains(s)), "{statuses:?}");
        assert_eq!(app.counter(&user).await.0, limit, "{tier}: the counter never passes the limit");
    }
}

#[tokio::test]
async fn generations_racing_across_the_month_boundary_are_counted_once_each() {
    let now = OffsetDateTime::now_utc();
    let into_next_month = UsagePeriod::containing(now).next().starts_at() - now + time::Duration::seconds(5);
    let later = Arc::new(TestApp::builder().later(into_next_month).spawn().await);
    let user = later.sign_in(Tier::Free).await;
    // Ten used last month, as seen from the new month.
    with_counter(&later, &user, this_month(), 10).await;

    let statuses = concurrently(&later, &user, 20).await;

    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    let (used, period) = later.counter(&user).await;
    assert_eq!(used, 10);
    assert_eq!(period, Some(this_month().next().to_string()));
}

#[tokio::test]
async fn an_upstream_failure_or_timeout_gives_the_unit_back() {
    let app = TestApp::builder().config(|c| c.voice.elevenlabs_timeout = StdDuration::from_secs(1)).spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, this_month(), 4).await;

    for voice in [app.elevenlabs().voice_that(Fault::Fail).await, app.elevenlabs().voice_that(Fault::Hang).await] {
        let response = app.post("/tts", &user, Some(&speak(&voice))).await;
        assert_eq!(response.status, 503, "{voice}: {}", response.body);
        assert_eq!(response.error_code(), "UPSTREAM_UNAVAILABLE");
        assert_eq!(app.upstream_requests(&voice).await.len(), 1, "the call was made");
        assert_eq!(app.counter(&user).await.0, 4, "{voice}: the unit was given back");
    }
}

#[tokio::test]
async fn an_upstream_answering_past_the_invocations_deadline_leaves_the_counter_unchanged() {
    // ElevenLabs' own timeout (30 s) is far away; the function's 5 s deadline is what bounds it.
    let app = TestApp::builder().function_timeout(StdDuration::from_secs(5)).spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, this_month(), 4).await;
    let voice = app.elevenlabs().voice_that(Fault::Hang).await;

    let started = std::time::Instant::now();
    let response = app.post("/tts", &user, Some(&speak(&voice))).await;
    let took = started.elapsed();

    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.error_code(), "UPSTREAM_UNAVAILABLE");
    assert!(took < StdDuration::from_secs(5), "answered before the deadline ({took:?})");
    assert_eq!(app.upstream_requests(&voice).await.len(), 1, "ElevenLabs was called");
    assert_eq!(app.counter(&user).await.0, 4, "the unit was given back in time");
}

#[tokio::test]
async fn a_used_up_elevenlabs_quota_is_a_503_and_an_alarm_never_a_sign_in_error() {
    metrics::start_capture();
    let limits = AccountLimits { characters: Some(5), ..Default::default() };
    let (app, _) = integration_tests::with_elevenlabs_account_limited(limits, 30).await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, this_month(), 4).await;

    let response = app.post("/tts", &user, Some(&speak(VOICE))).await;

    // ElevenLabs answers 401 quota_exceeded: our user is signed in and did nothing wrong.
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.error_code(), "UPSTREAM_UNAVAILABLE");
    assert_eq!(app.counter(&user).await.0, 4, "the unit was given back");
    assert_eq!(app.get("/auth/session", &user).await.status, 200, "still signed in");
    let alarms = metrics::captured().into_iter().filter(|line| line["ElevenLabsQuotaExceeded"] == 1.0).count();
    assert_eq!(alarms, 1, "the quota is counted for its alarm");
}

#[tokio::test]
async fn past_the_accounts_concurrency_generations_wait_their_turn_and_none_is_refused_upstream() {
    // The account takes 2 at once and answers in 300 ms; nine generations arrive together from
    // FREE, BASIC and PREMIUM users, by POST /tts and POST /tts/stream.
    let limits = AccountLimits { concurrency: Some(2), latency_ms: Some(300), ..Default::default() };
    let (app, account) = integration_tests::with_elevenlabs_account_limited(limits, 30).await;
    let app = Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for tier in [Tier::Free, Tier::Basic, Tier::Premium] {
        let user = app.sign_in(tier).await;
        for route in ["/tts", "/tts", "/tts/stream"] {
            let (app, user) = (app.clone(), user.clone());
            tasks.spawn(async move {
                if route == "/tts" {
                    app.post(route, &user, Some(&speak(VOICE))).await.status
                } else {
                    let mut streamed = app.stream(route, &user, &speak(VOICE)).await;
                    while streamed.next_chunk().await.unwrap().is_some() {}
                    streamed.status
                }
            });
        }
    }
    let statuses = tasks.join_all().await;

    assert!(statuses.iter().all(|s| *s == 201 || *s == 200), "{statuses:?}");
    let speech = app.elevenlabs().account_speech(&account).await;
    assert_eq!(speech.refused_busy, 0, "ElevenLabs never refused one for concurrency");
    assert_eq!(speech.served, 9);
    assert!(speech.peak_busy <= 2, "at most the account's 2 at once: {speech:?}");
}

#[tokio::test]
async fn another_client_holding_the_accounts_places_is_waited_out_within_the_deadline() {
    // The app believes the account takes 2 at once; another client of the account holds one.
    let limits = AccountLimits { concurrency: Some(1), latency_ms: Some(700), ..Default::default() };
    let account = integration_tests::elevenlabs_account(&limits).await;
    let app = TestApp::builder()
        .config(account.configure())
        .config(|c| c.voice.elevenlabs_accounts[0].concurrency = 2)
        .spawn()
        .await;
    let app = Arc::new(app);
    let user = app.sign_in(Tier::Basic).await;

    let statuses = concurrently(&app, &user, 2).await;

    assert_eq!(statuses, [201, 201]);
    let speech = app.elevenlabs().account_speech(&account.name).await;
    assert!(speech.refused_busy >= 1, "ElevenLabs said too_many_concurrent_requests: {speech:?}");
    assert_eq!(speech.served, 2, "and the refused one was asked again");
    assert_eq!(app.counter(&user).await.0, 2);
}

#[tokio::test]
async fn a_generation_that_gets_no_place_in_time_is_a_503_with_retry_after_and_gives_its_unit_back() {
    let account = integration_tests::elevenlabs_account(&AccountLimits::default()).await;
    let app = TestApp::builder()
        .config(account.configure())
        .config(|c| c.voice.elevenlabs_accounts[0].concurrency = 1)
        .function_timeout(StdDuration::from_secs(6))
        .spawn()
        .await;
    let app = Arc::new(app);
    let user = app.sign_in(Tier::Premium).await;
    // One generation holds the account's only place until its deadline.
    let hang = app.elevenlabs().voice_that(Fault::Hang).await;
    let holder = tokio::spawn({
        let (app, user, hang) = (app.clone(), user.clone(), hang.clone());
        async move { app.post("/tts", &user, Some(&speak(&hang))).await }
    });
    let started = integration_tests::eventually(StdDuration::from_secs(5), || async {
        app.upstream_requests(&hang).await.len() == 1
    });
    assert!(started.await, "the hanging generation holds the place");

    let waiting = app.elevenlabs().voice_that(Fault::Slow).await;
    let refused = app.post("/tts", &user, Some(&speak(&waiting))).await;

    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.error_code(), "UPSTREAM_UNAVAILABLE");
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(refused.body["error"]["retryAfter"], retry_after);
    assert!(app.upstream_requests(&waiting).await.is_empty(), "it never reached ElevenLabs");
    assert_eq!(holder.await.unwrap().status, 503, "the hanging one ran out of time too");
    assert_eq!(app.counter(&user).await.0, 0, "both units given back");
}

#[tokio::test]
async fn elevenlabs_overloaded_is_asked_again_with_backoff_then_a_503_and_the_unit_back() {
    let app = TestApp::builder().function_timeout(StdDuration::from_secs(6)).spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let busy = app.elevenlabs().voice_that(Fault::Busy).await;

    let response = app.post("/tts", &user, Some(&speak(&busy))).await;

    assert_eq!(response.status, 503, "{}", response.body);
    let asked = app.upstream_requests(&busy).await.len();
    assert!((2..=6).contains(&asked), "asked again, backing off: {asked} requests in 2 s");
    assert_eq!(app.counter(&user).await.0, 0, "the unit given back");
}

#[tokio::test]
async fn a_generation_that_cannot_finish_in_time_is_not_started() {
    let app = TestApp::builder().function_timeout(StdDuration::from_secs(3)).spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, this_month(), 4).await;
    let voice = app.elevenlabs().voice_that(Fault::Slow).await;

    let response = app.post("/tts", &user, Some(&speak(&voice))).await;

    assert_eq!(response.status, 503, "{}", response.body);
    assert!(app.upstream_requests(&voice).await.is_empty(), "ElevenLabs was never called");
    assert_eq!(app.counter(&user).await.0, 4, "nothing was reserved");
}

#[tokio::test]
async fn tier_rules_lock_sliders_and_presets_and_premium_settings_reach_elevenlabs() {
    let app = TestApp::spawn().await;
    let free = app.sign_in(Tier::Free).await;
    let sliders = json!({ "stability": 0.33, "similarityBoost": 0.44, "style": 0.55, "useSpeakerBoost": false });

    let locked = [
        json!({ "voiceId": VOICE, "text": "Hi", "voiceSettings": sliders }),
        json!({ "voiceId": VOICE, "text": "Hi", "presetId": "narrator" }),
    ];
    for body in locked {
        let response = app.post("/tts", &free, Some(&body)).await;
        assert_eq!(response.status, 403, "{body}");
        assert_eq!(response.error_code(), "FEATURE_LOCKED");
        assert!(response.body["error"]["upgradeUrl"].is_string());
    }
    assert_eq!(app.counter(&free).await.0, 0, "refused requests use nothing");
    let allowed = app.post("/tts", &free, Some(&json!({ "voiceId": VOICE, "text": "Hi", "presetId": "calm" }))).await;
    assert_eq!(allowed.status, 201, "{}", allowed.body);

    let premium = app.sign_in(Tier::Premium).await;
    let voice = unique("premium-voice-");
    let body = json!({ "voiceId": voice, "text": "Hi", "voiceSettings": sliders, "speed": 0.9 });
    let response = app.post("/tts", &premium, Some(&body)).await;
    assert_eq!(response.status, 201, "{}", response.body);
    let sent = app.upstream_requests(&voice).await;
    let settings = &sent[0]["body"]["voice_settings"];
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-6;
    assert!(close(&settings["stability"], 0.33) && close(&settings["similarity_boost"], 0.44), "{settings}");
    assert!(close(&settings["style"], 0.55) && close(&settings["speed"], 0.9), "{settings}");
    assert_eq!(settings["use_speaker_boost"], false);
    assert_eq!(sent[0]["body"]["model_id"], Tier::Premium.rules().tts_model);
    assert!(response.body["usage"]["limit"].is_null(), "PREMIUM is unlimited");
}

#[tokio::test]
async fn the_audio_is_stored_and_downloads_byte_for_byte() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;

    let request = speak(VOICE);
    let response = app.post("/tts", &user, Some(&request)).await;

    assert_eq!(response.status, 201, "{}", response.body);
    let url = response.body["audioUrl"].as_str().unwrap();
    // Signed for the presign TTL (600 s): through the CloudFront stand-in locally.
    let expires: i64 = url.split("Expires=").nth(1).and_then(|rest| rest.split('&').next()).unwrap().parse().unwrap();
    let left = expires - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((590..=600).contains(&left), "short-lived ({left} s): {url}");
    let (status, bytes) = download(url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, SAMPLE_MP3);

    let id = response.body["recordingId"].as_str().unwrap();
    let stored = app.get(&format!("/recordings/{id}"), &user).await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    assert_eq!(stored.body["voiceId"], VOICE);
    assert_eq!(stored.body["voiceName"], "Rachel");
    assert_eq!(stored.body["text"], request["text"]);
    assert_eq!(stored.body["isFavorite"], false);
    let in_a_week = OffsetDateTime::now_utc().unix_timestamp() + 7 * 24 * 3600;
    assert!((stored.body["expiresAt"].as_i64().unwrap() - in_a_week).abs() < 60);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let cases = [
        (json!({ "voiceId": VOICE, "text": "x".repeat(501) }), "text"),
        (json!({ "voiceId": VOICE }), "text"),
        (json!({ "voiceId": VOICE, "text": "   " }), "text"),
        (json!({ "voiceId": "../../admin", "text": "Hi" }), "voiceId"),
        (json!({ "voiceId": VOICE, "text": "Hi", "speed": 3.0 }), "speed"),
        (json!({ "voiceId": VOICE, "text": "Hi", "speed": "fast" }), "speed"),
        (json!({ "voiceId": VOICE, "text": "Hi", "presetId": "no-such-preset" }), "presetId"),
        (json!({ "voiceId": VOICE, "text": "Hi", "volume": 11 }), "volume"),
    ];
    for (body, field) in cases {
        let response = app.post("/tts", &user, Some(&body)).await;
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(response.error_code(), "VALIDATION_FAILED");
        assert!(response.body["error"]["fields"][field].is_string(), "{field}: {}", response.body);
    }
    let premium = app.sign_in(Tier::Premium).await;
    let too_long = json!({ "voiceId": VOICE, "text": "x".repeat(5001) });
    assert_eq!(app.post("/tts", &premium, Some(&too_long)).await.status, 400);
    let bad_slider =
        json!({ "voiceId": VOICE, "text": "Hi", "voiceSettings": { "stability": 1.5, "similarityBoost": 0.5 } });
    let response = app.post("/tts", &premium, Some(&bad_slider)).await;
    assert!(response.body["error"]["fields"]["voiceSettings.stability"].is_string(), "{}", response.body);

    let cookie = user.cookie();
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", user.csrf.as_str())];
    let empty = app.request(http::Method::POST, "/tts", &headers, None).await;
    assert_eq!(empty.body["error"]["fields"]["body"], "a JSON body is required");
    let no_csrf = app.request(http::Method::POST, "/tts", &[("cookie", &user.cookie())], Some(&speak(VOICE))).await;
    assert_eq!(no_csrf.error_code(), "CSRF_FAILED");
    assert_eq!(app.counter(&user).await.0, 0, "nothing was used");
}

#[tokio::test]
async fn past_the_per_minute_rate_the_answer_is_rate_limited_with_retry_after() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let key = ratelimit::user_key("tts", user.token.slot(), now);
    let _: () = app.redis().await.set_ex(&key, Tier::Free.rules().generations_per_minute, 120).await.unwrap();

    let response: TestResponse = app.post("/tts", &user, Some(&speak(VOICE))).await;

    if response.status == 201 {
        // The minute turned between setting the counter and the request: a new window began.
        assert_ne!(ratelimit::user_key("tts", user.token.slot(), OffsetDateTime::now_utc().unix_timestamp()), key);
        return;
    }
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(response.error_code(), "RATE_LIMITED");
    let retry_after: u64 = response.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(app.counter(&user).await.0, 0);
}

#[tokio::test]
async fn voices_come_from_elevenlabs() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let response = app.get("/voices", &user).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let names: Vec<&str> =
        response.body["voices"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Rachel", "Domi", "Bella"]);
}

#[tokio::test]
async fn presets_follow_the_tier_and_premium_saves_its_own() {
    let app = TestApp::spawn().await;
    let free = app.sign_in(Tier::Free).await;
    let listed = app.get("/presets", &free).await;
    let presets = listed.body["presets"].as_array().unwrap();
    assert_eq!(presets.len(), 12);
    assert_eq!(presets.iter().filter(|p| p["locked"] == false).count(), 3);
    let new = json!({ "name": "Mine", "stability": 0.2, "similarityBoost": 0.9, "style": 0.1, "speed": 1.1 });
    assert_eq!(app.post("/presets", &free, Some(&new)).await.error_code(), "FEATURE_LOCKED");

    let premium = app.sign_in(Tier::Premium).await;
    let saved = app.post("/presets", &premium, Some(&new)).await;
    assert_eq!(saved.status, 201, "{}", saved.body);
    let id = saved.body["id"].as_str().unwrap().to_owned();
    let listed = app.get("/presets", &premium).await;
    assert_eq!(listed.body["customPresets"][0]["name"], "Mine");

    let voice = unique("preset-voice-");
    let used = app.post("/tts", &premium, Some(&json!({ "voiceId": voice, "text": "Hi", "presetId": id }))).await;
    assert_eq!(used.status, 201, "{}", used.body);
    let settings = &app.upstream_requests(&voice).await[0]["body"]["voice_settings"];
    assert!((settings["similarity_boost"].as_f64().unwrap() - 0.9).abs() < 1e-6, "{settings}");

    assert_eq!(app.delete(&format!("/presets/{id}"), &premium).await.status, 200);
    assert_eq!(app.get("/presets", &premium).await.body["customPresets"], json!([]));
    assert_eq!(app.delete(&format!("/presets/{id}"), &premium).await.status, 404);
    let bad = json!({ "name": "", "stability": 0.2, "similarityBoost": 0.9 });
    assert!(app.post("/presets", &premium, Some(&bad)).await.body["error"]["fields"]["name"].is_string());
}

#[tokio::test]
async fn a_saved_preset_is_renamed_in_place_and_a_rename_racing_a_save_loses_neither() {
    let app = Arc::new(TestApp::spawn().await);
    let premium = app.sign_in(Tier::Premium).await;
    let new = json!({ "name": "Warm", "stability": 0.3, "similarityBoost": 0.8, "style": 0.2, "speed": 0.9 });
    let id = app.post("/presets", &premium, Some(&new)).await.body["id"].as_str().unwrap().to_owned();

    let renamed = app.patch(&format!("/presets/{id}"), &premium, &json!({ "name": "  Warmer " })).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!((renamed.body["id"].as_str(), &renamed.body["name"]), (Some(id.as_str()), &json!("Warmer")));
    assert_eq!((&renamed.body["stability"], &renamed.body["speed"]), (&json!(0.3), &json!(0.9)));

    // A rename and a save at once, from a session read before either: both are kept.
    let rename = {
        let (app, premium, path) = (app.clone(), premium.clone(), format!("/presets/{id}"));
        tokio::spawn(async move { app.patch(&path, &premium, &json!({ "name": "Warmest" })).await })
    };
    let other = json!({ "name": "Bright", "stability": 0.6, "similarityBoost": 0.7 });
    assert_eq!(app.post("/presets", &premium, Some(&other)).await.status, 201);
    assert_eq!(rename.await.unwrap().status, 200);
    let listed = app.get("/presets", &premium).await.body["customPresets"].clone();
    let mut names: Vec<&str> = listed.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Bright", "Warmest"], "{listed}");

    let path = format!("/presets/{id}");
    let blank = app.patch(&path, &premium, &json!({ "name": " " })).await;
    assert!(blank.body["error"]["fields"]["name"].is_string(), "{}", blank.body);
    assert_eq!(app.patch("/presets/custom-000000000000", &premium, &json!({ "name": "x" })).await.status, 404);
    let unknown_field = app.patch(&path, &premium, &json!({ "name": "x", "speed": 1 })).await;
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.body);
    let basic = app.sign_in(Tier::Basic).await;
    assert_eq!(app.patch(&path, &basic, &json!({ "name": "x" })).await.error_code(), "FEATURE_LOCKED");
    let listed = app.get("/presets", &premium).await.body["customPresets"].clone();
    assert!(listed.as_array().unwrap().iter().any(|p| p["name"] == "Warmest"), "refusals changed nothing: {listed}");
}

#[tokio::test]
async fn premade_speech_goes_to_the_least_busy_account() {
    // Two accounts of one place each, every answer taking 1.5 s.
    let limits = AccountLimits { concurrency: Some(1), latency_ms: Some(1500), ..Default::default() };
    let (a, b) =
        (integration_tests::elevenlabs_account(&limits).await, integration_tests::elevenlabs_account(&limits).await);
    let accounts = vec![a.listed(1, 30), b.listed(1, 30)];
    let app = TestApp::builder().config(move |c| c.voice.elevenlabs_accounts = accounts.clone()).spawn().await;
    let app = Arc::new(app);
    let user = app.sign_in(Tier::Premium).await;

    // The first takes A (equals: the first); the second, once A is busy, takes B.
    let first = {
        let (app, user) = (app.clone(), user.clone());
        tokio::spawn(async move { app.post("/tts", &user, Some(&speak(VOICE))).await })
    };
    let a_busy = integration_tests::eventually(StdDuration::from_secs(3), || async {
        app.app.gates.of(&a.name).held().await.unwrap() == 1
    });
    assert!(a_busy.await, "the first generation holds A's place");
    let started = std::time::Instant::now();
    let second = app.post("/tts", &user, Some(&speak(VOICE))).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert!(started.elapsed() < StdDuration::from_millis(2900), "it did not wait for A: {:?}", started.elapsed());
    assert_eq!(first.await.unwrap().status, 201);

    for account in [&a.name, &b.name] {
        let speech = app.elevenlabs().account_speech(account).await;
        assert_eq!((speech.served, speech.refused_busy), (1, 0), "{account}: {speech:?}");
    }
}

#[tokio::test]
async fn with_the_gates_store_unreachable_generations_go_ahead_ungated_and_a_429_is_asked_again() {
    // The account takes one at once; the app is told so, but cannot reach its gate.
    let limits = AccountLimits { concurrency: Some(1), latency_ms: Some(500), ..Default::default() };
    let account = integration_tests::elevenlabs_account(&limits).await;
    let url: url::Url = integration_tests::stack_config().redis_url.expose().parse().unwrap();
    let proxy = integration_tests::fault::FaultProxy::start(integration_tests::fault::target_of(&url)).await;
    let proxied = proxy.in_front_of(&url).to_string();
    let app = TestApp::builder()
        .config(account.configure())
        .config(|c| c.voice.elevenlabs_accounts[0].concurrency = 1)
        .config(move |c| c.redis_url = voice_core::config::Secret::new(proxied.clone()))
        .spawn()
        .await;
    let app = Arc::new(app);
    let user = app.sign_in(Tier::Basic).await;
    proxy.cut();

    let statuses = concurrently(&app, &user, 3).await;

    assert_eq!(statuses, [201, 201, 201], "served with the gate away (the session from DynamoDB)");
    let speech = app.elevenlabs().account_speech(&account.name).await;
    assert!(speech.refused_busy >= 1, "ungated, ElevenLabs refused some at first: {speech:?}");
    assert_eq!(speech.served, 3, "and those were asked again");
    proxy.restore();
    assert_eq!(app.counter(&user).await.0, 3, "each counted once");
}
