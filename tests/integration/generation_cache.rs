//! The generation cache: a repeated generation by the same user (same voice, text, settings,
//! model and format) is a copy of the audio already made: no call to ElevenLabs, no quota.

use integration_tests::{TestApp, User, download, unique};
use serde_json::{Value, json};
use voice_core::{domain::tiers::Tier, telemetry::metrics};

/// A voice id of this test's own, so the stand-in's request log is the test's alone.
fn voice() -> String {
    unique("cache").replace('-', "")
}

async fn generations_upstream(app: &TestApp, voice: &str) -> usize {
    app.upstream_requests(voice).await.len()
}

async fn generate(app: &TestApp, user: &User, body: &Value) -> Value {
    let response = app.post("/tts", user, Some(body)).await;
    assert_eq!(response.status, 201, "{}", response.body);
    response.body
}

#[tokio::test]
async fn the_same_request_again_is_served_from_the_cache_with_no_upstream_call_and_no_quota() {
    metrics::start_capture();
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let voice = voice();
    let body = json!({ "voiceId": voice, "text": "Say it once, hear it twice.", "speed": 1.05 });

    let first = generate(&app, &user, &body).await;
    assert_eq!(generations_upstream(&app, &voice).await, 1);
    assert_eq!(app.counter(&user).await.0, 1);

    let second = generate(&app, &user, &body).await;
    assert_eq!(generations_upstream(&app, &voice).await, 1, "no second call to ElevenLabs");
    assert_eq!(app.counter(&user).await.0, 1, "no quota spent");
    assert_eq!(second["usage"]["used"], 1);
    assert_ne!(first["recordingId"], second["recordingId"], "a recording of its own");
    let hits = metrics::captured().into_iter().filter(|line| line["CachedGenerations"] == 1.0).count();
    assert_eq!(hits, 1, "the hit is counted as CachedGenerations");

    let (_, first_bytes) = download(first["audioUrl"].as_str().unwrap()).await;
    let (status, second_bytes) = download(second["audioUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(first_bytes, second_bytes, "the same audio");

    // Its own object: deleting the first recording leaves the second playable, and the second
    // expires like any recording until it is favourited.
    let id = second["recordingId"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/recordings/{}", first["recordingId"].as_str().unwrap()), &user).await.status, 200);
    let row = app.get(&format!("/recordings/{id}"), &user).await;
    assert_eq!(row.status, 200, "{}", row.body);
    assert!(row.body["expiresAt"].is_number(), "{}", row.body);
    assert_eq!(row.body["text"], body["text"]);
    assert_eq!(download(row.body["audioUrl"].as_str().unwrap()).await, (200, first_bytes));
    let favourite = app.patch(&format!("/recordings/{id}"), &user, &json!({ "isFavorite": true })).await;
    assert_eq!(favourite.status, 200, "{}", favourite.body);
    assert!(favourite.body["expiresAt"].is_null(), "{}", favourite.body);
}

#[tokio::test]
async fn anything_different_is_generated_anew() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Premium).await;
    let voice = voice();
    let base = json!({ "voiceId": voice, "text": "Different every time." });
    generate(&app, &user, &base).await;
    generate(&app, &user, &json!({ "voiceId": voice, "text": "Different every time!" })).await;
    generate(&app, &user, &json!({ "voiceId": voice, "text": "Different every time.", "speed": 0.9 })).await;
    let sliders = json!({ "stability": 0.2, "similarityBoost": 0.9 });
    generate(&app, &user, &json!({ "voiceId": voice, "text": "Different every time.", "voiceSettings": sliders }))
        .await;
    assert_eq!(generations_upstream(&app, &voice).await, 4, "text, speed and sliders each make new audio");

    // Another user's identical request never reads this user's cache.
    let other = app.sign_in(Tier::Premium).await;
    generate(&app, &other, &base).await;
    assert_eq!(generations_upstream(&app, &voice).await, 5);
}

#[tokio::test]
async fn a_cached_request_still_needs_a_voice_the_caller_may_use() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let voice = voice();
    let body = json!({ "voiceId": voice, "text": "Cached, but still checked." });
    generate(&app, &user, &body).await;
    // Sliders on FREE are refused before anything else, cached or not.
    let locked = json!({ "voiceId": voice, "text": "Cached, but still checked.", "voiceSettings": { "stability": 0.3, "similarityBoost": 0.5 } });
    assert_eq!(app.post("/tts", &user, Some(&locked)).await.error_code(), "FEATURE_LOCKED");
    // Out of quota: the cache still answers (it costs nothing), a new text does not.
    let now = time::OffsetDateTime::now_utc();
    let period = format!("{:04}-{:02}", now.year(), now.month() as u8);
    app.set_user(
        &user.id,
        &[
            ("recordingsThisMonth", aws_sdk_dynamodb::types::AttributeValue::N("10".into())),
            ("usagePeriod", aws_sdk_dynamodb::types::AttributeValue::S(period)),
        ],
    )
    .await;
    assert_eq!(app.post("/tts", &user, Some(&body)).await.status, 201, "a repeat spends nothing");
    let fresh = json!({ "voiceId": voice, "text": "Something new." });
    assert_eq!(app.post("/tts", &user, Some(&fresh)).await.error_code(), "LIMIT_REACHED");
}

/// All of a streamed answer's audio, with the recording it names.
async fn streamed(app: &TestApp, user: &User, body: &Value) -> (String, Vec<u8>) {
    let mut response = app.stream("/tts/stream", user, body).await;
    assert_eq!(response.status, 200);
    let recording_id = response.headers["x-recording-id"].to_str().unwrap().to_owned();
    let mut audio = Vec::new();
    while let Some(chunk) = response.next_chunk().await.unwrap() {
        audio.extend(chunk);
    }
    (recording_id, audio)
}

#[tokio::test]
async fn streamed_and_whole_generations_share_the_cache() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let voice = voice();
    let body = json!({ "voiceId": voice, "text": "Streamed once, then repeated both ways." });

    let (first_id, made) = streamed(&app, &user, &body).await;
    assert_eq!(generations_upstream(&app, &voice).await, 1);
    assert_eq!(app.counter(&user).await.0, 1);

    // The stream filled the cache: POST /tts repeats it.
    let whole = generate(&app, &user, &body).await;
    assert_eq!(download(whole["audioUrl"].as_str().unwrap()).await, (200, made.clone()));

    // And the stream reads it: the cached audio, as a recording of its own.
    let (again_id, again) = streamed(&app, &user, &body).await;
    assert_eq!(again, made, "the same audio");
    assert_eq!(generations_upstream(&app, &voice).await, 1, "no second call to ElevenLabs");
    assert_eq!(app.counter(&user).await.0, 1, "no quota spent by either repeat");
    assert_ne!(again_id, first_id);
    let row = app.get(&format!("/recordings/{again_id}"), &user).await;
    assert_eq!(row.status, 200, "{}", row.body);
    assert_eq!(row.body["text"], body["text"]);
    assert_eq!(download(row.body["audioUrl"].as_str().unwrap()).await, (200, made));
}
