//! A workspace's API keys: made by who may manage keys, speaking in that workspace only as their
//! maker (whose role there is read on every request), held by the workspace's slots, and gone
//! when their maker leaves, is removed or is erased.

use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{TestApp, TestResponse, User, VOICE};
use serde_json::{Value, json};
use voice_core::domain::{ids::Ulid, tiers::Tier};

use crate::workspaces::{join, new_workspace};

async fn make_key(app: &TestApp, by: &User, workspace: &str, name: &str) -> TestResponse {
    app.post(&format!("/workspaces/{workspace}/api-keys"), by, Some(&json!({ "name": name }))).await
}

async fn with_key(app: &TestApp, key: &str, method: Method, path: &str, body: Option<&Value>) -> u16 {
    let auth = format!("Bearer {key}");
    app.request(method, path, &[("authorization", &auth)], body).await.status
}

async fn speak(app: &TestApp, key: &str, workspace: Option<&str>) -> u16 {
    let body = json!({ "voiceId": VOICE, "text": format!("Keyed {}.", integration_tests::unique("")), "workspaceId": workspace });
    with_key(app, key, Method::POST, "/tts", Some(&body)).await
}

async fn keys_held(app: &TestApp, workspace: &str) -> u32 {
    app.app.workspaces.get(&Ulid::parse(workspace).unwrap()).await.unwrap().unwrap().api_keys
}

#[tokio::test]
async fn a_workspace_key_speaks_only_in_its_workspace_as_its_maker_and_goes_with_them() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let (admin, member) = (app.sign_in(Tier::Free).await, app.sign_in(Tier::Free).await);
    let workspace = new_workspace(&app, &owner, "Keys").await;
    join(&app, &owner, &workspace, &admin, "ADMIN").await;
    join(&app, &owner, &workspace, &member, "MEMBER").await;

    let refused = make_key(&app, &member, &workspace, "mine").await;
    assert_eq!(refused.status, 403, "a MEMBER may not manage keys: {}", refused.body);
    // A FREE plan holds no keys of its own; the workspace's key is the workspace's.
    let made = make_key(&app, &admin, &workspace, "CI").await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["workspaceId"], workspace.as_str());
    let key = made.body["key"].as_str().unwrap().to_owned();
    assert_eq!(keys_held(&app, &workspace).await, 1);
    assert_eq!(app.get("/api-keys", &admin).await.body["keys"], json!([]), "none of the maker's own keys");
    let listed = app.get(&format!("/workspaces/{workspace}/api-keys"), &owner).await;
    assert_eq!(listed.body["keys"][0]["madeBy"], admin.id.as_str(), "{}", listed.body);
    assert!(!listed.body.to_string().contains(&key), "the key itself is never listed");

    assert_eq!(speak(&app, &key, None).await, 201, "it speaks in its workspace");
    assert_eq!(speak(&app, &key, Some(&workspace)).await, 201);
    let elsewhere = new_workspace(&app, &admin, "Admin's own").await;
    assert_eq!(speak(&app, &key, Some(&elsewhere)).await, 403, "in no other workspace");
    for path in ["/usage", "/recordings", "/voices"] {
        assert_eq!(with_key(&app, &key, Method::GET, path, None).await, 403, "{path}: none of the maker's data");
    }
    assert_eq!(app.get("/usage", &admin).await.body["used"], 2, "without TEAM, the maker's own plan counts them");

    // The maker's role there is read on every request.
    let role = |to: &str| json!({ "role": to });
    let path = format!("/workspaces/{workspace}/members/{}", admin.id);
    assert_eq!(app.patch(&path, &owner, &role("VIEWER")).await.status, 200);
    assert_eq!(speak(&app, &key, None).await, 403, "a VIEWER does not generate");
    assert_eq!(app.patch(&path, &owner, &role("ADMIN")).await.status, 200);
    assert_eq!(speak(&app, &key, None).await, 201);

    // Removed: their keys are revoked at once, their own data stays.
    assert_eq!(app.delete(&path, &owner).await.status, 200);
    assert_eq!(speak(&app, &key, None).await, 401, "the key is gone");
    assert_eq!(app.get(&format!("/workspaces/{workspace}/api-keys"), &owner).await.body["keys"], json!([]));
    assert_eq!(keys_held(&app, &workspace).await, 0, "its slot is the workspace's again");
    assert_eq!(
        app.get("/recordings", &admin).await.body["items"].as_array().unwrap().len(),
        3,
        "the key's recordings are its maker's"
    );
}

#[tokio::test]
async fn workspace_keys_are_bounded_and_revoked_once_by_concurrent_revokes() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Keys").await;
    let first = make_key(&app, &owner, &workspace, "one").await;
    let second = make_key(&app, &owner, &workspace, "two").await;
    assert_eq!((first.status, second.status), (201, 201));
    let third = make_key(&app, &owner, &workspace, "three").await;
    assert_eq!(third.error_code(), "LIMIT_REACHED", "2 keys without TEAM: {}", third.body);
    assert_eq!(keys_held(&app, &workspace).await, 2);

    let (key, id) = (first.body["key"].as_str().unwrap(), first.body["keyId"].as_str().unwrap());
    let path = format!("/workspaces/{workspace}/api-keys/{id}");
    let revokes = (0..5).map(|_| app.delete(&path, &owner));
    let statuses: Vec<u16> = futures_util::future::join_all(revokes).await.iter().map(|r| r.status).collect();
    assert!(statuses.contains(&200) && statuses.iter().all(|s| *s == 200 || *s == 404), "{statuses:?}");
    assert_eq!(keys_held(&app, &workspace).await, 1, "one slot given back: {statuses:?}");
    assert_eq!(speak(&app, key, None).await, 401);
    assert_eq!(speak(&app, second.body["key"].as_str().unwrap(), None).await, 201, "the other key still works");
    assert_eq!(app.delete(&path, &owner).await.status, 404);
}

#[tokio::test]
async fn a_makers_erasure_takes_their_workspace_keys() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let admin = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Keys").await;
    join(&app, &owner, &workspace, &admin, "ADMIN").await;
    let made = make_key(&app, &admin, &workspace, "theirs").await;
    let key = made.body["key"].as_str().unwrap().to_owned();

    assert_eq!(app.delete("/user", &admin).await.status, 200);
    assert_eq!(speak(&app, &key, None).await, 401);
    assert_eq!(app.get(&format!("/workspaces/{workspace}/api-keys"), &owner).await.body["keys"], json!([]));
    assert_eq!(keys_held(&app, &workspace).await, 0);
}

#[tokio::test]
async fn a_revoke_cut_between_the_key_and_its_listing_is_finished_by_the_next_one() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let workspace = new_workspace(&app, &owner, "Keys").await;
    let made = make_key(&app, &owner, &workspace, "cut").await;
    let (key, id) = (made.body["key"].as_str().unwrap(), made.body["keyId"].as_str().unwrap());

    // Revoking deletes the key's own row first: the process dies after it.
    let listing = app.dynamodb.get_item().table_name(&app.app.config.tables.workspaces);
    let listing = listing
        .key("workspaceId", AttributeValue::S(workspace.clone()))
        .key("item", AttributeValue::S(format!("key#{id}")));
    let listing = listing.send().await.unwrap().item.expect("the workspace lists the key");
    let hash = listing["keyHash"].clone();
    let key_row = app.dynamodb.delete_item().table_name(&app.app.config.tables.api_keys);
    key_row.key("keyHash", hash).send().await.unwrap();
    assert_eq!(speak(&app, key, None).await, 401, "it authenticates nothing from the first write on");
    let listed = app.get(&format!("/workspaces/{workspace}/api-keys"), &owner).await;
    assert_eq!(listed.body["keys"][0]["keyId"], id, "still listed, so it can be revoked again: {}", listed.body);
    assert_eq!(keys_held(&app, &workspace).await, 1);

    let path = format!("/workspaces/{workspace}/api-keys/{id}");
    assert_eq!(app.delete(&path, &owner).await.status, 200, "the next revoke finishes it");
    assert_eq!(app.get(&format!("/workspaces/{workspace}/api-keys"), &owner).await.body["keys"], json!([]));
    assert_eq!(keys_held(&app, &workspace).await, 0, "its slot given back, once");
    assert_eq!(app.delete(&path, &owner).await.status, 404);
    assert_eq!(keys_held(&app, &workspace).await, 0);
}
