//! A workspace's shared voice library: made from a member's own samples with their consent, used
//! by every member who may generate, its slots the workspace's, and gone with its uploader's
//! erasure or the workspace.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{SAMPLE_MP3, TestApp, User, unique};
use serde_json::{Value, json};
use voice_core::domain::{
    ids::{Ulid, UserId},
    tiers::Tier,
};

use crate::{
    voices::{clone_body, upload_sample},
    workspaces::{join, new_workspace},
};

/// A voice of `by`'s samples put in `workspace`'s library; its id.
async fn share_voice(app: &TestApp, by: &User, workspace: &str) -> String {
    let samples = vec![upload_sample(app, by, SAMPLE_MP3).await];
    let made =
        app.post(&format!("/workspaces/{workspace}/voices"), by, Some(&clone_body(&unique("shared-"), &samples))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["voiceId"].as_str().unwrap().to_owned()
}

fn speak(voice: &str, workspace: Option<&str>) -> Value {
    json!({ "voiceId": voice, "text": "Shared words.", "workspaceId": workspace })
}

async fn library_voices(app: &TestApp, workspace: &str) -> u32 {
    app.app.workspaces.get(&Ulid::parse(workspace).unwrap()).await.unwrap().unwrap().library_voices
}

async fn object_exists(app: &TestApp, key: &str) -> bool {
    app.s3.head_object().bucket(&app.app.config.audio_bucket).key(key).send().await.is_ok()
}

async fn stored(app: &TestApp, workspace: &str, voice: &str) -> Option<voice_core::store::voices::Voice> {
    let owner = UserId::library_of(&Ulid::parse(workspace).unwrap());
    app.app.voices.voice(&owner, &Ulid::parse(voice).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_member_speaks_with_the_voice_an_owner_shared_and_roles_decide_who_may_do_what() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let (member, viewer, outsider) =
        (app.sign_in(Tier::Free).await, app.sign_in(Tier::Free).await, app.sign_in(Tier::Premium).await);
    let workspace = new_workspace(&app, &owner, "Studio").await;
    join(&app, &owner, &workspace, &member, "MEMBER").await;
    join(&app, &owner, &workspace, &viewer, "VIEWER").await;

    let voice = share_voice(&app, &owner, &workspace).await;
    let row = stored(&app, &workspace, &voice).await.expect("the voice is the workspace's");
    assert_eq!(row.uploaded_by.as_ref(), Some(&owner.id));
    assert!(row.sample_keys.iter().all(|k| k.starts_with(&format!("workspace:{workspace}/"))), "{:?}", row.sample_keys);
    assert!(app.app.voices.voice(&owner.id, &row.voice_id).await.unwrap().is_none(), "not the owner's own");
    assert_eq!(app.app.users.clone_slots_used(&owner.id).await.unwrap(), 0, "no slot of the owner's plan");
    assert_eq!(library_voices(&app, &workspace).await, 1);
    let consent = app
        .dynamodb
        .query()
        .table_name(&app.app.config.tables.consent_records)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(owner.id.to_string()))
        .send()
        .await
        .unwrap();
    let records = consent.items.unwrap_or_default();
    assert_eq!(records.len(), 1, "the consent is the uploader's");
    assert_eq!(records[0]["workspaceId"].as_s().unwrap(), &workspace);

    let listed = app.get(&format!("/workspaces/{workspace}/voices"), &viewer).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["voices"][0]["voiceId"], voice.as_str());
    assert_eq!(listed.body["slots"], 1, "one voice without TEAM");

    let spoken = app.post("/tts", &member, Some(&speak(&voice, Some(&workspace)))).await;
    assert_eq!(spoken.status, 201, "{}", spoken.body);
    let mut streamed = app
        .stream("/tts/stream", &member, &json!({ "voiceId": voice, "text": "Streamed.", "workspaceId": workspace }))
        .await;
    assert_eq!(streamed.status, 200);
    while streamed.next_chunk().await.expect("the stream ends cleanly").is_some() {}
    let recording = app.get(&format!("/recordings/{}", spoken.body["recordingId"].as_str().unwrap()), &member).await;
    assert_eq!(recording.status, 200, "the recording is the member's own: {}", recording.body);
    assert_eq!(app.get("/usage", &member).await.body["used"], 2, "counted on the member's own plan");

    // Outside the workspace's context the voice is nobody's to use.
    assert_eq!(app.post("/tts", &member, Some(&speak(&voice, None))).await.status, 404);
    let stranger = app.post("/tts", &outsider, Some(&speak(&voice, Some(&workspace)))).await;
    assert_eq!(stranger.status, 404, "a workspace of others is not found: {}", stranger.body);
    let looking = app.get(&format!("/workspaces/{workspace}/voices"), &outsider).await;
    assert_eq!(looking.status, 404);
    // A VIEWER reads the library and speaks with none of it.
    let viewing = app.post("/tts", &viewer, Some(&speak(&voice, Some(&workspace)))).await;
    assert_eq!(viewing.status, 403, "{}", viewing.body);
    assert!(viewing.body.to_string().contains("generate"), "{}", viewing.body);
    // Only who may manage voices adds or deletes them.
    let samples = vec![upload_sample(&app, &member, SAMPLE_MP3).await];
    let adding =
        app.post(&format!("/workspaces/{workspace}/voices"), &member, Some(&clone_body("Mine", &samples))).await;
    assert_eq!(adding.status, 403, "{}", adding.body);
    assert_eq!(app.delete(&format!("/workspaces/{workspace}/voices/{voice}"), &member).await.status, 403);
    // The library is full at its one slot.
    let samples = vec![upload_sample(&app, &owner, SAMPLE_MP3).await];
    let full = app.post(&format!("/workspaces/{workspace}/voices"), &owner, Some(&clone_body("Two", &samples))).await;
    assert_eq!(full.body["error"]["code"], "LIMIT_REACHED", "{}", full.body);
    assert_eq!(library_voices(&app, &workspace).await, 1, "a refused clone takes no slot");
    // Another workspace's library never holds it.
    let theirs = new_workspace(&app, &outsider, "Elsewhere").await;
    assert_eq!(app.delete(&format!("/workspaces/{theirs}/voices/{voice}"), &outsider).await.status, 404);
    let guessed = app.post("/tts", &outsider, Some(&speak(&voice, Some(&theirs)))).await;
    assert_eq!(guessed.status, 404, "{}", guessed.body);

    // Membership changes apply from the next request.
    let promoted = app
        .patch(&format!("/workspaces/{workspace}/members/{}", viewer.id), &owner, &json!({ "role": "MEMBER" }))
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(app.post("/tts", &viewer, Some(&speak(&voice, Some(&workspace)))).await.status, 201);
    let removed = app.delete(&format!("/workspaces/{workspace}/members/{}", member.id), &owner).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(app.post("/tts", &member, Some(&speak(&voice, Some(&workspace)))).await.status, 404);
    assert_eq!(
        app.get(&format!("/recordings/{}", spoken.body["recordingId"].as_str().unwrap()), &member).await.status,
        200,
        "their own data stays"
    );
}

#[tokio::test]
async fn concurrent_deletes_of_a_shared_voice_free_its_slot_once() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Studio").await;
    let voice = share_voice(&app, &owner, &workspace).await;
    let row = stored(&app, &workspace, &voice).await.unwrap();

    let path = format!("/workspaces/{workspace}/voices/{voice}");
    let deletes = (0..6).map(|_| app.delete(&path, &owner));
    let statuses: Vec<u16> = futures_util::future::join_all(deletes).await.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 404), "{statuses:?}");
    assert_eq!(library_voices(&app, &workspace).await, 0);
    for key in &row.sample_keys {
        assert!(!object_exists(&app, key).await, "{key} is gone");
    }
    let elevenlabs = row.elevenlabs_voice_id.unwrap();
    assert!(!app.upstream_requests(&format!("delete:{elevenlabs}")).await.is_empty(), "deleted at ElevenLabs");
    let period = voice_core::domain::usage::UsagePeriod::containing(time::OffsetDateTime::now_utc());
    let (entries, _) = app.app.audit.list(period, 500, None).await.unwrap();
    let ours: Vec<_> = entries
        .iter()
        .filter(|e| e.detail["voiceId"] == voice.as_str() && e.actor_id == owner.id.as_str())
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(ours.len(), 2, "made once, deleted once: {ours:?}");
    assert!(ours.contains(&"workspace-voice-create") && ours.contains(&"workspace-voice-delete"), "{ours:?}");
    // The slot is free again.
    share_voice(&app, &owner, &workspace).await;
}

#[tokio::test]
async fn an_uploaders_erasure_takes_their_shared_voice_and_leaves_the_workspace() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let uploader = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Studio").await;
    join(&app, &owner, &workspace, &uploader, "ADMIN").await;
    let voice = share_voice(&app, &uploader, &workspace).await;
    let row = stored(&app, &workspace, &voice).await.unwrap();
    assert_eq!(app.post("/tts", &owner, Some(&speak(&voice, Some(&workspace)))).await.status, 201);

    let erased = app.delete("/user", &uploader).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert!(stored(&app, &workspace, &voice).await.is_none(), "a clone of their voice goes with them");
    let elevenlabs = row.elevenlabs_voice_id.unwrap();
    assert_eq!(app.upstream_requests(&format!("delete:{elevenlabs}")).await.len(), 1);
    for key in &row.sample_keys {
        assert!(!object_exists(&app, key).await, "{key} is gone");
    }
    assert_eq!(library_voices(&app, &workspace).await, 0, "its slot is the workspace's again");
    assert_eq!(app.post("/tts", &owner, Some(&speak(&voice, Some(&workspace)))).await.status, 404);
    assert_eq!(app.get(&format!("/workspaces/{workspace}"), &owner).await.status, 200, "the workspace stays");
}

#[tokio::test]
async fn deleting_a_workspace_deletes_its_shared_voices_everywhere() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Studio").await;
    let voice = share_voice(&app, &owner, &workspace).await;
    let row = stored(&app, &workspace, &voice).await.unwrap();

    let deleted = app.delete(&format!("/workspaces/{workspace}"), &owner).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(stored(&app, &workspace, &voice).await.is_none());
    let elevenlabs = row.elevenlabs_voice_id.unwrap();
    assert_eq!(app.upstream_requests(&format!("delete:{elevenlabs}")).await.len(), 1);
    for key in &row.sample_keys {
        assert!(!object_exists(&app, key).await, "{key} is gone");
    }
}

#[tokio::test]
async fn a_voice_shared_while_its_workspace_is_deleted_is_not_left_behind() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Studio").await;
    // The clone takes 1.5 s at ElevenLabs: the workspace is deleted meanwhile.
    let name = app.elevenlabs().clone_name_that(integration_tests::elevenlabs::Fault::Slow).await;
    let samples = vec![upload_sample(&app, &owner, SAMPLE_MP3).await];
    let body = clone_body(&name, &samples);
    let path = format!("/workspaces/{workspace}/voices");
    let sharing = app.post(&path, &owner, Some(&body));
    let deleting = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        app.delete(&format!("/workspaces/{workspace}"), &owner).await
    };
    let (shared, deleted) = tokio::join!(sharing, deleting);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!((shared.status, shared.error_code()), (404, "NOT_FOUND"), "{}", shared.body);

    // Nothing of the clone is left: no row, no clone at ElevenLabs, no sample copy.
    let owner_id = UserId::library_of(&Ulid::parse(&workspace).unwrap());
    assert_eq!(app.app.voices.all_voices(&owner_id).await.unwrap().len(), 0, "no voice row of the deleted workspace");
    let added = app.upstream_requests(&format!("add:{name}")).await;
    assert_eq!(added.len(), 1, "{added:?}");
    let listed = app.s3.list_objects_v2().bucket(&app.app.config.audio_bucket).prefix(format!("{owner_id}/"));
    assert_eq!(listed.send().await.unwrap().key_count(), Some(0), "no sample copy under the workspace's prefix");
    let clones = app.app.elevenlabs().await.unwrap().primary().client.cloned_voices().await.unwrap();
    assert!(clones.iter().all(|v| v.name != name), "the clone is gone at ElevenLabs: {clones:?}");
}
