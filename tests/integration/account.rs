//! Erasing an account: everything it owns goes, at Stripe, ElevenLabs, S3, DynamoDB and Redis.

use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{
    SAMPLE_MP3, TestApp, User,
    fault::{FaultProxy, target_of},
    unique,
};
use serde_json::{Value, json};
use time::Duration;
use voice_core::domain::{tiers::Tier, voices::CONSENT_VERSION};

/// Checkout for `tier`, "paid" at the stand-in; the subscription id.
async fn subscribe(app: &TestApp, user: &User, tier: &str) -> String {
    let response = app.post("/billing/checkout", user, Some(&json!({ "tier": tier }))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let session_id = response.body["sessionUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let completed = app.stripe_post(&format!("_test/checkout/{session_id}/complete"), &[]).await;
    completed["subscription"].as_str().unwrap().to_owned()
}

async fn put(url: &Value, bytes: &[u8]) {
    let mut put = reqwest::Client::new().put(url["uploadUrl"].as_str().unwrap());
    for (name, value) in url["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert!(put.body(bytes.to_vec()).send().await.unwrap().status().is_success());
}

async fn rows(app: &TestApp, table: &str, user: &User) -> i32 {
    let output = app
        .dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(user.id.to_string()))
        .send()
        .await
        .unwrap();
    output.count
}

async fn objects(app: &TestApp, user: &User) -> i32 {
    let listed = app.s3.list_objects_v2().bucket(&app.app.config.audio_bucket).prefix(format!("{}/", user.id));
    listed.send().await.unwrap().key_count.unwrap_or(0)
}

/// A PREMIUM subscriber with recordings (generated and uploaded), a cloned voice and a second
/// session; the clone's ElevenLabs id.
async fn a_full_account(app: &TestApp) -> (User, User, String, String) {
    let user = app.sign_in(Tier::Free).await;
    let subscription = subscribe(app, &user, "PREMIUM").await;
    app.set_user(&user.id, &[("subscriptionTier", AttributeValue::S("PREMIUM".into()))]).await;
    for text in ["One.", "Two."] {
        let made = app.post("/tts", &user, Some(&json!({ "voiceId": "21m00Tcm4TlvDq8ikWAM", "text": text }))).await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let upload = app.post("/recordings", &user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": 4096 }))).await;
    put(&upload.body, &[1u8; 4096]).await;
    let sample = app
        .post("/voices/samples", &user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": SAMPLE_MP3.len() })))
        .await;
    put(&sample.body, SAMPLE_MP3).await;
    let body = json!({ "name": unique("mine-"), "sampleIds": [sample.body["sampleId"]], "consent": { "accepted": true, "statement": CONSENT_VERSION } });
    let voice = app.post("/voices", &user, Some(&body)).await;
    assert_eq!(voice.status, 201, "{}", voice.body);
    let voice_id = voice.body["voiceId"].as_str().unwrap();
    let ours = voice_core::domain::ids::Ulid::parse(voice_id).unwrap();
    let elevenlabs = app.app.voices.voice(&user.id, &ours).await.unwrap().unwrap().elevenlabs_voice_id.unwrap();
    // A second session of the same person (another device).
    let profile = voice_core::domain::user::Profile {
        user_id: user.id.clone(),
        email: voice_core::domain::ids::Email::parse(&user.email).unwrap(),
        name: None,
    };
    let other = app.open_session(&profile, &Default::default()).await.unwrap();
    let second = User { token: other.token.clone(), csrf: other.token.csrf_token(), ..user.clone() };
    (user, second, subscription, elevenlabs)
}

#[tokio::test]
async fn erasing_an_account_leaves_nothing_and_a_returning_person_starts_anew() {
    // On the heap: in a debug build this test's future is large.
    Box::pin(erase_a_full_account()).await;
}

async fn erase_a_full_account() {
    let app = TestApp::spawn().await;
    let (user, second, subscription, elevenlabs) = Box::pin(a_full_account(&app)).await;
    let customer = app.user_row(user.id.as_str()).await.unwrap().stripe_customer_id.unwrap();
    assert!(objects(&app, &user).await >= 4);
    let mut keys = Vec::new();
    for name in ["laptop", "server"] {
        let made = app.post("/api-keys", &user, Some(&json!({ "name": name }))).await;
        assert_eq!(made.status, 201, "{}", made.body);
        keys.push(made.body["key"].as_str().unwrap().to_owned());
    }

    let response = app.delete("/user", &user).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["status"], "erased");

    assert_eq!(app.stripe_get(&format!("v1/subscriptions/{subscription}")).await["status"], "canceled");
    let deleted = app.stripe_get(&format!("v1/customers/{customer}")).await;
    assert_eq!(deleted["deleted"], true, "the customer deleted, and its cards with it: {deleted}");
    assert_eq!(
        app.upstream_requests(&format!("delete:{elevenlabs}")).await.len(),
        1,
        "the clone deleted at ElevenLabs"
    );
    assert_eq!(objects(&app, &user).await, 0, "nothing under the user's prefix");
    let tables = &app.app.config.tables;
    for table in [&tables.recordings, &tables.voices, &tables.subscriptions] {
        assert_eq!(rows(&app, table, &user).await, 0, "{table}");
    }
    assert!(app.user_row(user.id.as_str()).await.is_none(), "the user row is gone");
    assert!(app.app.users.was_erased(&user.id).await.unwrap(), "a tombstone remains");
    let consent = app
        .dynamodb
        .query()
        .table_name(&tables.consent_records)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(user.id.to_string()))
        .send()
        .await
        .unwrap();
    for record in consent.items.unwrap_or_default() {
        assert!(record.contains_key("expiresAt"), "consent kept only for its retention: {record:?}");
    }
    for who in [&user, &second] {
        assert_eq!(app.get("/auth/session", who).await.status, 401, "every session ended");
    }
    for key in &keys {
        let auth = format!("Bearer {key}");
        let response = app.request(Method::GET, "/usage", &[("authorization", &auth)], None).await;
        assert_eq!(response.status, 401, "every API key revoked");
    }

    // A late webhook for the old customer changes nothing.
    let subscription_now = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await;
    let payload = json!({ "id": unique("evt_late_"), "object": "event", "type": "customer.subscription.updated",
        "created": time::OffsetDateTime::now_utc().unix_timestamp(), "data": { "object": subscription_now } })
    .to_string();
    let header = voice_core::upstream::stripe::signature::header(
        &app.webhook_secret().await,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        payload.as_bytes(),
    );
    assert_eq!(app.deliver(&payload, Some(&header)).await.status, 200);
    assert!(app.user_row(user.id.as_str()).await.is_none(), "no user resurrected");

    // Signing in again: a new FREE user with nothing.
    let profile = voice_core::domain::user::Profile {
        user_id: user.id.clone(),
        email: voice_core::domain::ids::Email::parse(&user.email).unwrap(),
        name: None,
    };
    let back = app.open_session(&profile, &Default::default()).await.unwrap();
    assert_eq!(back.user.tier, Tier::Free);
    let cookie = format!("sid={}", back.token.expose());
    let listed = app.request(Method::GET, "/recordings", &[("cookie", &cookie)], None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 0, "{}", listed.body);
}

#[tokio::test]
async fn an_erasure_that_fails_midway_reports_deleting_and_the_retry_finishes() {
    let moto = integration_tests::stack_config().aws.endpoint_url.unwrap();
    let proxy = FaultProxy::start(target_of(&moto)).await;
    let proxied = proxy.in_front_of(&moto);
    let app = TestApp::spawn().await;
    let broken_s3 = TestApp::builder().config(move |c| c.aws.s3_endpoint_url = Some(proxied.clone())).spawn().await;
    let user = broken_s3.sign_in(Tier::Basic).await;
    let upload =
        broken_s3.post("/recordings", &user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": 4096 }))).await;
    put(&upload.body, &[2u8; 4096]).await;

    proxy.cut();
    let first = broken_s3.delete("/user", &user).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.body["status"], "deleting");
    assert!(app.user_row(user.id.as_str()).await.unwrap().erasing, "the marker stays for the retry");

    proxy.restore();
    let retry = broken_s3.delete("/user", &user).await;
    assert_eq!((retry.status, &retry.body["status"]), (200, &json!("erased")), "{}", retry.body);
    assert_eq!(objects(&app, &user).await, 0);
    assert_eq!(rows(&app, &app.app.config.tables.recordings, &user).await, 0);
    assert!(app.user_row(user.id.as_str()).await.is_none());
}

#[tokio::test]
async fn erasing_needs_the_idp_to_have_asked_for_the_credentials_not_a_new_session() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    // A new session from a sign-in through the IdP's own session: the credentials were given an
    // hour ago, and nothing was asked now.
    let profile = voice_core::domain::user::Profile {
        user_id: user.id.clone(),
        email: voice_core::domain::ids::Email::parse(&user.email).unwrap(),
        name: None,
    };
    let now = app.app.clock.now();
    let silent = voice_core::flows::signin::open_session(
        &app.app.users,
        &app.app.sessions,
        &profile,
        &Default::default(),
        Some(now.unix_timestamp() - 3600),
        now,
    )
    .await
    .unwrap();
    let silent = User { token: silent.token.clone(), csrf: silent.token.csrf_token(), ..user.clone() };
    let refused = app.delete("/user", &silent).await;
    assert_eq!((refused.status, refused.error_code()), (403, "FORBIDDEN"), "{}", refused.body);

    // The reauthentication it points to: the IdP stand-in asks, the person answers.
    let login = app.start_reauthentication().await;
    let person =
        integration_tests::idp::Person { sub: user.id.as_str(), email: &user.email, name: "Ada", email_verified: true };
    let back =
        integration_tests::idp::sign_in(&login.authorization_url, &app.app.config.idp.callback_url, &person).await;
    let response = app.callback(back.query().unwrap_or(""), Some(&login.state_cookie)).await;
    let cookie = response.cookie_pair("sid").expect("signed in again");
    let token = voice_core::domain::session::SessionToken::parse(cookie.trim_start_matches("sid=")).unwrap();
    let asked = User { csrf: token.csrf_token(), token, ..user.clone() };
    let erased = app.delete("/user", &asked).await;
    assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
}

#[tokio::test]
async fn erasing_needs_a_recent_sign_in() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let later = TestApp::builder().later(Duration::minutes(11)).spawn().await;
    let response = later.delete("/user", &user).await;
    assert_eq!((response.status, response.error_code()), (403, "FORBIDDEN"), "{}", response.body);
    let url = response.body["error"]["reauthenticateUrl"].as_str().unwrap();
    assert!(url.contains("/auth/login?reauthenticate=true"), "{url}");
    assert!(app.user_row(user.id.as_str()).await.is_some(), "nothing was erased");
    // That login asks the IdP for a fresh sign-in.
    let login = app.request(Method::GET, "/auth/login?reauthenticate=true", &[], None).await;
    let to = login.location();
    assert!(to.as_str().contains("prompt=login") && to.as_str().contains("max_age=0"), "{to}");
}

#[tokio::test]
async fn the_profile_edits_are_typed_bounded_and_follow_the_tier() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let prefs = json!({ "defaultVoiceId": "21m00Tcm4TlvDq8ikWAM", "defaultPresetId": "narrator", "outputFormat": "mp3_44100_128" });
    let edited = app.patch("/user/profile", &user, &json!({ "name": "  Ada L.  ", "preferences": prefs })).await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["name"], "Ada L.");
    assert_eq!(edited.body["preferences"], prefs);
    assert_eq!(app.get("/user/profile", &user).await.body["preferences"], prefs);

    let locked =
        app.patch("/user/profile", &user, &json!({ "preferences": { "outputFormat": "mp3_44100_192" } })).await;
    assert_eq!((locked.status, locked.error_code()), (403, "FEATURE_LOCKED"), "{}", locked.body);
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "preferences": { "defaultVoiceId": "a/b" } }), "preferences.defaultVoiceId"),
    ] {
        let refused = app.patch("/user/profile", &user, &body).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        assert!(refused.body["error"]["fields"].get(field).is_some(), "{}", refused.body);
    }
    let refused = app.patch("/user/profile", &user, &json!({ "tier": "PREMIUM" })).await;
    assert_eq!(refused.status, 400, "unknown fields, such as the tier, are refused: {}", refused.body);

    let cleared = app.patch("/user/profile", &user, &json!({ "name": null })).await;
    assert!(cleared.body["name"].is_null(), "{}", cleared.body);
    assert_eq!(cleared.body["tier"], "BASIC");
}

#[tokio::test]
async fn the_export_holds_everything_of_the_user_and_nothing_of_anyone_else() {
    Box::pin(export_everything()).await;
}

async fn export_everything() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Premium).await;
    let other = app.sign_in(Tier::Premium).await;
    let bytes = vec![9u8; 4096];
    let upload = app.post("/recordings", &user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": 4096 }))).await;
    put(&upload.body, &bytes).await;
    let spoken = app.post("/tts", &user, Some(&json!({ "voiceId": "21m00Tcm4TlvDq8ikWAM", "text": "Mine." }))).await;
    assert_eq!(spoken.status, 201, "{}", spoken.body);
    let preset = json!({ "name": "Calm", "stability": 0.7, "similarityBoost": 0.6, "style": 0.1, "speed": 1.0 });
    assert_eq!(app.post("/presets", &user, Some(&preset)).await.status, 201);
    let sample = app
        .post("/voices/samples", &user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": SAMPLE_MP3.len() })))
        .await;
    put(&sample.body, SAMPLE_MP3).await;
    let clone = json!({ "name": unique("mine-"), "sampleIds": [sample.body["sampleId"]], "consent": { "accepted": true, "statement": CONSENT_VERSION } });
    assert_eq!(app.post("/voices", &user, Some(&clone)).await.status, 201);
    let theirs = app.post("/tts", &other, Some(&json!({ "voiceId": "21m00Tcm4TlvDq8ikWAM", "text": "Theirs." }))).await;

    let export = app.get("/user/export", &user).await;
    assert_eq!(export.status, 200, "{}", export.body);
    let doc = &export.body;
    assert_eq!(doc["profile"]["userId"], user.id.as_str());
    assert_eq!(doc["recordings"].as_array().unwrap().len(), 2);
    assert_eq!(doc["voices"].as_array().unwrap().len(), 1);
    assert_eq!(doc["customPresets"][0]["name"], "Calm");
    assert_eq!(doc["consentRecords"].as_array().unwrap().len(), 1);
    assert!(doc["consentRecords"][0]["sampleSha256"].as_array().unwrap().len() == 1);
    assert!(doc["usageHistory"].is_array() && doc["invoices"].is_array() && doc["apiKeys"].is_array());
    let uploaded = doc["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recordingId"] == upload.body["recordingId"])
        .expect("the upload is in the export");
    let (status, downloaded) = integration_tests::download(uploaded["audioUrl"].as_str().unwrap()).await;
    assert_eq!((status, downloaded), (200, bytes), "the audio URL serves the right bytes");

    let text = doc.to_string();
    assert!(!text.contains(other.id.as_str()), "nothing of another user");
    assert!(!text.contains(theirs.body["recordingId"].as_str().unwrap()));
}

#[tokio::test]
async fn a_large_export_is_handed_out_through_s3() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let row = app.user_row(user.id.as_str()).await.unwrap();
    let core = app.function("account");
    let exporter = voice_core::flows::export::Exporter {
        recordings: &core.recordings,
        voices: &core.voices,
        consent: &core.consent,
        audio: core.audio(),
        stripe: core.stripe().await.unwrap(),
        api_keys: &core.api_keys,
        workspaces: &app.app.workspaces,
        inline_limit: 0, // every document counts as large
    };
    let now = time::OffsetDateTime::now_utc();
    let export = serde_json::to_value(exporter.export(&row, now).await.unwrap()).unwrap();
    let (status, bytes) = integration_tests::download(export["exportUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let stored: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(stored["profile"]["userId"], user.id.as_str());
    assert_eq!(export["sizeBytes"], bytes.len());
}

#[tokio::test]
async fn the_sweep_goes_on_past_an_erasure_that_keeps_failing() {
    let app = TestApp::spawn().await;
    // One erasure that can never finish (Stripe refuses its customer), one that can.
    let stuck = app.sign_in(Tier::Free).await;
    app.set_user(&stuck.id, &[("stripeCustomerId", AttributeValue::S("cus_nobody_knows".into()))]).await;
    let erasure = voice_core::assemble::erasure(&app.app).await.unwrap();
    let status = erasure.erase(&stuck.id, app.app.clock.now()).await.unwrap();
    assert_eq!(status, voice_core::flows::erase::ErasureStatus::Deleting);
    let resumable = app.sign_in(Tier::Free).await;
    let long_ago = app.app.clock.now().unix_timestamp() - sweep::ERASURE_GRACE_SECS - 60;
    assert!(app.app.users.mark_erasing(&resumable.id, long_ago).await.unwrap());
    // Both started long enough ago for the sweep to take them over (an erasure that started
    // moments ago is left to its own request: other tests' are).
    app.set_user(&stuck.id, &[("erasureStartedAt", AttributeValue::N(long_ago.to_string()))]).await;

    let schedule: aws_lambda_events::event::eventbridge::EventBridgeEvent = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/sweep-schedule.json", integration_tests::EVENTS)).unwrap(),
    )
    .unwrap();
    let report = sweep::handle(app.function("sweep"), schedule.clone()).await.expect("the sweep itself succeeds");
    assert!(report.unfinished_erasures >= 1, "{report:?}");
    assert!(app.user_row(resumable.id.as_str()).await.is_none(), "the erasure behind the stuck one was finished");
    assert!(app.user_row(stuck.id.as_str()).await.unwrap().erasing, "the stuck one waits for the next sweep");

    // Mended (as support would), the next sweep finishes it.
    let remove = app
        .dynamodb
        .update_item()
        .table_name(&app.app.config.tables.users)
        .key("userId", AttributeValue::S(stuck.id.to_string()))
        .update_expression("REMOVE stripeCustomerId")
        .send()
        .await;
    remove.unwrap();
    sweep::handle(app.function("sweep"), schedule).await.unwrap();
    assert!(app.user_row(stuck.id.as_str()).await.is_none());
}
