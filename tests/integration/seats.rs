//! TEAM: seats billed per member to the workspace's own Stripe customer, prorated as members
//! come and go, and never more members than the seats the OWNER agreed to pay for, however many
//! accept at once.

use std::{sync::Arc, time::Duration};

use integration_tests::{TestApp, User, eventually};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::{domain::tiers::Tier, flows::billing::Applied};

use crate::workspaces::{accept, emailed_token, emailed_tokens, invite, join, new_workspace};

/// `POST /workspaces/{id}/billing/checkout`, paid at the stand-in: the subscription's id.
pub(crate) async fn buy_team(app: &TestApp, owner: &User, workspace: &str, seat_limit: u32) -> String {
    let path = format!("/workspaces/{workspace}/billing/checkout");
    let opened = app.post(&path, owner, Some(&json!({ "seatLimit": seat_limit }))).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.body["sessionUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let paid = app.stripe_post(&format!("_test/checkout/{session}/complete"), &[]).await;
    paid["subscription"].as_str().expect("the checkout made a subscription").to_owned()
}

async fn sync(app: &TestApp, subscription: &str) -> Applied {
    let billing = voice_core::assemble::billing(&app.app).await.unwrap();
    billing.sync_subscription(subscription, OffsetDateTime::now_utc()).await.unwrap()
}

/// The seats Stripe bills now: the quantity of the subscription's one item.
async fn billed(app: &TestApp, subscription: &str) -> u64 {
    let read = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await;
    read["items"]["data"][0]["quantity"].as_u64().unwrap_or_else(|| panic!("a quantity: {read}"))
}

async fn workspace(app: &TestApp, owner: &User, id: &str) -> Value {
    let read = app.get(&format!("/workspaces/{id}"), owner).await;
    assert_eq!(read.status, 200, "{}", read.body);
    read.body
}

#[tokio::test]
async fn team_bills_the_workspace_one_seat_per_member_and_follows_joins_and_departures() {
    let app = TestApp::spawn().await;
    app.receive_stripe_webhooks().await;
    let owner = app.sign_in(Tier::Basic).await;
    let id = new_workspace(&app, &owner, "Seats").await;
    let before = workspace(&app, &owner, &id).await;
    assert_eq!((&before["seats"], &before["seatLimit"], &before["team"]), (&json!(3), &json!(3), &Value::Null));

    let subscription = buy_team(&app, &owner, &id, 5).await;

    // The signed webhooks mirror TEAM onto the workspace, and nothing onto the OWNER.
    let mirrored = eventually(Duration::from_secs(10), || async {
        workspace(&app, &owner, &id).await["team"]["status"] == "active"
    })
    .await;
    let now = workspace(&app, &owner, &id).await;
    assert!(mirrored, "TEAM reached the workspace: {now}");
    assert_eq!((&now["seats"], &now["seatLimit"], &now["team"]["billedSeats"]), (&json!(5), &json!(5), &json!(1)));
    let person = app.user_row(owner.id.as_str()).await.unwrap();
    assert_eq!(person.tier, Tier::Basic, "the OWNER's own plan is untouched");
    let customer = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await["customer"].clone();
    assert_ne!(person.stripe_customer_id.as_deref(), customer.as_str(), "the workspace pays, not its OWNER");
    let metadata = app.stripe_get(&format!("v1/customers/{}", customer.as_str().unwrap())).await["metadata"].clone();
    assert_eq!(metadata["workspaceId"], id.as_str(), "{metadata}");

    // Two join: three seats billed, each change prorated.
    let (first, second) = (app.sign_in(Tier::Free).await, app.sign_in(Tier::Free).await);
    join(&app, &owner, &id, &first, "MEMBER").await;
    join(&app, &owner, &id, &second, "VIEWER").await;
    assert_eq!(billed(&app, &subscription).await, 3);
    let updates = app.stripe_get(&format!("_test/subscriptions/{subscription}/updates")).await;
    let updates = updates.as_array().unwrap();
    assert!(!updates.is_empty(), "quantity updates were sent");
    assert!(updates.iter().all(|u| u["proration_behavior"] == "create_prorations"), "{updates:?}");

    // One leaves, one is removed: one seat billed.
    let left = app.delete(&format!("/workspaces/{id}/members/{}", first.id), &first).await;
    assert_eq!(left.status, 200, "{}", left.body);
    let removed = app.delete(&format!("/workspaces/{id}/members/{}", second.id), &owner).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(billed(&app, &subscription).await, 1);

    // A second TEAM for the same workspace is refused.
    let again = app.post(&format!("/workspaces/{id}/billing/checkout"), &owner, Some(&json!({ "seatLimit": 5 }))).await;
    assert_eq!(again.status, 409, "{}", again.body);

    let (entries, _) = app
        .app
        .audit
        .list(voice_core::domain::usage::UsagePeriod::containing(OffsetDateTime::now_utc()), 500, None)
        .await
        .unwrap();
    let ours: Vec<_> =
        entries.iter().filter(|e| e.detail["workspaceId"] == id.as_str()).map(|e| e.action.as_str()).collect();
    for action in ["workspace-seat-limit", "workspace-checkout", "workspace-join", "workspace-leave"] {
        assert!(ours.contains(&action), "{action} audited: {ours:?}");
    }
}

#[tokio::test]
async fn twenty_acceptances_at_once_never_exceed_the_seats_paid_for() {
    let app = Arc::new(TestApp::spawn().await);
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Crowded").await;
    let subscription = buy_team(&app, &owner, &id, 5).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { seats: 5, .. }));

    let mut people = Vec::new();
    for _ in 0..20 {
        let person = app.sign_in(Tier::Free).await;
        assert_eq!(invite(&app, &owner, &id, &person.email, "MEMBER").await.status, 201);
        people.push(person);
    }
    let tokens = emailed_tokens(&app, &people.iter().map(|p| p.email.as_str()).collect::<Vec<_>>()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (person, token) in people.into_iter().zip(tokens) {
        let app = app.clone();
        tasks.spawn(async move { accept(&app, &person, &token).await });
    }
    let answers = tasks.join_all().await;

    let joined = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(joined, 4, "the owner and four more fill five seats");
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("every seat"), "{}", refused.body);
    }
    let now = workspace(&app, &owner, &id).await;
    assert_eq!(now["members"], 5, "{now}");
    let members = app.get(&format!("/workspaces/{id}/members"), &owner).await.body;
    assert_eq!(members["members"].as_array().unwrap().len(), 5, "the rows agree with the count");

    // Whatever order the quantity updates landed in, the next sync bills exactly the members.
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { .. }));
    assert_eq!(billed(&app, &subscription).await, 5);
}

#[tokio::test]
async fn without_team_a_workspace_holds_its_free_seats_and_the_limit_follows_the_rules() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Free seats").await;
    let admin = app.sign_in(Tier::Free).await;
    join(&app, &owner, &id, &admin, "ADMIN").await;
    join(&app, &owner, &id, &app.sign_in(Tier::Free).await, "MEMBER").await;

    let fourth = app.sign_in(Tier::Free).await;
    assert_eq!(invite(&app, &owner, &id, &fourth.email, "MEMBER").await.status, 201);
    let refused = accept(&app, &fourth, &emailed_token(&app, &fourth.email).await).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("every seat"), "{}", refused.body);

    let seats = format!("/workspaces/{id}/seats");
    let by_admin = app.patch(&seats, &admin, &json!({ "seatLimit": 10 })).await;
    assert_eq!(by_admin.status, 403, "billing is the OWNER's: {}", by_admin.body);
    let too_low = app.patch(&seats, &owner, &json!({ "seatLimit": 2 })).await;
    assert_eq!((too_low.status, too_low.error_code()), (400, "VALIDATION_FAILED"), "{}", too_low.body);
    for bad in [json!({ "seatLimit": 0 }), json!({ "seatLimit": 501 }), json!({ "seats": 4 })] {
        assert_eq!(app.patch(&seats, &owner, &bad).await.status, 400, "{bad}");
    }
    let raised = app.patch(&seats, &owner, &json!({ "seatLimit": 10 })).await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    assert_eq!((&raised.body["seatLimit"], &raised.body["seats"]), (&json!(10), &json!(3)), "seats come with TEAM");
    let still = accept(&app, &fourth, &emailed_token(&app, &fourth.email).await).await;
    assert_eq!(still.status, 409, "{}", still.body);
}

#[tokio::test]
async fn deleting_a_workspace_ends_its_team_and_nothing_bills_afterwards() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Short-lived").await;
    let subscription = buy_team(&app, &owner, &id, 3).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { .. }));
    let customer = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await["customer"].clone();

    let deleted = app.delete(&format!("/workspaces/{id}"), &owner).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let read = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await;
    assert_eq!(read["status"], "canceled", "{read}");
    let gone = app.stripe_get(&format!("v1/customers/{}", customer.as_str().unwrap())).await;
    assert_eq!(gone["deleted"], true, "{gone}");
    // A late event for it changes nothing and bills no one.
    assert!(matches!(sync(&app, &subscription).await, Applied::Ignored { .. }));

    // A checkout left open in another tab can no longer be paid once the workspace is gone.
    let other = new_workspace(&app, &owner, "Abandoned").await;
    let opened =
        app.post(&format!("/workspaces/{other}/billing/checkout"), &owner, Some(&json!({ "seatLimit": 3 }))).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.body["sessionUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/workspaces/{other}"), &owner).await.status, 200);
    let late = app.stripe_setup(http::Method::POST, &format!("_test/checkout/{session}/complete")).send().await;
    assert!(!late.unwrap().status().is_success(), "the session was expired with the workspace");
}

#[tokio::test]
async fn the_nightly_reconciliation_bills_the_members_and_stops_a_second_team() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Reconciled").await;
    let subscription = buy_team(&app, &owner, &id, 4).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { .. }));
    join(&app, &owner, &id, &app.sign_in(Tier::Free).await, "MEMBER").await;
    let read = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await;
    let (customer, item) = (read["customer"].as_str().unwrap().to_owned(), read["items"]["data"][0]["id"].clone());
    // Changed by hand in Stripe's dashboard: the wrong quantity, and a second TEAM.
    app.stripe_post(
        &format!("v1/subscriptions/{subscription}"),
        &[("items[0][id]", item.as_str().unwrap()), ("items[0][quantity]", "7")],
    )
    .await;
    let extra =
        app.stripe_post("v1/subscriptions", &[("customer", &customer), ("items[0][plan]", "price_team_monthly")]).await;
    let extra = extra["id"].as_str().unwrap().to_owned();

    let file = std::fs::read_to_string(format!("{}/reconcile-schedule.json", integration_tests::EVENTS)).unwrap();
    let schedule: aws_lambda_events::event::eventbridge::EventBridgeEvent = serde_json::from_str(&file).unwrap();
    let report = reconcile::handle(app.function("reconcile"), schedule).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");

    assert_eq!(billed(&app, &subscription).await, 2, "the two members, again");
    let extra_now = app.stripe_get(&format!("v1/subscriptions/{extra}")).await;
    assert_eq!(extra_now["status"], "canceled", "one TEAM per workspace: {extra_now}");
    let now = workspace(&app, &owner, &id).await;
    assert_eq!((&now["team"]["subscriptionId"], &now["seats"]), (&json!(subscription), &json!(4)), "{now}");
}

#[tokio::test]
async fn a_seat_limit_lowered_while_people_accept_never_leaves_more_members_than_seats() {
    let app = Arc::new(TestApp::spawn().await);
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Shrinking").await;
    let subscription = buy_team(&app, &owner, &id, 8).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { seats: 8, .. }));
    let mut people = Vec::new();
    for _ in 0..6 {
        let person = app.sign_in(Tier::Free).await;
        assert_eq!(invite(&app, &owner, &id, &person.email, "MEMBER").await.status, 201);
        people.push(person);
    }
    let tokens = emailed_tokens(&app, &people.iter().map(|p| p.email.as_str()).collect::<Vec<_>>()).await;

    // Six accept while the OWNER lowers the limit to 3: whichever lands first, the other is
    // refused, and the workspace never holds more members than its seats.
    let mut tasks = tokio::task::JoinSet::new();
    for (person, token) in people.into_iter().zip(tokens) {
        let app = app.clone();
        tasks.spawn(async move { accept(&app, &person, &token).await.status });
    }
    let lowered = app.patch(&format!("/workspaces/{id}/seats"), &owner, &json!({ "seatLimit": 3 })).await;
    let accepted = tasks.join_all().await.iter().filter(|s| **s == 200).count() as u64;

    let now = workspace(&app, &owner, &id).await;
    let (members, seats) = (now["members"].as_u64().unwrap(), now["seats"].as_u64().unwrap());
    assert_eq!(members, 1 + accepted, "{now}");
    assert!(members <= seats, "{members} members in {seats} seats: {now}");
    match lowered.status {
        200 => assert_eq!((seats, members <= 3), (3, true), "lowered first: {now}"),
        400 => assert!(members > 3, "refused only when more than 3 had joined: {}", lowered.body),
        other => panic!("{other}: {}", lowered.body),
    }
}

#[tokio::test]
async fn when_team_ends_the_workspace_keeps_its_members_and_takes_no_one_past_the_free_seats() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Lapsed").await;
    let subscription = buy_team(&app, &owner, &id, 6).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { seats: 6, .. }));
    for _ in 0..3 {
        join(&app, &owner, &id, &app.sign_in(Tier::Free).await, "MEMBER").await;
    }

    // Cancelled in Stripe's dashboard: the next sync brings the workspace back to its free seats.
    app.stripe_delete(&format!("v1/subscriptions/{subscription}")).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { seats: 3, .. }));
    let now = workspace(&app, &owner, &id).await;
    assert_eq!((&now["members"], &now["seats"], &now["team"]["status"]), (&json!(4), &json!(3), &json!("canceled")));
    let late = app.sign_in(Tier::Free).await;
    assert_eq!(invite(&app, &owner, &id, &late.email, "MEMBER").await.status, 201);
    let refused = accept(&app, &late, &emailed_token(&app, &late.email).await).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    // A new TEAM may be bought again.
    let again = app.post(&format!("/workspaces/{id}/billing/checkout"), &owner, Some(&json!({ "seatLimit": 6 }))).await;
    assert_eq!(again.status, 200, "{}", again.body);
}

#[tokio::test]
async fn erasing_the_only_member_of_a_team_workspace_ends_its_team() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Tier::Free).await;
    let id = new_workspace(&app, &owner, "Solo").await;
    let subscription = buy_team(&app, &owner, &id, 3).await;
    assert!(matches!(sync(&app, &subscription).await, Applied::TeamSynced { .. }));
    let customer = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await["customer"].clone();

    // The route refuses a sole OWNER (transfer or delete first)...
    let refused = app.delete("/user", &owner).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    // ...but an erasure that passed that check and then found itself the only member (its
    // co-owner left meanwhile) takes the workspace with it, and its TEAM first.
    let erasure = voice_core::assemble::erasure(&app.app).await.unwrap();
    let status = erasure.erase(&owner.id, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(status, voice_core::flows::erase::ErasureStatus::Erased);

    assert_eq!(app.get(&format!("/workspaces/{id}"), &app.sign_in(Tier::Free).await).await.status, 404);
    let read = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await;
    assert_eq!(read["status"], "canceled", "the workspace went with its only member, and its TEAM first: {read}");
    let gone = app.stripe_get(&format!("v1/customers/{}", customer.as_str().unwrap())).await;
    assert_eq!(gone["deleted"], true, "{gone}");
}

#[tokio::test]
async fn the_billing_contact_follows_the_owners_and_leaves_with_an_erased_one() {
    let app = TestApp::spawn().await;
    let (first, second) = (app.sign_in(Tier::Free).await, app.sign_in(Tier::Free).await);
    let id = new_workspace(&app, &first, "Handed over").await;
    join(&app, &first, &id, &second, "ADMIN").await;
    let subscription = buy_team(&app, &first, &id, 4).await;
    let customer = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await["customer"].clone();
    let contact = async || {
        app.stripe_get(&format!("v1/customers/{}", customer.as_str().unwrap())).await["email"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(contact().await, first.email, "the OWNER who subscribed");

    // Ownership moves: so does the contact.
    let transfer = format!("/workspaces/{id}/transfer");
    let moved = app.post(&transfer, &first, Some(&json!({ "userId": second.id.as_str() }))).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(contact().await, second.email);

    // Two OWNERs; the contact erases their account: the other OWNER is the contact now.
    let role = format!("/workspaces/{id}/members/{}", first.id.as_str().replace('|', "%7C"));
    assert_eq!(app.patch(&role, &second, &json!({ "role": "OWNER" })).await.status, 200);
    let erased = app.delete("/user", &second).await;
    assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
    assert_eq!(contact().await, first.email, "no erased person stays the contact");
}
