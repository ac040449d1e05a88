//! Workspaces: roles as permissions, invitations by email (single-use, hashed at rest, bound to
//! the invited address), membership changes on the next request, and isolation between
//! workspaces.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{TestApp, TestResponse, User};
use serde_json::{Value, json};
use voice_core::domain::tiers::Tier;

use crate::voices::clone_body;

pub(crate) async fn new_workspace(app: &TestApp, owner: &User, name: &str) -> String {
    let made = app.post("/workspaces", owner, Some(&json!({ "name": name }))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["workspaceId"].as_str().unwrap().to_owned()
}

pub(crate) async fn invite(app: &TestApp, by: &User, workspace: &str, email: &str, role: &str) -> TestResponse {
    app.post(&format!("/workspaces/{workspace}/invitations"), by, Some(&json!({ "email": email, "role": role }))).await
}

/// The token of the last invitation emailed to `email`.
pub(crate) async fn emailed_token(app: &TestApp, email: &str) -> String {
    emailed_tokens(app, &[email]).await.remove(0)
}

/// The token of the last invitation emailed to each of `emails`, from one read of the sent mail.
pub(crate) async fn emailed_tokens(app: &TestApp, emails: &[&str]) -> Vec<String> {
    let template = app.app.config.billing.email.as_ref().unwrap().workspace_invitation_template.clone();
    let sent = app.emails().await;
    let token = |to: &str| {
        let last = sent
            .iter()
            .filter(|e| e["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|a| a == to)))
            .rfind(|e| e["template"] == template.as_str())
            .unwrap_or_else(|| panic!("an invitation email to {to}"));
        let data: Value = serde_json::from_str(last["template_data"].as_str().unwrap()).unwrap();
        let link = data["acceptUrl"].as_str().unwrap();
        link.split_once("#invitation=").expect("the token in the link's fragment").1.to_owned()
    };
    emails.iter().map(|to| token(to)).collect()
}

pub(crate) async fn accept(app: &TestApp, who: &User, token: &str) -> TestResponse {
    app.post("/invitations/accept", who, Some(&json!({ "token": token }))).await
}

/// The sort keys of every row workspace `id` has in its table.
async fn rows_of(app: &TestApp, id: &str) -> Vec<String> {
    let query = app.dynamodb.query().table_name(&app.app.config.tables.workspaces);
    let query = query.key_condition_expression("workspaceId = :id");
    let rows = query.expression_attribute_values(":id", AttributeValue::S(id.to_owned())).send().await.unwrap();
    rows.items().iter().map(|r| r["item"].as_s().unwrap().clone()).collect()
}

/// `who` invited by `by` as `role`, and joined.
pub(crate) async fn join(app: &TestApp, by: &User, workspace: &str, who: &User, role: &str) {
    let invited = invite(app, by, workspace, &who.email, role).await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let joined = accept(app, who, &emailed_token(app, &who.email).await).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
}

#[tokio::test]
async fn a_person_makes_a_workspace_invites_by_email_and_the_invitee_joins_once() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let made = app.post("/workspaces", &owner, Some(&json!({ "name": "  Studio  " }))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        (&made.body["name"], &made.body["role"], &made.body["members"]),
        (&json!("Studio"), &json!("OWNER"), &json!(1))
    );
    assert!(made.body["permissions"].as_array().unwrap().contains(&json!("delete")), "{}", made.body);
    let id = made.body["workspaceId"].as_str().unwrap().to_owned();

    let invitee = app.sign_in(Tier::Free).await;
    let invited = invite(&app, &owner, &id, &invitee.email.to_uppercase(), "MEMBER").await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    assert_eq!((&invited.body["status"], &invited.body["role"]), (&json!("pending"), &json!("MEMBER")));
    assert_eq!(invited.body["email"], invitee.email.as_str(), "kept in lower case");
    let week = invited.body["expiresAt"].as_i64().unwrap() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((7 * 86_400 - 60..=7 * 86_400).contains(&week), "valid seven days: {week}");
    assert!(invited.body.get("token").is_none() && invited.body.get("tokenHash").is_none(), "{}", invited.body);
    let token = emailed_token(&app, &invitee.email).await;
    let at_rest = app.dynamodb.scan().table_name(&app.app.config.tables.workspaces).send().await.unwrap();
    assert!(!format!("{:?}", at_rest.items).contains(&token), "only the token's hash is stored");

    let stranger = app.sign_in(Tier::Free).await;
    let wrong = accept(&app, &stranger, &token).await;
    assert_eq!((wrong.status, wrong.error_code()), (403, "FORBIDDEN"), "bound to the invited address: {}", wrong.body);
    let joined = accept(&app, &invitee, &token).await;
    assert_eq!((joined.status, &joined.body["role"]), (200, &json!("MEMBER")), "{}", joined.body);
    let again = accept(&app, &invitee, &token).await;
    assert_eq!((again.status, again.error_code()), (409, "CONFLICT"), "single use: {}", again.body);
    assert!(again.body["error"]["message"].as_str().unwrap().contains("accepted already"), "{}", again.body);

    let members = app.get(&format!("/workspaces/{id}/members"), &invitee).await;
    assert_eq!(members.body["members"].as_array().unwrap().len(), 2, "{}", members.body);
    let mine = app.get("/workspaces", &invitee).await;
    assert_eq!(mine.body["workspaces"][0]["workspaceId"], id.as_str(), "{}", mine.body);
    assert_eq!(app.get(&format!("/workspaces/{id}"), &invitee).await.body["members"], 2);
    // Personal use is as before: the workspace is not the person's account.
    assert_eq!(app.get("/auth/session", &invitee).await.body["tier"], "FREE");
}

#[tokio::test]
async fn revoked_expired_and_renewed_invitations_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let id = new_workspace(&app, &owner, "Invites").await;

    let revoked = app.sign_in(Tier::Free).await;
    let made = invite(&app, &owner, &id, &revoked.email, "VIEWER").await;
    let invitation = made.body["invitationId"].as_str().unwrap();
    let token = emailed_token(&app, &revoked.email).await;
    let gone = app.delete(&format!("/workspaces/{id}/invitations/{invitation}"), &owner).await;
    assert_eq!((gone.status, &gone.body["status"]), (200, &json!("revoked")), "{}", gone.body);
    let refused = accept(&app, &revoked, &token).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("revoked"), "{}", refused.body);

    let renewed = app.sign_in(Tier::Free).await;
    let made = invite(&app, &owner, &id, &renewed.email, "VIEWER").await;
    let invitation = made.body["invitationId"].as_str().unwrap();
    let old = emailed_token(&app, &renewed.email).await;
    let resent = app.post(&format!("/workspaces/{id}/invitations/{invitation}/resend"), &owner, None).await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    let new = emailed_token(&app, &renewed.email).await;
    assert_ne!(old, new);
    assert_eq!(accept(&app, &renewed, &old).await.status, 404, "the old link stops working");
    assert_eq!(accept(&app, &renewed, &new).await.status, 200);

    let late = app.sign_in(Tier::Free).await;
    let made = invite(&app, &owner, &id, &late.email, "VIEWER").await;
    let invitation = made.body["invitationId"].as_str().unwrap();
    app.dynamodb
        .update_item()
        .table_name(&app.app.config.tables.workspaces)
        .key("workspaceId", AttributeValue::S(id.clone()))
        .key("item", AttributeValue::S(format!("invite#{invitation}")))
        .update_expression("SET expiresAt = :past")
        .expression_attribute_values(":past", AttributeValue::N("1700000000".into()))
        .send()
        .await
        .unwrap();
    let expired = accept(&app, &late, &emailed_token(&app, &late.email).await).await;
    assert_eq!(expired.status, 409, "{}", expired.body);
    assert!(expired.body["error"]["message"].as_str().unwrap().contains("expired"), "{}", expired.body);

    for (email, role) in [("owner@example.test", "OWNER"), ("not an address", "MEMBER")] {
        let bad = invite(&app, &owner, &id, email, role).await;
        assert_eq!((bad.status, bad.error_code()), (400, "VALIDATION_FAILED"), "{email} {role}: {}", bad.body);
    }
    assert_eq!(accept(&app, &late, "wsi_nonsense").await.status, 404);
    let listed = app.get(&format!("/workspaces/{id}/invitations"), &owner).await;
    let statuses: Vec<_> = listed.body["invitations"].as_array().unwrap().iter().map(|i| i["status"].clone()).collect();
    assert_eq!(statuses.len(), 3, "{}", listed.body);
    assert!(statuses.contains(&json!("revoked")) && statuses.contains(&json!("accepted")), "{statuses:?}");
}

#[tokio::test]
async fn roles_are_permissions_and_every_change_applies_on_the_next_request() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let id = new_workspace(&app, &owner, "Roles").await;
    let (viewer, member) = (app.sign_in(Tier::Free).await, app.sign_in(Tier::Free).await);
    join(&app, &owner, &id, &viewer, "VIEWER").await;
    join(&app, &owner, &id, &member, "MEMBER").await;
    let outsider = app.sign_in(Tier::Free).await;

    assert_eq!(app.get(&format!("/workspaces/{id}/members"), &viewer).await.status, 200, "a VIEWER reads");
    for who in [&viewer, &member] {
        let refused = invite(&app, who, &id, &outsider.email, "VIEWER").await;
        assert_eq!((refused.status, refused.error_code()), (403, "FORBIDDEN"), "{}", refused.body);
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("manage-members"), "{}", refused.body);
    }

    // The member's id percent-encoded, as a browser sends it (`auth0%7C…`).
    let encoded = viewer.id.as_str().replace('|', "%7C");
    let promoted = app.patch(&format!("/workspaces/{id}/members/{encoded}"), &owner, &json!({ "role": "ADMIN" })).await;
    assert_eq!((promoted.status, &promoted.body["role"]), (200, &json!("ADMIN")), "{}", promoted.body);
    assert_eq!(invite(&app, &viewer, &id, &outsider.email, "VIEWER").await.status, 201, "at once");
    let to_owner =
        app.patch(&format!("/workspaces/{id}/members/{}", member.id), &viewer, &json!({ "role": "OWNER" })).await;
    assert_eq!(to_owner.status, 403, "an ADMIN makes no OWNER: {}", to_owner.body);

    let removed = app.delete(&format!("/workspaces/{id}/members/{}", member.id), &viewer).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(app.get(&format!("/workspaces/{id}"), &member).await.status, 404, "gone on the next request");
    assert_eq!(app.get("/auth/session", &member).await.status, 200, "their own account is untouched");

    let demoted =
        app.patch(&format!("/workspaces/{id}/members/{}", viewer.id), &owner, &json!({ "role": "VIEWER" })).await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    assert_eq!(invite(&app, &viewer, &id, "x@example.test", "VIEWER").await.status, 403, "at once");

    let (entries, _) = app
        .app
        .audit
        .list(voice_core::domain::usage::UsagePeriod::containing(time::OffsetDateTime::now_utc()), 200, None)
        .await
        .unwrap();
    let ours: Vec<_> =
        entries.iter().filter(|e| e.detail["workspaceId"] == id.as_str()).map(|e| e.action.as_str()).collect();
    for action in
        ["workspace-create", "workspace-invite", "workspace-join", "workspace-role-change", "workspace-remove"]
    {
        assert!(ours.contains(&action), "{action} audited: {ours:?}");
    }
    let removal =
        entries.iter().find(|e| e.action == "workspace-remove" && e.detail["workspaceId"] == id.as_str()).unwrap();
    assert_eq!(
        (removal.actor_id.as_str(), removal.target_user_id.as_deref()),
        (viewer.id.as_str(), Some(member.id.as_str()))
    );
}

#[tokio::test]
async fn the_last_owner_stays_and_ownership_is_transferred() {
    let app = Arc::new(TestApp::spawn().await);
    let (first, second) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let id = new_workspace(&app, &first, "Owners").await;
    join(&app, &first, &id, &second, "ADMIN").await;

    let leave = app.delete(&format!("/workspaces/{id}/members/{}", first.id), &first).await;
    assert_eq!((leave.status, leave.error_code()), (409, "CONFLICT"), "{}", leave.body);
    let demote =
        app.patch(&format!("/workspaces/{id}/members/{}", first.id), &first, &json!({ "role": "ADMIN" })).await;
    assert_eq!(demote.status, 409, "{}", demote.body);

    let moved = app.post(&format!("/workspaces/{id}/transfer"), &first, Some(&json!({ "userId": second.id }))).await;
    assert_eq!((moved.status, &moved.body["role"]), (200, &json!("OWNER")), "{}", moved.body);
    assert_eq!(app.get(&format!("/workspaces/{id}"), &first).await.body["role"], "ADMIN");

    // Two OWNERs take OWNER from each other at the same moment: one stays.
    let back = app.patch(&format!("/workspaces/{id}/members/{}", first.id), &second, &json!({ "role": "OWNER" })).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let down = json!({ "role": "MEMBER" });
    let (to_second, to_first) =
        (format!("/workspaces/{id}/members/{}", second.id), format!("/workspaces/{id}/members/{}", first.id));
    let (a, b) = tokio::join!(app.patch(&to_second, &first, &down), app.patch(&to_first, &second, &down));
    assert_eq!([a.status, b.status].iter().filter(|s| **s == 200).count(), 1, "{} / {}", a.body, b.body);
    let members = app.get(&format!("/workspaces/{id}/members"), &first).await.body;
    let owners = members["members"].as_array().unwrap().iter().filter(|m| m["role"] == "OWNER").count();
    assert_eq!(owners, 1, "{members}");
}

#[tokio::test]
async fn nothing_of_another_workspace_is_reachable_by_any_route() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) =
        (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let mine = new_workspace(&app, &alice, "Alice's").await;
    let theirs = new_workspace(&app, &bob, "Bob's").await;
    join(&app, &bob, &theirs, &carol, "MEMBER").await;
    let pending = invite(&app, &bob, &theirs, "someone@example.test", "VIEWER").await;
    let invitation = pending.body["invitationId"].as_str().unwrap().to_owned();
    let samples = vec![crate::voices::upload_sample(&app, &bob, integration_tests::SAMPLE_MP3).await];
    let shared =
        app.post(&format!("/workspaces/{theirs}/voices"), &bob, Some(&clone_body("Bob's voice", &samples))).await;
    assert_eq!(shared.status, 201, "{}", shared.body);
    let voice = shared.body["voiceId"].as_str().unwrap().to_owned();

    // Their ids, as if guessed or copied: as absent as ids that do not exist.
    let role = json!({ "role": "ADMIN" });
    let transfer = json!({ "userId": carol.id });
    let my_samples = vec![crate::voices::upload_sample(&app, &alice, integration_tests::SAMPLE_MP3).await];
    let clone = clone_body("Into theirs", &my_samples);
    let speak_there = json!({ "voiceId": voice, "text": "Hello.", "workspaceId": theirs });
    let speak_here = json!({ "voiceId": voice, "text": "Hello.", "workspaceId": mine });
    let attempts: Vec<(&str, String, Option<&Value>)> = vec![
        ("GET", format!("/workspaces/{theirs}"), None),
        ("GET", format!("/workspaces/{theirs}/members"), None),
        ("GET", format!("/workspaces/{theirs}/invitations"), None),
        ("PATCH", format!("/workspaces/{theirs}/members/{}", carol.id), Some(&role)),
        ("DELETE", format!("/workspaces/{theirs}/members/{}", carol.id), None),
        ("POST", format!("/workspaces/{theirs}/transfer"), Some(&transfer)),
        ("DELETE", format!("/workspaces/{theirs}/invitations/{invitation}"), None),
        ("POST", format!("/workspaces/{theirs}/invitations/{invitation}/resend"), None),
        ("DELETE", format!("/workspaces/{theirs}"), None),
        ("GET", format!("/workspaces/{theirs}/voices"), None),
        ("POST", format!("/workspaces/{theirs}/voices"), Some(&clone)),
        ("DELETE", format!("/workspaces/{theirs}/voices/{voice}"), None),
        ("POST", "/tts".to_owned(), Some(&speak_there)),
        ("POST", "/tts/stream".to_owned(), Some(&speak_there)),
        // Their member, invitation and voice ids under Alice's own workspace.
        ("DELETE", format!("/workspaces/{mine}/voices/{voice}"), None),
        ("POST", "/tts".to_owned(), Some(&speak_here)),
        ("POST", "/tts/stream".to_owned(), Some(&speak_here)),
        ("PATCH", format!("/workspaces/{mine}/members/{}", carol.id), Some(&role)),
        ("DELETE", format!("/workspaces/{mine}/members/{}", carol.id), None),
        ("POST", format!("/workspaces/{mine}/transfer"), Some(&transfer)),
        ("DELETE", format!("/workspaces/{mine}/invitations/{invitation}"), None),
        ("POST", format!("/workspaces/{mine}/invitations/{invitation}/resend"), None),
    ];
    for (method, path, body) in &attempts {
        let response = match *method {
            "GET" => app.get(path, &alice).await,
            "DELETE" => app.delete(path, &alice).await,
            "PATCH" => app.patch(path, &alice, body.unwrap()).await,
            _ => app.post(path, &alice, *body).await,
        };
        assert_eq!((response.status, response.error_code()), (404, "NOT_FOUND"), "{method} {path}: {}", response.body);
    }
    let invite_there = invite(&app, &alice, &theirs, "x@example.test", "VIEWER").await;
    assert_eq!(invite_there.status, 404, "{}", invite_there.body);
    let still = app.get(&format!("/workspaces/{theirs}/members"), &bob).await.body;
    assert_eq!(still["members"].as_array().unwrap().len(), 2, "nothing changed: {still}");
    let listed = app.get("/workspaces", &alice).await.body;
    assert_eq!(listed["workspaces"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn erasure_waits_for_a_sole_owner_to_transfer_and_export_lists_memberships() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let id = new_workspace(&app, &alice, "Handed over").await;
    join(&app, &alice, &id, &bob, "MEMBER").await;

    let exported = app.get("/user/export", &bob).await;
    assert_eq!(exported.status, 200, "{}", exported.body);
    let memberships = exported.body["workspaces"].as_array().unwrap();
    assert_eq!((memberships.len(), &memberships[0]["role"]), (1, &json!("MEMBER")), "{}", exported.body);

    let refused = app.delete("/user", &alice).await;
    assert_eq!((refused.status, refused.error_code()), (409, "CONFLICT"), "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("Handed over"), "{}", refused.body);
    assert!(app.user_row(alice.id.as_str()).await.is_some(), "nothing erased");

    app.post(&format!("/workspaces/{id}/transfer"), &alice, Some(&json!({ "userId": bob.id }))).await;
    let erased = app.delete("/user", &alice).await;
    assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
    let members = app.get(&format!("/workspaces/{id}/members"), &bob).await.body;
    let left: Vec<_> = members["members"].as_array().unwrap().iter().map(|m| m["userId"].clone()).collect();
    assert_eq!(left, [json!(bob.id.as_str())], "removed from every workspace");
}

#[tokio::test]
async fn deleting_a_workspace_needs_its_owner_and_removes_everything() {
    let app = TestApp::spawn().await;
    let (owner, admin) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let id = new_workspace(&app, &owner, "Short-lived").await;
    join(&app, &owner, &id, &admin, "ADMIN").await;

    assert_eq!(app.delete(&format!("/workspaces/{id}"), &admin).await.status, 403, "an ADMIN may not");
    let deleted = app.delete(&format!("/workspaces/{id}"), &owner).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    for who in [&owner, &admin] {
        assert_eq!(app.get(&format!("/workspaces/{id}"), who).await.status, 404);
    }
    assert_eq!(rows_of(&app, &id).await, Vec::<String>::new());
}

#[tokio::test]
async fn one_invitation_accepted_ten_times_at_once_makes_one_member() {
    let app = Arc::new(TestApp::spawn().await);
    let owner = app.sign_in(Tier::Basic).await;
    let id = new_workspace(&app, &owner, "Once").await;
    let invitee = app.sign_in(Tier::Free).await;
    assert_eq!(invite(&app, &owner, &id, &invitee.email, "MEMBER").await.status, 201);
    let token = emailed_token(&app, &invitee.email).await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (app, invitee, token) = (app.clone(), invitee.clone(), token.clone());
        tasks.spawn(async move { accept(&app, &invitee, &token).await.status });
    }
    let statuses = tasks.join_all().await;

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 409)), "{statuses:?}");
    let workspace = app.get(&format!("/workspaces/{id}"), &owner).await.body;
    assert_eq!(workspace["members"], 2, "counted once: {workspace}");
    let members = app.get(&format!("/workspaces/{id}/members"), &owner).await.body;
    assert_eq!(members["members"].as_array().unwrap().len(), 2, "{members}");
}

#[tokio::test]
async fn an_erasure_racing_an_acceptance_leaves_no_membership_behind() {
    let app = Arc::new(TestApp::spawn().await);
    let owner = app.sign_in(Tier::Basic).await;
    let id = new_workspace(&app, &owner, "Raced").await;
    let member_ids = |members: &Value| -> Vec<String> {
        members["members"].as_array().unwrap().iter().map(|m| m["userId"].as_str().unwrap().to_owned()).collect()
    };

    // Once an erasure has begun, joining or making a workspace is refused and changes nothing.
    let leaving = app.sign_in(Tier::Free).await;
    assert_eq!(invite(&app, &owner, &id, &leaving.email, "MEMBER").await.status, 201);
    let token = emailed_token(&app, &leaving.email).await;
    let started = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let mark =
        [("erasureState", AttributeValue::S("erasing".into())), ("erasureStartedAt", AttributeValue::N(started))];
    app.set_user(&leaving.id, &mark).await;
    let refused = accept(&app, &leaving, &token).await;
    assert_eq!((refused.status, refused.error_code()), (409, "CONFLICT"), "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("being erased"), "{}", refused.body);
    let made = app.post("/workspaces", &leaving, Some(&json!({ "name": "Too late" }))).await;
    assert_eq!((made.status, made.error_code()), (409, "CONFLICT"), "{}", made.body);
    let invitations = app.get(&format!("/workspaces/{id}/invitations"), &owner).await.body;
    assert_eq!(invitations["invitations"][0]["status"], "pending", "{invitations}");
    assert_eq!(member_ids(&app.get(&format!("/workspaces/{id}/members"), &owner).await.body), [owner.id.to_string()]);

    // Both at once, three times: whichever commits first, an erased person is no member.
    for _ in 0..3 {
        let guest = app.sign_in(Tier::Free).await;
        assert_eq!(invite(&app, &owner, &id, &guest.email, "MEMBER").await.status, 201);
        let token = emailed_token(&app, &guest.email).await;
        let (joined, erased) = tokio::join!(accept(&app, &guest, &token), app.delete("/user", &guest));
        assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
        assert!(matches!(joined.status, 200 | 401 | 409), "{}", joined.body);
        let workspace = app.get(&format!("/workspaces/{id}"), &owner).await.body;
        let members = member_ids(&app.get(&format!("/workspaces/{id}/members"), &owner).await.body);
        assert!(
            !members.contains(&guest.id.to_string()),
            "the erased person stayed a member (join: {})",
            joined.status
        );
        assert_eq!(workspace["members"], json!(members.len()), "the count matches the rows: {workspace}");
    }
}

#[tokio::test]
async fn a_workspace_being_deleted_takes_no_new_member_key_or_voice() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Basic).await;
    let id = new_workspace(&app, &owner, "Going").await;
    let invitee = app.sign_in(Tier::Free).await;
    assert_eq!(invite(&app, &owner, &id, &invitee.email, "MEMBER").await.status, 201);
    let token = emailed_token(&app, &invitee.email).await;
    let samples = vec![crate::voices::upload_sample(&app, &owner, integration_tests::SAMPLE_MP3).await];

    // Its deletion has begun (its first write), and nothing of it has gone yet.
    let workspace = voice_core::domain::ids::Ulid::parse(&id).unwrap();
    app.app.workspaces.mark_deleting(&workspace).await.unwrap();

    let joined = accept(&app, &invitee, &token).await;
    assert_eq!((joined.status, joined.error_code()), (404, "NOT_FOUND"), "{}", joined.body);
    let key = app.post(&format!("/workspaces/{id}/api-keys"), &owner, Some(&json!({ "name": "late" }))).await;
    assert_eq!((key.status, key.error_code()), (404, "NOT_FOUND"), "{}", key.body);
    let name = integration_tests::unique("late-");
    let voice = app.post(&format!("/workspaces/{id}/voices"), &owner, Some(&clone_body(&name, &samples))).await;
    assert_eq!((voice.status, voice.error_code()), (404, "NOT_FOUND"), "{}", voice.body);

    // What the key and the voice wrote before finding the mark is undone, slots included.
    let row = app.app.workspaces.get(&workspace).await.unwrap().unwrap();
    assert_eq!((row.members, row.api_keys, row.library_voices), (1, 0, 0), "{row:?}");
    let items = rows_of(&app, &id).await;
    assert!(items.iter().all(|i| !i.starts_with("key#") && *i != format!("member#{}", invitee.id)), "{items:?}");
    let library = voice_core::domain::ids::UserId::library_of(&workspace);
    assert!(app.app.voices.all_voices(&library).await.unwrap().is_empty(), "no voice row");
    let added = app.upstream_requests(&format!("add:{name}")).await;
    let clone = added[0]["voice_id"].as_str().expect("the clone was made").to_owned();
    assert_eq!(app.upstream_requests(&format!("delete:{clone}")).await.len(), 1, "the clone deleted: {added:?}");
    let keys = app.dynamodb.query().table_name(&app.app.config.tables.api_keys).index_name("user-index");
    let keys = keys
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(owner.id.to_string()));
    assert_eq!(keys.send().await.unwrap().count, 0, "no key row of the owner's");

    // The deletion itself goes on.
    assert_eq!(app.delete(&format!("/workspaces/{id}"), &owner).await.status, 200);
    assert_eq!(app.get(&format!("/workspaces/{id}"), &owner).await.status, 404);
}
