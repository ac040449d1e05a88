//! Voice cloning end to end against the local stack and the ElevenLabs stand-in.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    SAMPLE_MP3, TestApp, TestResponse, User,
    elevenlabs::{AccountLimits, Fault},
    unique,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use voice_core::{
    domain::{ids::Ulid, tiers::Tier, voices::CONSENT_VERSION},
    flows::elevenlabs_accounts,
};

/// Uploads `bytes` as a sample the way a browser does; the sample id.
pub(crate) async fn upload_sample(app: &TestApp, user: &User, bytes: &[u8]) -> String {
    let response = app
        .post("/voices/samples", user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": bytes.len() })))
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let mut put = reqwest::Client::new().put(response.body["uploadUrl"].as_str().unwrap());
    for (name, value) in response.body["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let uploaded = put.body(bytes.to_vec()).send().await.unwrap();
    assert!(uploaded.status().is_success(), "upload: {}", uploaded.status());
    response.body["sampleId"].as_str().unwrap().to_owned()
}

pub(crate) fn clone_body(name: &str, samples: &[String]) -> Value {
    json!({ "name": name, "sampleIds": samples, "consent": { "accepted": true, "statement": CONSENT_VERSION } })
}

/// A second, different sample (the stand-in hashes what it receives).
fn other_bytes() -> Vec<u8> {
    let mut bytes = SAMPLE_MP3.to_vec();
    bytes.extend_from_slice(b"second take");
    bytes
}

async fn standin(app: &TestApp, key: &str) -> Vec<Value> {
    app.upstream_requests(key).await
}

async fn elevenlabs_id(app: &TestApp, user: &User, voice_id: &str) -> String {
    let voice = app.app.voices.voice(&user.id, &Ulid::parse(voice_id).unwrap()).await.unwrap().unwrap();
    voice.elevenlabs_voice_id.unwrap()
}

async fn slots_used(app: &TestApp, user: &User) -> u32 {
    app.app.users.clone_slots_used(&user.id).await.unwrap()
}

async fn consent_records(app: &TestApp, user: &User) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let output = app
        .dynamodb
        .query()
        .table_name(&app.app.config.tables.consent_records)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(user.id.to_string()))
        .send()
        .await
        .unwrap();
    output.items.unwrap_or_default()
}

async fn object_exists(app: &TestApp, key: &str) -> bool {
    app.s3.head_object().bucket(&app.app.config.audio_bucket).key(key).send().await.is_ok()
}

#[tokio::test]
async fn a_clone_is_made_from_the_users_samples_listed_and_spoken_with() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let consent = app.get("/voices/consent", &user).await;
    assert_eq!(consent.body["version"], CONSENT_VERSION);
    let second = other_bytes();
    let samples = vec![upload_sample(&app, &user, SAMPLE_MP3).await, upload_sample(&app, &user, &second).await];
    let name = unique("voice-");

    let response = app.post("/voices", &user, Some(&clone_body(&name, &samples))).await;
    assert_eq!(response.status, 201, "{}", response.body);
    let voice_id = response.body["voiceId"].as_str().unwrap().to_owned();
    assert_eq!(response.body["category"], "cloned");
    assert!(Ulid::parse(&voice_id).is_some(), "our own id, not ElevenLabs'");
    let received = standin(&app, &format!("add:{name}")).await;
    assert_eq!(received.len(), 1);
    let hashes: Vec<&str> =
        received[0]["files"].as_array().unwrap().iter().map(|f| f["sha256"].as_str().unwrap()).collect();
    let expected = [format!("{:x}", Sha256::digest(SAMPLE_MP3)), format!("{:x}", Sha256::digest(&second))];
    assert_eq!(hashes, expected, "both samples' bytes reached ElevenLabs");
    assert_eq!(slots_used(&app, &user).await, 1);
    let records = consent_records(&app, &user).await;
    assert_eq!(records.len(), 1);
    let stored: Vec<&str> =
        records[0]["sampleSha256"].as_l().unwrap().iter().map(|v| v.as_s().unwrap().as_str()).collect();
    assert_eq!(stored, expected);

    let listed = app.get("/voices", &user).await;
    let mine: Vec<&Value> =
        listed.body["voices"].as_array().unwrap().iter().filter(|v| v["category"] == "cloned").collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["voiceId"], voice_id.as_str());
    assert!(!listed.body.to_string().contains(&elevenlabs_id(&app, &user, &voice_id).await));

    let spoken = app.post("/tts", &user, Some(&json!({ "voiceId": voice_id, "text": "In my own voice." }))).await;
    assert_eq!(spoken.status, 201, "{}", spoken.body);
    let at_elevenlabs = standin(&app, &elevenlabs_id(&app, &user, &voice_id).await).await;
    assert_eq!(at_elevenlabs.len(), 1, "the generation used the clone's ElevenLabs id");
    let recording = app.get(&format!("/recordings/{}", spoken.body["recordingId"].as_str().unwrap()), &user).await;
    assert_eq!(recording.body["voiceId"], voice_id.as_str());
    assert_eq!(recording.body["voiceName"], name.as_str());

    assert_eq!(app.delete(&format!("/voices/{voice_id}"), &user).await.status, 200);
}

#[tokio::test]
async fn another_users_clone_is_not_found_and_reaches_no_one() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let other = app.sign_in(Tier::Basic).await;
    let samples = vec![upload_sample(&app, &owner, SAMPLE_MP3).await];
    let created = app.post("/voices", &owner, Some(&clone_body(&unique("voice-"), &samples))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let voice_id = created.body["voiceId"].as_str().unwrap().to_owned();
    let elevenlabs = elevenlabs_id(&app, &owner, &voice_id).await;

    let listed = app.get("/voices", &other).await;
    assert!(!listed.body.to_string().contains(&voice_id));
    let path = format!("/voices/{voice_id}");
    assert_eq!(app.get(&path, &other).await.status, 404);
    assert_eq!(app.patch(&path, &other, &json!({ "name": "mine now" })).await.status, 404);
    assert_eq!(app.delete(&path, &other).await.status, 404);
    for voice in [&voice_id, &elevenlabs] {
        let response: TestResponse = app.post("/tts", &other, Some(&json!({ "voiceId": voice, "text": "Hi" }))).await;
        assert_eq!(response.status, 404, "{voice}: {}", response.body);
        assert_eq!(response.error_code(), "NOT_FOUND");
    }
    assert!(standin(&app, &elevenlabs).await.is_empty(), "ElevenLabs received nothing for it");
    assert_eq!(app.counter(&other).await.0, 0, "no quota spent");

    let renamed = app.patch(&path, &owner, &json!({ "name": "Renamed" })).await;
    assert_eq!((renamed.status, renamed.body["name"].as_str()), (200, Some("Renamed")));
    assert_eq!(app.delete(&path, &owner).await.status, 200);
}

#[tokio::test]
async fn bad_clone_requests_name_the_field_and_use_no_slot() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let stranger = app.sign_in(Tier::Basic).await;
    let mine = upload_sample(&app, &user, SAMPLE_MP3).await;
    let theirs = upload_sample(&app, &stranger, SAMPLE_MP3).await;
    let never =
        app.post("/voices/samples", &user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": 4096 }))).await;
    let never = never.body["sampleId"].as_str().unwrap().to_owned();
    let nine: Vec<String> = (0..9).map(|_| mine.clone()).collect();

    let mut no_consent = clone_body("ok", std::slice::from_ref(&mine));
    no_consent.as_object_mut().unwrap().remove("consent");
    let mut old_consent = clone_body("ok", std::slice::from_ref(&mine));
    old_consent["consent"]["statement"] = "voice-consent-2020-01-01".into();
    let cases = [
        (clone_body("ok", &[mine.clone(), theirs]), "sampleIds[1]"),
        (clone_body("ok", &[never]), "sampleIds[0]"),
        (clone_body("ok", &nine), "sampleIds"),
        (no_consent, "consent"),
        (old_consent, "consent.statement"),
        (clone_body("", std::slice::from_ref(&mine)), "name"),
    ];
    for (body, field) in cases {
        let response = app.post("/voices", &user, Some(&body)).await;
        assert_eq!(response.status, 400, "{field}: {}", response.body);
        assert_eq!(response.error_code(), "VALIDATION_FAILED");
        assert!(response.body["error"]["fields"].get(field).is_some(), "{field}: {}", response.body);
    }
    assert_eq!(slots_used(&app, &user).await, 0);
    assert!(app.app.voices.list(&user.id).await.unwrap().is_empty());
    assert!(consent_records(&app, &user).await.is_empty());
}

#[tokio::test]
async fn slots_are_reserved_once_under_concurrency_and_limited_by_tier() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
    let name = unique("voice-");
    let body = clone_body(&name, std::slice::from_ref(&sample));

    let attempts = (0..10).map(|_| app.post("/voices", &user, Some(&body)));
    let responses = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    for refused in responses.iter().filter(|r| r.status != 201) {
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.error_code(), "LIMIT_REACHED");
        assert_eq!(refused.body["error"]["upgradeUrl"], app.app.config.voice.upgrade_url.as_str());
    }
    assert_eq!(standin(&app, &format!("add:{name}")).await.len(), 1, "ElevenLabs cloned once");
    assert_eq!(slots_used(&app, &user).await, 1);

    let made = responses.iter().find(|r| r.status == 201).unwrap();
    let voice_id = made.body["voiceId"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/voices/{voice_id}"), &user).await.status, 200);
}

#[tokio::test]
async fn a_failed_or_timed_out_clone_gives_the_slot_back_and_leaves_nothing() {
    let app =
        TestApp::builder().config(|c| c.voice.elevenlabs_timeout = std::time::Duration::from_secs(1)).spawn().await;
    for failure in [Fault::Fail, Fault::Hang] {
        let user = app.sign_in(Tier::Basic).await;
        let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
        let name = app.elevenlabs().clone_name_that(failure).await;
        let failure = format!("{failure:?}");
        let response = app.post("/voices", &user, Some(&clone_body(&name, &[sample]))).await;
        assert!(matches!(response.status, 502 | 503), "{failure}: {}", response.body);
        assert_eq!(response.error_code(), "UPSTREAM_UNAVAILABLE");
        assert_eq!(standin(&app, &format!("add:{name}")).await.len(), 1, "{failure}: the add was attempted");
        assert_eq!(slots_used(&app, &user).await, 0, "{failure}");
        assert!(app.app.voices.list(&user.id).await.unwrap().is_empty(), "{failure}");
        assert!(consent_records(&app, &user).await.is_empty(), "{failure}");
    }
}

#[tokio::test]
async fn deleting_a_clone_removes_it_everywhere_but_keeps_the_consent_record() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let samples = vec![upload_sample(&app, &user, SAMPLE_MP3).await, upload_sample(&app, &user, &other_bytes()).await];
    let created = app.post("/voices", &user, Some(&clone_body(&unique("voice-"), &samples))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let voice_id = created.body["voiceId"].as_str().unwrap().to_owned();
    let voice = app.app.voices.voice(&user.id, &Ulid::parse(&voice_id).unwrap()).await.unwrap().unwrap();
    let elevenlabs = voice.elevenlabs_voice_id.clone().unwrap();
    assert!(object_exists(&app, &voice.sample_keys[0]).await);

    let deleted = app.delete(&format!("/voices/{voice_id}"), &user).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(standin(&app, &format!("delete:{elevenlabs}")).await.len(), 1);
    for key in &voice.sample_keys {
        assert!(!object_exists(&app, key).await, "{key} is gone");
    }
    assert_eq!(slots_used(&app, &user).await, 0);
    let records = consent_records(&app, &user).await;
    assert_eq!(records.len(), 1, "the consent record survives the voice");
    assert!(records[0].contains_key("expiresAt"), "its retention clock started");
    assert_eq!(app.delete(&format!("/voices/{voice_id}"), &user).await.status, 404);
}

async fn app_with_own_account(held: u32, configured: u32) -> (TestApp, String) {
    integration_tests::with_own_elevenlabs_account(held, configured).await
}

/// What the stand-in account holds now, and the most it ever held.
async fn account_at_standin(app: &TestApp, account: &str) -> (usize, u64) {
    let url = app.app.config.voice.elevenlabs_base.join(&format!("_test/accounts/{account}/voices")).unwrap();
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    (body["voices"].as_object().unwrap().len(), body["peak"].as_u64().unwrap())
}

fn added(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|add| add["outcome"] == "added").collect()
}

fn file_hashes(add: &Value) -> Vec<String> {
    add["files"].as_array().unwrap().iter().map(|f| f["sha256"].as_str().unwrap().to_owned()).collect()
}

/// Five users' clones on an account with three slots: every generation succeeds, the account
/// never holds more than three, and evicted clones are re-created from the same sample bytes.
async fn five_clones_share_three_slots(configured: u32) -> Vec<Value> {
    let (app, account) = app_with_own_account(3, configured).await;
    let mut clones = Vec::new();
    for i in 0..5 {
        let user = app.sign_in(Tier::Basic).await;
        let mut bytes = SAMPLE_MP3.to_vec();
        bytes.extend_from_slice(format!("take {i}").as_bytes());
        let sample = upload_sample(&app, &user, &bytes).await;
        let name = unique("cached-");
        let created = app.post("/voices", &user, Some(&clone_body(&name, &[sample]))).await;
        assert_eq!(created.status, 201, "create {i}: {}", created.body);
        let voice_id = created.body["voiceId"].as_str().unwrap().to_owned();
        clones.push((user, name, voice_id, format!("{:x}", Sha256::digest(&bytes))));
    }
    let mut generations = 0;
    for round in 0..2 {
        for (user, _, voice_id, _) in &clones {
            let text = format!("Round {round}.");
            let spoken = app.post("/tts", user, Some(&json!({ "voiceId": voice_id, "text": text }))).await;
            assert_eq!(spoken.status, 201, "round {round}: {}", spoken.body);
            generations += 1;
            // The generation reached ElevenLabs with the clone's id as stored right now.
            let now_at = elevenlabs_id(&app, user, voice_id).await;
            assert!(!standin(&app, &now_at).await.is_empty(), "round {round}: spoke with {now_at}");
        }
    }
    assert_eq!(generations, 10);

    let (held, peak) = account_at_standin(&app, &account).await;
    assert!(held <= 3 && peak <= 3, "the account held {held}, at most {peak}");
    let mut log = Vec::new();
    let mut recreations = 0;
    for (_, name, _, expected) in &clones {
        let adds = standin(&app, &format!("add:{name}")).await;
        let made = added(&adds);
        recreations += made.len() - 1;
        for add in &made {
            assert_eq!(
                file_hashes(add),
                std::slice::from_ref(expected),
                "{name}: every add sent the same sample bytes"
            );
        }
        log.extend(adds);
    }
    assert!(recreations >= 2, "{recreations} re-creations");
    for (user, _, voice_id, _) in &clones {
        assert_eq!(app.delete(&format!("/voices/{voice_id}"), user).await.status, 200);
    }
    assert_eq!(account_at_standin(&app, &account).await.0, 0, "deletes reach resident clones");
    log
}

#[tokio::test]
async fn elevenlabs_slots_are_a_least_recently_used_cache_over_kept_samples() {
    let log = five_clones_share_three_slots(3).await;
    let refused = log.iter().filter(|add| add["outcome"] == "voice_limit_reached").count();
    assert_eq!(refused, 0, "knowing the account's size, room is made before adding");
}

#[tokio::test]
async fn voice_limit_reached_evicts_once_and_retries() {
    // We believe the account holds 30; it holds 3: ElevenLabs' refusal drives the evictions.
    let log = five_clones_share_three_slots(30).await;
    let refused = log.iter().filter(|add| add["outcome"] == "voice_limit_reached").count();
    assert!(refused >= 2, "{refused} refusals answered by evicting");
}

#[tokio::test]
async fn a_clone_lost_at_elevenlabs_is_recreated_once_for_concurrent_uses() {
    let (app, account) = app_with_own_account(3, 3).await;
    let user = app.sign_in(Tier::Premium).await;
    let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
    let name = unique("lost-");
    let created = app.post("/voices", &user, Some(&clone_body(&name, &[sample]))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let voice_id = created.body["voiceId"].as_str().unwrap().to_owned();
    let first = elevenlabs_id(&app, &user, &voice_id).await;
    // Deleted at ElevenLabs behind our back (the dashboard, or an eviction racing a generation).
    let gone = reqwest::Client::new()
        .delete(app.app.config.voice.elevenlabs_base.join(&format!("v1/voices/{first}")).unwrap())
        .header("xi-api-key", format!("xi-local-key:{account}"))
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success());

    let bodies: Vec<Value> =
        (0..5).map(|i| json!({ "voiceId": voice_id, "text": format!("Still me, {i}.") })).collect();
    let uses = bodies.iter().map(|body| app.post("/tts", &user, Some(body)));
    let responses = futures_util::future::join_all(uses).await;
    for response in &responses {
        assert_eq!(response.status, 201, "{}", response.body);
    }
    let adds = standin(&app, &format!("add:{name}")).await;
    assert_eq!(added(&adds).len(), 2, "created, then re-created once");
    let second = elevenlabs_id(&app, &user, &voice_id).await;
    assert_ne!(first, second);
    assert_eq!(standin(&app, &second).await.len(), 5, "every generation spoke with the re-created voice");
    assert_eq!(app.delete(&format!("/voices/{voice_id}"), &user).await.status, 200);
}

/// Adds a voice straight to the stand-in account, as a request of ours that ElevenLabs took but
/// whose row was never written would have left it; its ElevenLabs id.
async fn add_at_standin(app: &TestApp, account: &str, labels: Value) -> String {
    let part = reqwest::multipart::Part::bytes(SAMPLE_MP3.to_vec()).file_name("s.mp3").mime_str("audio/mpeg").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("name", unique("left-"))
        .text("labels", labels.to_string())
        .part("files", part);
    let url = app.app.config.voice.elevenlabs_base.join("v1/voices/add").unwrap();
    let response = reqwest::Client::new()
        .post(url)
        .header("xi-api-key", format!("xi-local-key:{account}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["voice_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_nightly_voice_reconciliation_deletes_the_clones_no_row_owns() {
    let (app, account) = app_with_own_account(10, 10).await;
    let user = app.sign_in(Tier::Basic).await;
    let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
    let made = app.post("/voices", &user, Some(&clone_body(&unique("voice-"), &[sample]))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let owned = elevenlabs_id(&app, &user, made.body["voiceId"].as_str().unwrap()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let name = app.app.config.voice.elevenlabs_accounts[0].name.clone();
    let ours = |made: i64| json!({ "voice_app_account": name, "voice_app_made": made.to_string() });
    let left_behind = add_at_standin(&app, &account, ours(now - 7200)).await;
    let just_made = add_at_standin(&app, &account, ours(now)).await;
    let not_ours = add_at_standin(&app, &account, json!({ "accent": "british" })).await;

    let reconciler = voice_core::flows::voice_reconcile::VoiceReconciler {
        voices: &app.app.voices,
        account: app.app.elevenlabs().await.unwrap().primary(),
    };
    let report = reconciler.run(time::OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!((report.ours, report.deleted, report.young), (3, 1, 1), "{report:?}");
    let (held, _) = account_at_standin(&app, &account).await;
    assert_eq!(held, 3, "the owned, the young and the foreign voice stay");
    let url = app.app.config.voice.elevenlabs_base.join(&format!("_test/accounts/{account}/voices")).unwrap();
    let voices: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    for (id, kept) in [(&owned, true), (&left_behind, false), (&just_made, true), (&not_ours, true)] {
        assert_eq!(voices["voices"].get(id).is_some(), kept, "{id}");
    }
    // Run again: nothing more to do.
    let again = reconciler.run(time::OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(again.deleted, 0);
}

#[tokio::test]
async fn one_user_keeps_at_most_a_third_of_the_accounts_slots_resident() {
    // An account of 6 slots: a share of 2 resident clones each.
    let (app, account) = app_with_own_account(6, 6).await;
    let other = app.sign_in(Tier::Basic).await;
    let sample = upload_sample(&app, &other, SAMPLE_MP3).await;
    let theirs = app.post("/voices", &other, Some(&clone_body(&unique("voice-"), &[sample]))).await;
    assert_eq!(theirs.status, 201, "{}", theirs.body);
    let heavy = app.sign_in(Tier::Premium).await;
    for _ in 0..4 {
        let sample = upload_sample(&app, &heavy, SAMPLE_MP3).await;
        let made = app.post("/voices", &heavy, Some(&clone_body(&unique("voice-"), &[sample]))).await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let resident = app.app.voices.resident_of(&account, &heavy.id).await.unwrap();
    assert_eq!(resident.len(), 2, "a third of 6 slots");
    assert_eq!(
        app.app.voices.resident_of(&account, &other.id).await.unwrap().len(),
        1,
        "the other user's clone stays resident"
    );
    let (held, peak) = account_at_standin(&app, &account).await;
    assert!(held <= 3 && peak <= 3, "held {held}, peak {peak}");
}

#[tokio::test]
async fn two_clones_of_the_same_samples_each_keep_their_own() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let made =
            app.post("/voices", &user, Some(&clone_body(&unique("voice-"), std::slice::from_ref(&sample)))).await;
        assert_eq!(made.status, 201, "{}", made.body);
        ids.push(made.body["voiceId"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.delete(&format!("/voices/{}", ids[0]), &user).await.status, 200);

    // The other one is evicted from ElevenLabs, then spoken with: it is re-created from its own
    // copies of the samples, which the first one's deletion did not touch.
    let kept = app.app.voices.voice(&user.id, &Ulid::parse(&ids[1]).unwrap()).await.unwrap().unwrap();
    for key in &kept.sample_keys {
        assert!(object_exists(&app, key).await, "{key} is the second clone's own");
    }
    let at_elevenlabs = kept.elevenlabs_voice_id.clone().unwrap();
    assert!(app.app.voices.evict(&user.id, &kept.voice_id, &at_elevenlabs).await.unwrap());
    elevenlabs_accounts::of(app.app.elevenlabs().await.unwrap(), &kept)
        .client
        .delete_voice(&at_elevenlabs)
        .await
        .unwrap();
    let spoken = app.post("/tts", &user, Some(&json!({ "voiceId": ids[1], "text": "Still mine." }))).await;
    assert_eq!(spoken.status, 201, "{}", spoken.body);
    let rebuilt = elevenlabs_id(&app, &user, &ids[1]).await;
    assert_ne!(rebuilt, at_elevenlabs, "re-created at ElevenLabs");
}

#[tokio::test]
async fn a_re_creation_cut_off_by_its_request_still_gives_its_lease_back() {
    let (app, _) = app_with_own_account(10, 10).await;
    let user = app.sign_in(Tier::Basic).await;
    let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
    let made = app.post("/voices", &user, Some(&clone_body(&unique("voice-"), &[sample]))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let voice_id = made.body["voiceId"].as_str().unwrap().to_owned();
    // Its next re-creation at ElevenLabs hangs; it is not resident now.
    let hangs = app.elevenlabs().clone_name_that(integration_tests::elevenlabs::Fault::Hang).await;
    assert_eq!(app.patch(&format!("/voices/{voice_id}"), &user, &json!({ "name": hangs })).await.status, 200);
    let voice = app.app.voices.voice(&user.id, &Ulid::parse(&voice_id).unwrap()).await.unwrap().unwrap();
    let resident = voice.elevenlabs_voice_id.clone().unwrap();
    assert!(app.app.voices.evict(&user.id, &voice.voice_id, &resident).await.unwrap());

    // A request whose budget ends before ElevenLabs' own timeout gives up on it midway.
    let voice = app.app.config.voice.clone();
    let short = TestApp::builder()
        .config(move |c| c.voice = voice.clone())
        .config(|c| c.voice.elevenlabs_timeout = std::time::Duration::from_secs(4))
        .function_timeout(std::time::Duration::from_millis(4500))
        .spawn()
        .await;
    let spoken = short.post("/tts", &user, Some(&json!({ "voiceId": voice_id, "text": "Cut off." }))).await;
    assert!(spoken.status >= 500, "{}: {}", spoken.status, spoken.body);

    // The re-creation goes on by itself to its end: it fails at ElevenLabs' timeout and gives
    // its lease back, so the next use may try at once.
    let item = format!("voice#{voice_id}");
    let key = [("userId", user.id.as_str()), ("itemId", item.as_str())];
    let released = integration_tests::eventually(std::time::Duration::from_secs(10), || async {
        let row = app.stored_item(&app.app.config.tables.voices, &key).await.unwrap();
        !row.contains_key("rebuildUntil")
    });
    assert!(released.await, "the lease was given back");
    assert_eq!(app.counter(&user).await.0, 0, "the unit was given back");
}

#[tokio::test]
async fn once_a_clone_is_marked_for_deletion_no_re_creation_can_record_a_voice() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
    let made = app.post("/voices", &user, Some(&clone_body(&unique("voice-"), &[sample]))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let voices = &app.app.voices;
    let voice = voices.voice(&user.id, &Ulid::parse(made.body["voiceId"].as_str().unwrap()).unwrap()).await.unwrap();
    let voice = voice.unwrap();
    assert!(voices.evict(&user.id, &voice.voice_id, voice.elevenlabs_voice_id.as_deref().unwrap()).await.unwrap());
    // A re-creation under way holds its lease when the delete marks the row.
    let now_ms = voice_core::clock::unix_ms(time::OffsetDateTime::now_utc());
    let lease = now_ms + 60_000;
    assert!(voices.claim_rebuild(&user.id, &voice.voice_id, now_ms, lease).await.unwrap());
    let marked = voices.mark_deleting(&user.id, &voice.voice_id).await.unwrap().unwrap();
    assert!(marked.deleting && marked.elevenlabs_voice_id.is_none(), "the id as of the mark: none");
    // The re-creation finishes after the mark: it may not record its voice (and so deletes it).
    let recorded =
        voices.make_resident(&voice.account, &user.id, &voice.voice_id, "surplus", lease, now_ms).await.unwrap();
    assert!(!recorded, "no id is recorded after the mark");
    assert!(
        !voices.claim_rebuild(&user.id, &voice.voice_id, now_ms, lease + 1).await.unwrap(),
        "nor a new lease taken"
    );
}

#[tokio::test]
async fn a_clone_is_placed_on_the_account_with_room_and_stays_there() {
    // Two accounts: A holds 2 custom voices, B holds 1.
    let slots = AccountLimits::default();
    let (a, b) =
        (integration_tests::elevenlabs_account(&slots).await, integration_tests::elevenlabs_account(&slots).await);
    let accounts = vec![a.listed(5, 2), b.listed(5, 1)];
    let app = TestApp::builder().config(move |c| c.voice.elevenlabs_accounts = accounts.clone()).spawn().await;
    // Three people, one clone each (one person's share of an account is a third of it, at least one).
    let mut made = Vec::new();
    for _ in 0..3 {
        let user = app.sign_in(Tier::Basic).await;
        let sample = upload_sample(&app, &user, SAMPLE_MP3).await;
        let voice = app.post("/voices", &user, Some(&clone_body(&unique("voice-"), &[sample]))).await;
        assert_eq!(voice.status, 201, "{}", voice.body);
        made.push((user, Ulid::parse(voice.body["voiceId"].as_str().unwrap()).unwrap()));
    }
    let placed = |voice: Option<voice_core::store::voices::Voice>| voice.unwrap().account;
    let mut on = Vec::new();
    for (user, id) in &made {
        on.push(placed(app.app.voices.voice(&user.id, id).await.unwrap()));
    }
    // A has the most room (2 of 2, then 1 of 2 against B's 1 of 1, the larger account first),
    // then B is the only one with room.
    assert_eq!(on, [a.name.clone(), a.name.clone(), b.name.clone()]);
    assert_eq!(account_at_standin(&app, &a.name).await.0, 2);
    assert_eq!(account_at_standin(&app, &b.name).await.0, 1);

    // Evicted from B, it is re-created on B when spoken with, and spoken there.
    let (user, id) = &made[2];
    let voice = app.app.voices.voice(&user.id, id).await.unwrap().unwrap();
    let gone = voice.elevenlabs_voice_id.clone().unwrap();
    assert!(app.app.voices.evict(&user.id, id, &gone).await.unwrap());
    elevenlabs_accounts::of(app.app.elevenlabs().await.unwrap(), &voice).client.delete_voice(&gone).await.unwrap();
    assert_eq!(account_at_standin(&app, &b.name).await.0, 0);
    let spoken = app.post("/tts", user, Some(&json!({ "voiceId": id.to_string(), "text": "Still on B." }))).await;
    assert_eq!(spoken.status, 201, "{}", spoken.body);
    let again = app.app.voices.voice(&user.id, id).await.unwrap().unwrap();
    assert_eq!(again.account, b.name);
    assert_ne!(again.elevenlabs_voice_id.unwrap(), gone, "re-created");
    assert_eq!(account_at_standin(&app, &b.name).await.0, 1, "on B again");
    assert_eq!(account_at_standin(&app, &a.name).await.0, 2, "A untouched");
    assert_eq!(app.elevenlabs().account_speech(&b.name).await.served, 1, "spoken at B");
    assert_eq!(app.elevenlabs().account_speech(&a.name).await.served, 0);

    // Deleted, it leaves B; an erased person's clone leaves A.
    assert_eq!(app.delete(&format!("/voices/{id}"), user).await.status, 200);
    assert_eq!(account_at_standin(&app, &b.name).await.0, 0);
    let (first, _) = &made[0];
    let erased = app.delete("/user", first).await;
    assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
    assert_eq!(account_at_standin(&app, &a.name).await.0, 1);
}
