//! Every allowance is committed or given back exactly once: N identical deletes, revokes or
//! favourite changes at once move the counter once, and the plan's limit still holds after.

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use integration_tests::{SAMPLE_MP3, TestApp, TestResponse, User, unique};
use serde_json::{Value, json};
use voice_core::{
    domain::{allowance::Allowance, ids::Ulid, tiers::Tier, usage::UsagePeriod, voices::CONSENT_VERSION},
    store::users::allowance,
};

const AT_ONCE: usize = 5;

/// A counter of the user row as stored.
async fn counter(app: &TestApp, user: &User, name: &str) -> u64 {
    let row = app.stored_item(&app.app.config.tables.users, &[("userId", user.id.as_str())]).await.unwrap();
    row.get(name).and_then(|v| v.as_n().ok()).map_or(0, |n| n.parse().unwrap())
}

fn statuses(responses: &[TestResponse]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

/// Exactly one of N identical removals did it; the others found it gone.
fn one_removed(responses: &[TestResponse]) {
    let codes = statuses(responses);
    assert_eq!(codes.iter().filter(|s| **s == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|s| matches!(s, 200 | 404)), "{codes:?}");
}

async fn upload_sample(app: &TestApp, user: &User) -> String {
    let response = app
        .post("/voices/samples", user, Some(&json!({ "contentType": "audio/mpeg", "sizeBytes": SAMPLE_MP3.len() })))
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    put(&response.body, SAMPLE_MP3.to_vec()).await;
    response.body["sampleId"].as_str().unwrap().to_owned()
}

/// PUTs `bytes` to an upload answer's presigned URL with the headers it names.
async fn put(upload: &Value, bytes: Vec<u8>) {
    let mut put = reqwest::Client::new().put(upload["uploadUrl"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert!(put.body(bytes).send().await.unwrap().status().is_success());
}

async fn clone_voice(app: &TestApp, user: &User) -> TestResponse {
    let sample = upload_sample(app, user).await;
    let body = json!({ "name": unique("voice-"), "sampleIds": [sample],
                       "consent": { "accepted": true, "statement": CONSENT_VERSION } });
    app.post("/voices", user, Some(&body)).await
}

#[tokio::test]
async fn concurrent_deletes_of_one_clone_free_its_slot_once_and_the_limit_holds() {
    // An ElevenLabs account of its own: its clones never crowd other tests' shared one.
    let (app, _) = integration_tests::with_own_elevenlabs_account(10, 10).await;
    let user = app.sign_in(Tier::Basic).await;
    let slots = Tier::Basic.rules().clone_slots as usize;
    let mut voices = Vec::new();
    for _ in 0..2 {
        let made = clone_voice(&app, &user).await;
        assert_eq!(made.status, 201, "{}", made.body);
        voices.push(made.body["voiceId"].as_str().unwrap().to_owned());
    }

    let doomed = app.app.voices.voice(&user.id, &Ulid::parse(&voices[0]).unwrap()).await.unwrap().unwrap();
    let path = format!("/voices/{}", voices[0]);
    one_removed(&join_all((0..AT_ONCE).map(|_| app.delete(&path, &user))).await);
    assert_eq!(counter(&app, &user, "voiceClones").await, 1, "the slot came back once");
    let at_elevenlabs = format!("delete:{}", doomed.elevenlabs_voice_id.unwrap());
    assert!(!app.upstream_requests(&at_elevenlabs).await.is_empty(), "the clone was deleted at ElevenLabs");

    for _ in 1..slots {
        let made = clone_voice(&app, &user).await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let over = clone_voice(&app, &user).await;
    assert_eq!((over.status, over.error_code()), (403, "LIMIT_REACHED"), "{}", over.body);
    let listed = app.get("/voices", &user).await.body;
    let clones = listed["voices"].as_array().unwrap().iter().filter(|v| v["category"] == "cloned").count();
    assert_eq!(clones, slots, "the BASIC plan's {slots} clones, not one more");
    assert_eq!(allowance::forgotten(), 0);
}

#[tokio::test]
async fn concurrent_revokes_of_one_key_free_its_place_once_and_the_limit_holds() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let mut ids = Vec::new();
    for name in ["laptop", "server"] {
        let made = app.post("/api-keys", &user, Some(&json!({ "name": name }))).await;
        assert_eq!(made.status, 201, "{}", made.body);
        ids.push(made.body["keyId"].as_str().unwrap().to_owned());
    }

    let path = format!("/api-keys/{}", ids[0]);
    one_removed(&join_all((0..AT_ONCE).map(|_| app.delete(&path, &user))).await);
    assert_eq!(counter(&app, &user, "apiKeys").await, 1, "the place came back once");

    let made = app.post("/api-keys", &user, Some(&json!({ "name": "replacement" }))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let over = app.post("/api-keys", &user, Some(&json!({ "name": "one too many" }))).await;
    assert_eq!((over.status, over.error_code()), (403, "LIMIT_REACHED"), "{}", over.body);
    let live = app.get("/api-keys", &user).await.body["keys"].as_array().unwrap().len();
    assert_eq!(live, Tier::Basic.rules().api_keys as usize);
    assert_eq!(allowance::forgotten(), 0);
}

/// An uploaded recording of `bytes`, its object in place.
async fn uploaded(app: &TestApp, user: &User, bytes: usize) -> String {
    let body = json!({ "contentType": "audio/mpeg", "sizeBytes": bytes });
    let made = app.post("/recordings", user, Some(&body)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    put(&made.body, vec![7; bytes]).await;
    made.body["recordingId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn concurrent_deletes_of_one_favourite_upload_free_its_place_and_bytes_once() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let (doomed, kept) = (uploaded(&app, &user, 3000).await, uploaded(&app, &user, 2000).await);
    for id in [&doomed, &kept] {
        let made = app.patch(&format!("/recordings/{id}"), &user, &json!({ "isFavorite": true })).await;
        assert_eq!(made.status, 200, "{}", made.body);
    }
    assert_eq!((counter(&app, &user, "favourites").await, counter(&app, &user, "storageBytes").await), (2, 5000));

    let path = format!("/recordings/{doomed}");
    one_removed(&join_all((0..AT_ONCE).map(|_| app.delete(&path, &user))).await);
    assert_eq!(counter(&app, &user, "favourites").await, 1, "the favourite place came back once");
    assert_eq!(counter(&app, &user, "storageBytes").await, 2000, "its bytes came back once");
    assert_eq!(app.get(&format!("/recordings/{kept}"), &user).await.status, 200);
    assert_eq!(allowance::forgotten(), 0);
}

#[tokio::test]
async fn concurrent_favourite_toggles_move_the_count_once_each_way_and_the_limit_holds() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let limit = u64::from(Tier::Free.rules().favourites);
    let (toggled, other) = (uploaded(&app, &user, 1000).await, uploaded(&app, &user, 1000).await);
    let path = format!("/recordings/{toggled}");
    // Below the limit by one, with one favourite that must never be given back by mistake.
    assert_eq!(app.patch(&format!("/recordings/{other}"), &user, &json!({ "isFavorite": true })).await.status, 200);
    app.set_user(&user.id, &[("favourites", AttributeValue::N((limit - 1).to_string()))]).await;

    let (yes, no) = (json!({ "isFavorite": true }), json!({ "isFavorite": false }));
    let on = join_all((0..AT_ONCE).map(|_| app.patch(&path, &user, &yes))).await;
    assert!(on.iter().all(|r| r.status == 200 && r.body["isFavorite"] == true), "{:?}", statuses(&on));
    assert_eq!(counter(&app, &user, "favourites").await, limit, "one place taken");

    let off = join_all((0..AT_ONCE).map(|_| app.patch(&path, &user, &no))).await;
    assert!(off.iter().all(|r| r.status == 200 && r.body["isFavorite"] == false), "{:?}", statuses(&off));
    assert_eq!(counter(&app, &user, "favourites").await, limit - 1, "one place freed");

    // The limit holds: the one free place goes to one of two recordings asked for at once.
    let third = uploaded(&app, &user, 1000).await;
    let both = join_all([&toggled, &third].map(|id| {
        let path = format!("/recordings/{id}");
        let (app, user) = (&app, &user);
        async move { app.patch(&path, user, &json!({ "isFavorite": true })).await }
    }))
    .await;
    let mut codes = statuses(&both);
    codes.sort();
    assert_eq!(codes, [200, 403], "{:?}", both.iter().map(|r| &r.body).collect::<Vec<_>>());
    assert_eq!(counter(&app, &user, "favourites").await, limit);
    let favourites = app.get("/recordings?favouritesOnly=true", &user).await.body;
    assert_eq!(favourites["items"].as_array().unwrap().len(), 2, "the other and the one that got the place");
    assert_eq!(allowance::forgotten(), 0);
}

#[tokio::test]
async fn a_reservation_dropped_unsettled_is_caught() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let period = UsagePeriod::containing(app.app.clock.now());
    let before = allowance::forgotten();
    let users = &app.app.users;

    let committed = users.reserve_one(&user.id, Tier::Basic, Allowance::CloneSlots, period).await.unwrap();
    committed.commit();
    let returned = users.reserve_one(&user.id, Tier::Basic, Allowance::CloneSlots, period).await.unwrap();
    returned.give_back().await.unwrap();
    assert_eq!(allowance::forgotten(), before, "settled either way");
    assert_eq!(counter(&app, &user, "voiceClones").await, 1);

    #[allow(unused_must_use, clippy::let_underscore_future)]
    {
        let _ = users.reserve_one(&user.id, Tier::Basic, Allowance::CloneSlots, period).await.unwrap();
    }
    assert_eq!(allowance::forgotten(), before + 1, "a reservation dropped unsettled is counted");
}
