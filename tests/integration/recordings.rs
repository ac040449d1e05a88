//! Recordings (list, read, favourite, delete, presigned upload), the TTL stream consumer and the
//! monthly reset, against moto (DynamoDB, S3) and Redis.

use std::fs;

use aws_lambda_events::event::{dynamodb::Event, eventbridge::EventBridgeEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use integration_tests::{EVENTS, SAMPLE_MP3, TestApp, User, VOICE, download, unique};
use redis::AsyncCommands;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use voice_core::{
    clock::timestamp,
    domain::{
        audio::{AudioType, RecordingSource},
        ids::{RecordingId, UserId},
        session::user_slot,
        tiers::Tier,
        usage::UsagePeriod,
    },
    store::{recordings::Recording, sessions::redis_key},
};

async fn generate(app: &TestApp, user: &User) -> String {
    let response = app.post("/tts", user, Some(&json!({ "voiceId": VOICE, "text": "Keep me" }))).await;
    assert_eq!(response.status, 201, "{}", response.body);
    response.body["recordingId"].as_str().unwrap().to_owned()
}

async fn object_exists(app: &TestApp, key: &str) -> bool {
    app.s3.head_object().bucket(&app.app.config.audio_bucket).key(key).send().await.is_ok()
}

async fn put_object(app: &TestApp, key: &str) {
    let bucket = &app.app.config.audio_bucket;
    app.s3.put_object().bucket(bucket).key(key).body(ByteStream::from_static(SAMPLE_MP3)).send().await.unwrap();
}

#[tokio::test]
async fn nobody_can_see_or_touch_another_users_recording() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let intruder = app.sign_in(Tier::Premium).await;
    let id = generate(&app, &owner).await;
    let path = format!("/recordings/{id}");

    let refused = [
        app.get(&path, &intruder).await,
        app.patch(&path, &intruder, &json!({ "isFavorite": true })).await,
        app.delete(&path, &intruder).await,
    ];
    for response in refused {
        assert_eq!(response.status, 404, "{}", response.body);
        assert_eq!(response.body["error"], json!({ "code": "NOT_FOUND", "message": "recording not found" }));
    }
    let theirs = app.get("/recordings", &intruder).await;
    assert_eq!(theirs.body["items"], json!([]));

    let mine = app.get(&path, &owner).await;
    assert_eq!(mine.status, 200, "untouched");
    assert_eq!(mine.body["isFavorite"], false);
    assert_eq!(app.get("/recordings", &owner).await.body["items"][0]["recordingId"], id.as_str());
}

#[tokio::test]
async fn favourites_keep_their_audio_and_unfavouring_brings_expiry_back() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let id = generate(&app, &user).await;
    let path = format!("/recordings/{id}");

    let favourite = app.patch(&path, &user, &json!({ "isFavorite": true })).await;
    assert_eq!(favourite.status, 200, "{}", favourite.body);
    assert_eq!(favourite.body["isFavorite"], true);
    assert!(favourite.body["expiresAt"].is_null());
    let listed = app.get("/recordings?favouritesOnly=true", &user).await;
    assert_eq!(listed.body["items"][0]["recordingId"], id.as_str());
    let key = format!("{}/{id}.mp3", user.id);
    let tags = app.s3.get_object_tagging().bucket(&app.app.config.audio_bucket).key(&key).send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "kept");

    let back = app.patch(&path, &user, &json!({ "isFavorite": false })).await;
    assert_eq!(back.body["isFavorite"], false);
    assert!(back.body["expiresAt"].as_i64().unwrap() > OffsetDateTime::now_utc().unix_timestamp());
    assert_eq!(app.get("/recordings?favouritesOnly=true", &user).await.body["items"], json!([]));

    let bad = app.patch(&path, &user, &json!({ "isFavorite": "yes" })).await;
    assert!(bad.body["error"]["fields"]["isFavorite"].is_string(), "{}", bad.body);
}

#[tokio::test]
async fn delete_removes_the_audio_and_the_row() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let id = generate(&app, &user).await;
    let key = format!("{}/{id}.mp3", user.id);
    assert!(object_exists(&app, &key).await);

    assert_eq!(app.delete(&format!("/recordings/{id}"), &user).await.status, 200);

    assert!(!object_exists(&app, &key).await);
    assert_eq!(app.get(&format!("/recordings/{id}"), &user).await.status, 404);
    assert_eq!(app.delete(&format!("/recordings/{id}"), &user).await.status, 404);
}

#[tokio::test]
async fn pages_of_twenty_over_forty_five_recordings_have_no_gaps_or_duplicates() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let start = OffsetDateTime::now_utc();
    let mut made = Vec::new();
    for i in 0..45 {
        let at = start + Duration::milliseconds(i);
        let id = RecordingId::generate(at);
        let recording = Recording {
            recording_id: id.clone(),
            user_id: user.id.clone(),
            voice_id: Some(VOICE.into()),
            voice_name: None,
            text: Some(format!("number {i}")),
            preset_used: None,
            audio_config: None,
            content_type: AudioType::Mpeg,
            s3_key: Recording::s3_key_for(&user.id, &id, AudioType::Mpeg),
            is_favorite: false,
            created_at: timestamp(at),
            expires_at: Some(at.unix_timestamp() + 3600),
            source: RecordingSource::Tts,
            upload_bytes: None,
        };
        app.app.recordings.put(&recording).await.unwrap();
        made.push(id.to_string());
    }
    for id in made.iter().step_by(10) {
        app.patch(&format!("/recordings/{id}"), &user, &json!({ "isFavorite": true })).await;
    }

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/recordings?limit=20&cursor={c}"),
            None => "/recordings?limit=20".to_owned(),
        };
        let page = app.get(&path, &user).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(items.iter().map(|i| i["recordingId"].as_str().unwrap().to_owned()));
        match page.body["nextCursor"].as_str() {
            Some(next) if !items.is_empty() => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    // A full last page may still carry a cursor to an empty page; only non-empty pages count.
    sizes.retain(|s| *s > 0);
    assert_eq!(sizes, [20, 20, 5]);
    made.reverse();
    assert_eq!(seen, made, "newest first, each exactly once");

    let favourites = app.get("/recordings?favouritesOnly=true&limit=100", &user).await;
    let ids: Vec<&str> =
        favourites.body["items"].as_array().unwrap().iter().map(|i| i["recordingId"].as_str().unwrap()).collect();
    let expected: Vec<&str> = made.iter().rev().step_by(10).rev().map(String::as_str).collect();
    assert_eq!(ids, expected);

    for bad in ["limit=0", "limit=101", "limit=ten", "cursor=%21%21", "favouritesOnly=maybe"] {
        let response = app.get(&format!("/recordings?{bad}"), &user).await;
        assert_eq!(response.error_code(), "VALIDATION_FAILED", "{bad}");
    }
}

#[tokio::test]
async fn a_presigned_upload_within_limits_works_and_plays_back() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let audio = SAMPLE_MP3;

    let created = app
        .post(
            "/recordings",
            &user,
            Some(&json!({ "contentType": "audio/webm", "sizeBytes": audio.len(), "voiceName": "Me" })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let url = created.body["uploadUrl"].as_str().unwrap();
    let put = reqwest::Client::new()
        .put(url)
        .header("content-type", "audio/webm")
        .header("x-amz-tagging", "retention=temporary")
        .body(audio.to_vec())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let id = created.body["recordingId"].as_str().unwrap();
    let read = app.get(&format!("/recordings/{id}"), &user).await;
    assert_eq!(read.body["source"], "upload");
    assert_eq!(read.body["contentType"], "audio/webm");
    let (status, bytes) = download(read.body["audioUrl"].as_str().unwrap()).await;
    assert_eq!((status, bytes.as_slice()), (200, audio));

    for (body, field) in [
        (json!({ "contentType": "video/mp4", "sizeBytes": 100 }), "contentType"),
        (json!({ "contentType": "audio/webm", "sizeBytes": 10 * 1024 * 1024 + 1 }), "sizeBytes"),
        (json!({ "contentType": "audio/webm", "sizeBytes": 0 }), "sizeBytes"),
    ] {
        let response = app.post("/recordings", &user, Some(&body)).await;
        assert_eq!(response.status, 400, "{body}");
        assert!(response.body["error"]["fields"][field].is_string(), "{}", response.body);
    }
}

/// An events/ file with its placeholder user replaced by `user`.
fn stream_event(name: &str, user: &str) -> Event {
    let text = fs::read_to_string(format!("{EVENTS}/{name}")).unwrap();
    serde_json::from_str(&text.replace("auth0|events-user", user)).unwrap()
}

#[tokio::test]
async fn the_stream_consumer_deletes_exactly_the_ttl_expired_audio() {
    let app = TestApp::spawn().await;
    let user = unique("auth0|stream-");
    let expired = format!("{user}/01JD7Z5Q3V8X2M4N6P8R0T2W4Y.mp3");
    let deleted_by_user = format!("{user}/01JD7Z6A1B2C3D4E5F6G7H8J9K.mp3");
    put_object(&app, &expired).await;
    put_object(&app, &deleted_by_user).await;

    let response =
        ttl_cleanup::handle(app.function("ttl-cleanup"), stream_event("stream-recording-user-delete.json", &user))
            .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(object_exists(&app, &deleted_by_user).await, "a user's own delete is not a TTL removal");

    let response =
        ttl_cleanup::handle(app.function("ttl-cleanup"), stream_event("stream-recording-ttl.json", &user)).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(!object_exists(&app, &expired).await);
    assert!(object_exists(&app, &deleted_by_user).await);

    let response =
        ttl_cleanup::handle(app.function("ttl-cleanup"), stream_event("stream-recording-duplicate.json", &user)).await;
    assert!(response.batch_item_failures.is_empty(), "duplicates are harmless");
}

#[tokio::test]
async fn a_failing_delete_is_reported_as_a_batch_item_failure() {
    let app = TestApp::builder().aws_down().spawn().await;
    let user = unique("auth0|stream-");
    let response =
        ttl_cleanup::handle(app.function("ttl-cleanup"), stream_event("stream-recording-duplicate.json", &user)).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
    assert_eq!(failed, ["4421584500000000017450439091", "4421584500000000017450439091"]);
}

#[tokio::test]
async fn an_expired_session_is_dropped_from_redis() {
    let app = TestApp::spawn().await;
    let event = stream_event("stream-session-ttl.json", "auth0|any");
    let key =
        serde_json::to_value(&event.records[0].change.keys).unwrap()["sessionId"]["S"].as_str().unwrap().to_owned();
    let key = redis_key(&user_slot(&UserId::parse("auth0|any").unwrap()), &key);
    let _: () = app.redis().await.set_ex(&key, "{}", 300).await.unwrap();

    let response = ttl_cleanup::handle(app.function("ttl-cleanup"), event).await;

    assert!(response.batch_item_failures.is_empty());
    let left: Option<String> = app.redis().await.get(&key).await.unwrap();
    assert_eq!(left, None);
}

#[tokio::test]
async fn the_monthly_reset_is_idempotent_and_generations_resume() {
    let app = TestApp::spawn().await;
    let this_month = UsagePeriod::containing(OffsetDateTime::now_utc());
    let stale = app.sign_in(Tier::Free).await;
    let current = app.sign_in(Tier::Free).await;
    let counter = |period: UsagePeriod, used: u32| {
        [
            ("usagePeriod", AttributeValue::S(period.to_string())),
            ("recordingsThisMonth", AttributeValue::N(used.to_string())),
        ]
    };
    app.set_user(&stale.id, &counter(this_month.previous(), 10)).await;
    app.set_user(&current.id, &counter(this_month, 3)).await;
    let schedule: EventBridgeEvent =
        serde_json::from_str(&fs::read_to_string(format!("{EVENTS}/reset-schedule.json")).unwrap()).unwrap();

    // Other tests may run resets too, so the assertions are about these users' rows, not counts.
    reset::handle(app.function("reset"), schedule.clone()).await.unwrap();
    let after_first = (app.counter(&stale).await, app.counter(&current).await);
    reset::handle(app.function("reset"), schedule).await.unwrap();
    let after_second = (app.counter(&stale).await, app.counter(&current).await);

    assert_eq!(after_first.0, (0, Some(this_month.to_string())));
    assert_eq!(after_first.1, (3, Some(this_month.to_string())), "this month's counter is untouched");
    assert_eq!(after_second, after_first, "a second run changes nothing");
    assert_eq!(app.get("/usage", &stale).await.body["used"], 0);
    assert_eq!(app.post("/tts", &stale, Some(&json!({ "voiceId": VOICE, "text": "Back" }))).await.status, 201);
}

#[tokio::test]
async fn a_reset_racing_generations_at_the_boundary_loses_none() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let last_month = UsagePeriod::containing(OffsetDateTime::now_utc()).previous();
    let mut users = Vec::new();
    for _ in 0..20 {
        let user = app.sign_in(Tier::Free).await;
        app.set_user(
            &user.id,
            &[
                ("usagePeriod", AttributeValue::S(last_month.to_string())),
                ("recordingsThisMonth", AttributeValue::N("10".into())),
            ],
        )
        .await;
        users.push(user);
    }
    let schedule: EventBridgeEvent =
        serde_json::from_str(&fs::read_to_string(format!("{EVENTS}/reset-schedule.json")).unwrap()).unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for user in users.clone() {
        let app = app.clone();
        tasks.spawn(
            async move { app.post("/tts", &user, Some(&json!({ "voiceId": VOICE, "text": "Now" }))).await.status },
        );
    }
    let reset = reset::handle(app.function("reset"), schedule).await.unwrap();
    let statuses = tasks.join_all().await;

    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    for user in &users {
        assert_eq!(app.counter(user).await.0, 1, "the generation made at the boundary counts once ({reset:?})");
    }
}

/// The bucket's CORS rule as template.yaml declares it: (methods, headers), lowercase.
fn bucket_cors() -> (Vec<String>, Vec<String>) {
    let template: serde_norway::Value =
        serde_norway::from_str(&fs::read_to_string(integration_tests::TEMPLATE).unwrap()).unwrap();
    let rule = &template["Resources"]["AudioBucket"]["Properties"]["CorsConfiguration"]["CorsRules"][0];
    let list = |name: &str| -> Vec<String> {
        rule[name].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_lowercase()).collect()
    };
    (list("AllowedMethods"), list("AllowedHeaders"))
}

#[tokio::test]
async fn browser_uploads_pass_the_buckets_cors_rule() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let (methods, allowed) = bucket_cors();
    let request = json!({ "contentType": "audio/mpeg", "sizeBytes": 4096 });
    for path in ["/recordings", "/voices/samples"] {
        let upload = app.post(path, &user, Some(&request)).await;
        assert_eq!(upload.status, 201, "{path}: {}", upload.body);
        let method = upload.body["method"].as_str().unwrap().to_lowercase();
        assert!(methods.contains(&method), "{path}: {method} is not an allowed CORS method");
        for header in upload.body["headers"].as_object().unwrap().keys() {
            assert!(
                allowed.contains(&header.to_lowercase()),
                "{path}: the browser sends {header}, CORS does not allow it"
            );
        }
    }
}

async fn retention_tag(app: &TestApp, key: &str) -> String {
    let tags = app.s3.get_object_tagging().bucket(&app.app.config.audio_bucket).key(key).send().await.unwrap();
    tags.tag_set().iter().find(|t| t.key() == "retention").map(|t| t.value().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn a_favourite_whose_retag_fails_is_retagged_by_the_sweep_before_the_lifecycle_rule_can_act() {
    let moto = integration_tests::stack_config().aws.endpoint_url.unwrap();
    let proxy = integration_tests::fault::FaultProxy::start(integration_tests::fault::target_of(&moto)).await;
    let proxied = proxy.in_front_of(&moto);
    let app = TestApp::spawn().await;
    let s3_down_later = TestApp::builder().config(move |c| c.aws.s3_endpoint_url = Some(proxied.clone())).spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let id = generate(&app, &user).await;
    let key = app.app.recordings.get(&user.id, &voice_core::domain::ids::RecordingId::parse(&id).unwrap()).await;
    let key = key.unwrap().unwrap().s3_key;
    assert_eq!(retention_tag(&app, &key).await, "temporary");

    proxy.cut();
    let made = s3_down_later.patch(&format!("/recordings/{id}"), &user, &json!({ "isFavorite": true })).await;
    assert_eq!((made.status, &made.body["isFavorite"]), (200, &json!(true)), "{}", made.body);
    proxy.restore();
    assert_eq!(retention_tag(&app, &key).await, "temporary", "the retag did not get through");

    let schedule: aws_lambda_events::event::eventbridge::EventBridgeEvent = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/sweep-schedule.json", integration_tests::EVENTS)).unwrap(),
    )
    .unwrap();
    let later = TestApp::builder().later(time::Duration::seconds(61)).spawn().await;
    let report = sweep::handle(later.function("sweep"), schedule.clone()).await.unwrap();
    assert!(report.retagged >= 1, "{report:?}");
    assert_eq!(retention_tag(&app, &key).await, "kept", "the favourite's audio is safe from the lifecycle rule");

    // Unfavoured with the retag working: tagged at once, nothing left for the sweep.
    let back = app.patch(&format!("/recordings/{id}"), &user, &json!({ "isFavorite": false })).await;
    assert_eq!(back.status, 200);
    assert_eq!(retention_tag(&app, &key).await, "temporary");
}
