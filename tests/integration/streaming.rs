//! POST /tts/stream against the ElevenLabs stand-in's streaming endpoint, which sends its sample
//! in 8 chunks, each after 100 ms: the audio reaches the client as it is produced, the
//! recording is stored before the stream ends, and every way of failing gives the unit back.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{SAMPLE_MP3, TestApp, User, VOICE, download, elevenlabs::Fault, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::domain::{tiers::Tier, usage::UsagePeriod};

fn speak(voice: &str) -> Value {
    json!({ "voiceId": voice, "text": format!("Streaming {}.", unique("")) })
}

async fn with_counter(app: &TestApp, user: &User, used: u32) {
    let period = UsagePeriod::containing(OffsetDateTime::now_utc()).to_string();
    app.set_user(
        &user.id,
        &[("usagePeriod", AttributeValue::S(period)), ("recordingsThisMonth", AttributeValue::N(used.to_string()))],
    )
    .await;
}

/// The stored audio of a recording, if there is one.
async fn stored(app: &TestApp, user: &User, recording_id: &str) -> Option<Vec<u8>> {
    let response = app.get(&format!("/recordings/{recording_id}"), user).await;
    if response.status == 404 {
        return None;
    }
    assert_eq!(response.status, 200, "{}", response.body);
    let (status, bytes) = download(response.body["audioUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    Some(bytes)
}

#[tokio::test]
async fn the_audio_arrives_as_it_is_produced_and_is_stored_before_the_stream_ends() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let started = Instant::now();

    let mut response = app.stream("/tts/stream", &user, &speak(VOICE)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "audio/mpeg");
    let recording_id = response.headers["x-recording-id"].to_str().unwrap().to_owned();

    let first = response.next_chunk().await.unwrap().expect("a first chunk");
    let first_at = started.elapsed();
    let mut audio = first;
    let mut chunks = 1;
    while let Some(chunk) = response.next_chunk().await.unwrap() {
        audio.extend(chunk);
        chunks += 1;
    }
    let ended_at = started.elapsed();

    assert_eq!(audio, SAMPLE_MP3, "the stand-in's audio, whole");
    assert!(chunks > 1, "it came in pieces ({chunks})");
    // The stand-in takes 8 × 100 ms: the first audio came long before it finished.
    assert!(first_at < ended_at / 2, "first chunk at {first_at:?}, end at {ended_at:?}");
    // Stored before the stream ended: readable at once, the same bytes, one unit spent.
    assert_eq!(stored(&app, &user, &recording_id).await.as_deref(), Some(SAMPLE_MP3));
    assert_eq!(app.counter(&user).await.0, 1);
    let calls = app.upstream_requests(VOICE).await;
    assert!(calls.iter().any(|c| c["stream"] == true), "ElevenLabs' streaming endpoint was used");
}

#[tokio::test]
async fn nothing_delivered_is_an_error_answer_and_gives_the_unit_back() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, 4).await;

    // ElevenLabs fails before any audio, or answers 200 with none.
    for voice in [app.elevenlabs().voice_that(Fault::Fail).await, app.elevenlabs().voice_that(Fault::Mute).await] {
        let response = app.stream("/tts/stream", &user, &speak(&voice)).await;
        assert_eq!(response.status, 503, "{voice}");
        assert!(!response.headers.contains_key("x-recording-id"));
        assert_eq!(response.json().await["error"]["code"], "UPSTREAM_UNAVAILABLE");
        assert_eq!(app.upstream_requests(&voice).await.len(), 1, "{voice}: the call was made");
        assert_eq!(app.counter(&user).await.0, 4, "{voice}: the unit was given back");
    }
}

#[tokio::test]
async fn a_stream_cut_midway_ends_in_an_error_stores_nothing_and_gives_the_unit_back() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, 4).await;

    let cut = app.elevenlabs().voice_that(Fault::Cut).await;
    let mut response = app.stream("/tts/stream", &user, &speak(&cut)).await;
    assert_eq!(response.status, 200);
    let recording_id = response.headers["x-recording-id"].to_str().unwrap().to_owned();
    let mut received = 0;
    let ending = loop {
        match response.next_chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            other => break other,
        }
    };

    assert!(received > 0 && received < SAMPLE_MP3.len(), "part of the audio came ({received} bytes)");
    assert!(ending.is_err(), "the stream ends in an error, not cleanly: {ending:?}");
    assert_eq!(stored(&app, &user, &recording_id).await, None, "no recording");
    assert_eq!(app.counter(&user).await.0, 4, "the unit was given back");
}

#[tokio::test]
async fn a_client_that_leaves_midway_still_gets_its_recording() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;

    let mut response = app.stream("/tts/stream", &user, &speak(VOICE)).await;
    let recording_id = response.headers["x-recording-id"].to_str().unwrap().to_owned();
    assert!(response.next_chunk().await.unwrap().is_some());
    drop(response);

    // The generation goes on without it (about 700 ms more at the stand-in).
    let deadline = Instant::now() + Duration::from_secs(10);
    let audio = loop {
        if let Some(audio) = stored(&app, &user, &recording_id).await {
            break audio;
        }
        assert!(Instant::now() < deadline, "the recording was never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(audio, SAMPLE_MP3);
    assert_eq!(app.counter(&user).await.0, 1, "the unit is spent");
}

#[tokio::test]
async fn the_stream_keeps_the_rules_of_tts() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;

    // Tier rules: the sliders are PREMIUM's.
    let sliders =
        json!({ "voiceId": VOICE, "text": "Hello", "voiceSettings": { "stability": 0.3, "similarityBoost": 0.4 } });
    let locked = app.stream("/tts/stream", &user, &sliders).await;
    assert_eq!(locked.status, 403);
    assert_eq!(locked.json().await["error"]["code"], "FEATURE_LOCKED");

    // CSRF and the session.
    let no_csrf =
        app.request(http::Method::POST, "/tts/stream", &[("cookie", &user.cookie())], Some(&speak(VOICE))).await;
    assert_eq!(no_csrf.error_code(), "CSRF_FAILED");
    let anonymous = app.request(http::Method::POST, "/tts/stream", &[], Some(&speak(VOICE))).await;
    assert_eq!(anonymous.status, 401);

    // The quota: with the month used up, LIMIT_REACHED and no call upstream.
    with_counter(&app, &user, 10).await;
    let voice = unique("quota-");
    let refused = app.stream("/tts/stream", &user, &speak(&voice)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json().await["error"]["code"], "LIMIT_REACHED");
    assert!(app.upstream_requests(&voice).await.is_empty());
    assert_eq!(app.counter(&user).await.0, 10);
}
