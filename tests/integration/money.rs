//! Money where flows meet: one live subscription per customer whatever the customer does with
//! Checkout, nothing billed for an account that no longer exists, and a returning person who
//! inherits nothing.

use std::fs;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use integration_tests::{EVENTS, TestApp, User, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::{
    domain::{ids::Email, tiers::Tier, user::Profile},
    flows::billing::Applied,
    upstream::stripe::signature,
};

/// `POST /billing/checkout` for `tier`; the session's id.
async fn open_checkout(app: &TestApp, user: &User, tier: &str) -> String {
    let response = app.post("/billing/checkout", user, Some(&json!({ "tier": tier }))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body["sessionUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

/// Pays a session at the Stripe stand-in: the subscription's id, or None when it cannot be paid.
async fn pay(app: &TestApp, session: &str) -> Option<String> {
    let response =
        app.stripe_setup(http::Method::POST, &format!("_test/checkout/{session}/complete")).send().await.unwrap();
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.unwrap();
    body["subscription"].as_str().map(String::from)
}

/// The customer's subscriptions that are not over, by id and status.
async fn open_subscriptions(app: &TestApp, customer: &str) -> Vec<(String, String)> {
    let list = app.stripe_get(&format!("v1/subscriptions?customer={customer}&limit=100")).await;
    let data = list["data"].as_array().cloned().unwrap_or_default();
    data.iter()
        .filter(|s| s["status"] != "canceled")
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// How many refunds each paid invoice of the subscription has (through the current API's invoice
/// payments).
async fn refunds(app: &TestApp, subscription: &str) -> Vec<usize> {
    let invoices = app.stripe_get(&format!("v1/invoices?subscription={subscription}&limit=100")).await;
    let mut counts = Vec::new();
    for invoice in invoices["data"].as_array().unwrap().iter().filter(|i| i["amount_paid"].as_i64() > Some(0)) {
        let payments =
            app.stripe_get(&format!("v1/invoice_payments?invoice={}", invoice["id"].as_str().unwrap())).await;
        for payment in payments["data"].as_array().unwrap() {
            let intent = payment["payment"]["payment_intent"].as_str().unwrap();
            let refunds = app.stripe_get(&format!("v1/refunds?payment_intent={intent}")).await;
            counts.push(refunds["data"].as_array().unwrap().len());
        }
    }
    counts
}

async fn customer_of(app: &TestApp, user: &User) -> String {
    app.user_row(user.id.as_str()).await.unwrap().stripe_customer_id.expect("a Stripe customer")
}

async fn sync(app: &TestApp, subscription: &str) -> Applied {
    let billing = voice_core::assemble::billing(&app.app).await.unwrap();
    billing.sync_subscription(subscription, OffsetDateTime::now_utc()).await.unwrap()
}

fn signed_event(app_secret: &str, kind: &str, object: Value) -> (String, String) {
    let payload = json!({ "id": unique("evt_money_"), "object": "event", "type": kind,
        "created": OffsetDateTime::now_utc().unix_timestamp(), "data": { "object": object } })
    .to_string();
    let header = signature::header(app_secret, OffsetDateTime::now_utc().unix_timestamp(), payload.as_bytes());
    (payload, header)
}

#[tokio::test]
async fn a_checkout_left_open_in_another_tab_can_no_longer_be_paid() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let basic = open_checkout(&app, &user, "BASIC").await;
    let premium = open_checkout(&app, &user, "PREMIUM").await;

    let first = app.stripe_get(&format!("v1/checkout/sessions/{basic}")).await;
    assert_eq!(first["status"], "expired", "the earlier session was expired: {first}");
    let second = app.stripe_get(&format!("v1/checkout/sessions/{premium}")).await;
    assert_eq!(second["status"], "open");
    let lifetime = second["expires_at"].as_i64().unwrap() - OffsetDateTime::now_utc().unix_timestamp();
    assert!((29 * 60..=41 * 60).contains(&lifetime), "sessions carry an expiry: {lifetime} s");

    assert_eq!(pay(&app, &basic).await, None, "the expired session takes no payment");
    let paid = pay(&app, &premium).await.expect("the newest session is paid");
    let customer = customer_of(&app, &user).await;
    assert_eq!(open_subscriptions(&app, &customer).await, [(paid, "active".to_owned())]);

    // A double click reuses the open session instead of expiring it.
    let user = app.sign_in(Tier::Free).await;
    let once = open_checkout(&app, &user, "BASIC").await;
    assert_eq!(open_checkout(&app, &user, "BASIC").await, once);
    assert_eq!(app.stripe_get(&format!("v1/checkout/sessions/{once}")).await["status"], "open");
}

#[tokio::test]
async fn two_sessions_paid_at_once_leave_one_live_subscription_and_refund_the_other_once() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let first = open_checkout(&app, &user, "BASIC").await;
    let customer = customer_of(&app, &user).await;
    // A second session opened at the same moment (made at Stripe, so that ours did not expire it).
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expires = (now + 1800).to_string();
    let second = app
        .stripe_post(
            "v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", &customer),
                ("line_items[0][price]", "price_premium_monthly"),
                ("subscription_data[metadata][userId]", user.id.as_str()),
                ("success_url", "http://127.0.0.1/ok"),
                ("cancel_url", "http://127.0.0.1/no"),
                ("expires_at", &expires),
            ],
        )
        .await;
    let paid = [pay(&app, &first).await.unwrap(), pay(&app, second["id"].as_str().unwrap()).await.unwrap()];

    // Synced in any order and however often (Stripe's own events reach other receivers too):
    // one stays, and the other is cancelled and its payment refunded once.
    for round in 0..3 {
        for id in &paid {
            let applied = sync(&app, id).await;
            assert!(matches!(applied, Applied::Stopped { .. } | Applied::Synced { .. }), "{round}: {applied:?}");
        }
    }
    let live = open_subscriptions(&app, &customer).await;
    assert_eq!(live.len(), 1, "one live subscription: {live:?}");
    let (kept, extra) = if live[0].0 == paid[0] { (&paid[0], &paid[1]) } else { (&paid[1], &paid[0]) };
    assert_eq!(refunds(&app, extra).await, [1], "its one payment refunded once");
    assert!(refunds(&app, kept).await.iter().all(|n| *n == 0), "the kept one is not refunded");
    let session = app.get("/auth/session", &user).await.body;
    assert_eq!(session["subscription"]["subscriptionId"].as_str(), Some(kept.as_str()), "{session}");
    let tier = if kept == &paid[0] { "BASIC" } else { "PREMIUM" };
    assert_eq!(session["tier"], tier);
    let emails = app.emails_to(&user.email).await;
    assert_eq!(emails.len(), 1, "one email: {emails:?}");
    let template = &app.app.config.billing.email.as_ref().unwrap().subscription_refunded_template;
    assert_eq!(emails[0]["template"], template.as_str());
}

#[tokio::test]
async fn the_nightly_reconciliation_stops_a_second_subscription_made_anywhere() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let kept = pay(&app, &open_checkout(&app, &user, "BASIC").await).await.unwrap();
    sync(&app, &kept).await; // its checkout's webhook
    let customer = customer_of(&app, &user).await;
    // Made by hand in Stripe's dashboard, and never heard of by a webhook.
    let extra = app
        .stripe_post("v1/subscriptions", &[("customer", &customer), ("items[0][plan]", "price_premium_monthly")])
        .await;
    let extra = extra["id"].as_str().unwrap().to_owned();

    let file = fs::read_to_string(format!("{EVENTS}/reconcile-schedule.json")).unwrap();
    let schedule: EventBridgeEvent = serde_json::from_str(&file).unwrap();
    // (localstripe also sends its own event about the new subscription to every webhook
    // receiver the tests registered: one of them may stop it first; the outcome is the same.)
    let report = reconcile::handle(app.function("reconcile"), schedule).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(open_subscriptions(&app, &customer).await, [(kept, "active".to_owned())]);
    assert_eq!(refunds(&app, &extra).await, [1]);
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "BASIC");
}

#[tokio::test]
async fn a_subscription_billing_no_user_of_ours_is_cancelled_and_refunded() {
    let app = TestApp::spawn().await;
    let customer = app.stripe_post("v1/customers", &[("email", "stranger@example.com")]).await;
    let customer = customer["id"].as_str().unwrap();
    app.add_card(customer, "4242424242424242").await;
    // Its metadata names a real user: a claim, which our own mapping does not back.
    let someone = app.sign_in(Tier::Free).await;
    let subscription = app
        .stripe_post(
            "v1/subscriptions",
            &[
                ("customer", customer),
                ("items[0][plan]", "price_basic_monthly"),
                ("metadata[userId]", someone.id.as_str()),
            ],
        )
        .await;
    let id = subscription["id"].as_str().unwrap().to_owned();
    let (payload, header) = signed_event(&app.webhook_secret().await, "customer.subscription.created", subscription);
    let response = app.deliver(&payload, Some(&header)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["applied"]["result"], "stopped", "{}", response.body);
    assert_eq!(response.body["applied"]["why"], "noUser");
    assert_eq!(app.stripe_get(&format!("v1/subscriptions/{id}")).await["status"], "canceled");
    assert_eq!(refunds(&app, &id).await, [1]);
    assert_eq!(app.get("/auth/session", &someone).await.body["tier"], "FREE", "the named user got nothing");
}

#[tokio::test]
async fn an_erased_account_can_no_longer_be_billed_and_a_returning_person_inherits_nothing() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let old = pay(&app, &open_checkout(&app, &user, "BASIC").await).await.unwrap();
    let open = open_checkout_anew(&app, &user).await;
    let customer = customer_of(&app, &user).await;

    let erased = app.delete("/user", &user).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(app.stripe_get(&format!("v1/checkout/sessions/{open}")).await["status"], "expired");
    assert_eq!(pay(&app, &open).await, None, "the session left open takes no payment");
    assert_eq!(app.stripe_get(&format!("v1/customers/{customer}")).await["deleted"], true, "the customer is gone");
    assert_eq!(app.stripe_get(&format!("v1/subscriptions/{old}")).await["status"], "canceled");

    // The same person signs in again: a new account, a new customer, nothing of the old one.
    let profile = Profile { user_id: user.id.clone(), email: Email::parse(&user.email).unwrap(), name: None };
    let back = app.open_session(&profile, &Default::default()).await.unwrap();
    let again = User { token: back.token.clone(), csrf: back.token.csrf_token(), ..user.clone() };
    open_checkout(&app, &again, "PREMIUM").await;
    assert_ne!(customer_of(&app, &again).await, customer, "a customer of its own");
    // A late event about the erased account's subscription, naming the same user id.
    let late = app.stripe_get(&format!("v1/subscriptions/{old}")).await;
    let (payload, header) = signed_event(&app.webhook_secret().await, "customer.subscription.updated", late);
    assert_eq!(app.deliver(&payload, Some(&header)).await.status, 200);
    let session = app.get("/auth/session", &again).await.body;
    assert_eq!(session["tier"], "FREE", "{session}");
    assert!(session["subscriptionStatus"].is_null() && session["subscription"].is_null(), "{session}");
    let rows = app.app.subscriptions.for_user(&again.id).await.unwrap();
    assert!(rows.is_empty(), "no subscription row reappears: {rows:?}");
}

/// A second checkout of a user who already has a paid subscription cannot be opened through the
/// API; a session opened at Stripe for their customer stands for one left open in a tab.
async fn open_checkout_anew(app: &TestApp, user: &User) -> String {
    let customer = customer_of(app, user).await;
    let expires = (OffsetDateTime::now_utc().unix_timestamp() + 1800).to_string();
    let session = app
        .stripe_post(
            "v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", &customer),
                ("line_items[0][price]", "price_premium_monthly"),
                ("success_url", "http://127.0.0.1/ok"),
                ("cancel_url", "http://127.0.0.1/no"),
                ("expires_at", &expires),
            ],
        )
        .await;
    session["id"].as_str().unwrap().to_owned()
}
