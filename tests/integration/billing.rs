//! Billing: plans, Checkout, the Billing Portal and the webhook, against localstripe, our
//! Stripe-gaps stand-in, moto and Redis; plus parsing of Stripe's real object shapes.

use std::fs;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{EVENTS, TestApp, TestResponse, User, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::{
    domain::tiers::Tier,
    flows::billing::Applied,
    store::webhook_events::Claim,
    upstream::stripe::{
        signature,
        types::{
            CheckoutSession, Event, Invoice, InvoicePayment, List, PortalSession, Refund, Subscription,
            SubscriptionItem, SubscriptionSchedule,
        },
    },
};

fn fixture(name: &str) -> Value {
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/stripe/fixtures3.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["resources"][name].clone()
}

#[test]
fn the_stripe_shapes_we_read_parse() {
    let subscription: Subscription = serde_json::from_value(fixture("subscription")).unwrap();
    assert!(subscription.price_id().unwrap().starts_with("price_"));
    let (start, end) = subscription.current_period();
    assert!(start.is_some() && end.is_some(), "the current API keeps the period on the item");
    assert!(subscription.cancel_at_period_end);

    let item: SubscriptionItem = serde_json::from_value(fixture("subscription_item")).unwrap();
    assert!(item.price_id().is_some());
    let checkout: CheckoutSession = serde_json::from_value(fixture("checkout.session")).unwrap();
    assert!(checkout.id.starts_with("cs_"));
    let portal: PortalSession = serde_json::from_value(fixture("billing_portal.session")).unwrap();
    assert!(portal.url.starts_with("https://"));
    let customer: voice_core::upstream::stripe::client::Customer = serde_json::from_value(fixture("customer")).unwrap();
    assert!(customer.id.starts_with("cus_"));
    let schedule: SubscriptionSchedule = serde_json::from_value(fixture("subscription_schedule")).unwrap();
    assert!(schedule.id.starts_with("sub_sched_"));
    let invoice: Invoice = serde_json::from_value(fixture("invoice")).unwrap();
    assert!(invoice.created().is_some() && invoice.customer.as_deref().unwrap().starts_with("cus_"));
    assert!(invoice.payment_intent.is_none(), "current invoices list their payments instead");
    let mut payment = fixture("invoice_payment");
    payment["payment"]["payment_intent"] = "pi_1".into();
    let payments: List<InvoicePayment> =
        serde_json::from_value(json!({ "object": "list", "data": [payment] })).unwrap();
    assert_eq!(payments.data[0].payment.payment_intent.as_deref(), Some("pi_1"));
    let refund: Refund = serde_json::from_value(fixture("refund")).unwrap();
    assert_eq!((refund.amount, refund.status.as_deref()), (100, Some("succeeded")));

    let event: Event = serde_json::from_value(fixture("event")).unwrap();
    assert!(event.id.starts_with("evt_"));
    // Events about each object we act on name their subscription, in the current shapes.
    // The fixture's session is an unfinished one (subscription: null); a completed
    // subscription-mode session names its subscription.
    let mut completed = fixture("checkout.session");
    completed["subscription"] = "sub_from_checkout".into();
    let objects = [
        (fixture("subscription"), subscription.id.as_str()),
        (completed, "sub_from_checkout"),
        (fixture("invoice"), "subscription"),
    ];
    for (object, expected) in objects {
        let name = object["object"].as_str().unwrap().to_owned();
        let event: Event =
            serde_json::from_value(json!({ "id": "evt_x", "type": "x", "created": 1, "data": { "object": object } }))
                .unwrap();
        let found = event.subscription_id().unwrap_or_else(|| panic!("{name} names no subscription"));
        assert_eq!(found, expected, "{name}");
    }
}

#[tokio::test]
async fn plans_match_the_tier_table_without_sign_in() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::GET, "/billing/plans", &[], None).await;
    assert_eq!(response.status, 200);
    let plans = response.body["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 5);
    assert_eq!(plans[0]["tier"], "FREE");
    assert!(plans[0]["priceId"].is_null());
    for plan in plans {
        let tier: Tier = plan["tier"].as_str().unwrap().parse().unwrap();
        let rules = tier.rules();
        let amount = if plan["interval"] == "year" { rules.yearly_price_cents } else { rules.monthly_price_cents };
        assert_eq!(plan["amount"], amount, "{plan}");
        assert_eq!(plan["features"], serde_json::to_value(tier.features()).unwrap());
        if let Some(price) = plan["priceId"].as_str() {
            assert_eq!(app.app.config.billing.tier_of(price), Some(tier));
        }
    }
}

#[tokio::test]
async fn checkout_refuses_free_unknown_tiers_and_anonymous_callers() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    for (body, field) in [
        (json!({ "tier": "FREE" }), "tier"),
        (json!({ "tier": "GOLD" }), "tier"),
        (json!({ "tier": "BASIC", "interval": "week" }), "interval"),
    ] {
        let response = app.post("/billing/checkout", &user, Some(&body)).await;
        assert_eq!(response.status, 400, "{body}");
        assert!(response.body["error"]["fields"][field].is_string(), "{}", response.body);
    }
    let anonymous = app.request(Method::POST, "/billing/checkout", &[], Some(&json!({ "tier": "BASIC" }))).await;
    assert_eq!(anonymous.status, 401);
    let cookie = user.cookie();
    let body = json!({ "tier": "BASIC" });
    let no_csrf = app.request(Method::POST, "/billing/checkout", &[("cookie", &cookie)], Some(&body)).await;
    assert_eq!(no_csrf.error_code(), "CSRF_FAILED");
}

/// Checkout for `tier` and "pay" it at the stand-in; returns the subscription id.
async fn subscribe(app: &TestApp, user: &User, tier: &str) -> String {
    let response = app.post("/billing/checkout", user, Some(&json!({ "tier": tier }))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let session_url = response.body["sessionUrl"].as_str().unwrap();
    let session_id = session_url.rsplit('/').next().unwrap();
    let completed = app.stripe_post(&format!("_test/checkout/{session_id}/complete"), &[]).await;
    completed["subscription"].as_str().expect("the checkout created a subscription").to_owned()
}

#[tokio::test]
async fn checkout_then_signed_webhooks_make_a_free_user_premium_with_no_manual_step() {
    let app = TestApp::spawn().await;
    app.receive_stripe_webhooks().await;
    let user = app.sign_in(Tier::Free).await;

    subscribe(&app, &user, "PREMIUM").await;

    let session = app.session_until(&user, |s| s["tier"] == "PREMIUM").await;
    assert_eq!(session["tier"], "PREMIUM", "{session}");
    assert_eq!(session["features"]["advancedSliders"], true);
    assert_eq!(session["subscriptionStatus"], "active");
    assert_eq!(session["subscription"]["cancelAtPeriodEnd"], false);
    assert!(session["subscription"]["currentPeriodEnd"].as_i64().unwrap() > OffsetDateTime::now_utc().unix_timestamp());

    let again = app.post("/billing/checkout", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.error_code(), "CONFLICT");
}

#[tokio::test]
async fn upgrades_downgrades_and_cancellations_follow_stripe() {
    let app = TestApp::spawn().await;
    let (user, subscription) = subscribed(&app, "BASIC").await;
    let path = format!("v1/subscriptions/{subscription}");

    app.stripe_post(&path, &[("items[0][plan]", "price_premium_monthly")]).await;
    assert_eq!(app.session_until(&user, |s| s["tier"] == "PREMIUM").await["tier"], "PREMIUM", "upgrade");

    app.stripe_post(&path, &[("items[0][plan]", "price_basic_monthly")]).await;
    assert_eq!(app.session_until(&user, |s| s["tier"] == "BASIC").await["tier"], "BASIC", "downgrade");

    app.stripe_post(&path, &[("cancel_at_period_end", "true")]).await;
    let ending = app.session_until(&user, |s| s["subscription"]["cancelAtPeriodEnd"] == true).await;
    assert_eq!(ending["subscription"]["cancelAtPeriodEnd"], true, "{ending}");
    assert_eq!(ending["tier"], "BASIC", "kept until the period ends");

    app.stripe_delete(&path).await;
    let ended = app.session_until(&user, |s| s["tier"] == "FREE").await;
    assert_eq!(ended["tier"], "FREE", "{ended}");
    assert_eq!(ended["subscriptionStatus"], "canceled");
    assert_eq!(ended["features"]["advancedSliders"], false);
}

fn event(id: &str, kind: &str, object: Value) -> String {
    json!({ "id": id, "object": "event", "type": kind, "created": OffsetDateTime::now_utc().unix_timestamp(), "data": { "object": object } })
        .to_string()
}

/// The delivery was applied: synced to `tier`, or it found a fresher read of the subscription
/// already stored (other tests' webhook receivers and the reconciliation test may sync the same
/// subscription concurrently; the user's row is then checked separately).
fn assert_applied(response: &TestResponse, tier: &str) {
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["duplicate"], false, "{}", response.body);
    match response.body["applied"]["result"].as_str() {
        Some("synced") => assert_eq!(response.body["applied"]["tier"], tier, "{}", response.body),
        Some("stale") => {}
        _ => panic!("not applied: {}", response.body),
    }
}

async fn signed(app: &TestApp, payload: &str) -> String {
    signature::header(&app.webhook_secret().await, OffsetDateTime::now_utc().unix_timestamp(), payload.as_bytes())
}

/// A user subscribed to `tier` in Stripe, with no webhook receiver of this test's own (other
/// tests' receivers may still apply its events: assertions must hold either way).
async fn subscribed_quietly(app: &TestApp, tier: &str) -> (User, Value) {
    let user = app.sign_in(Tier::Free).await;
    let id = subscribe(app, &user, tier).await;
    let subscription = app.stripe_get(&format!("v1/subscriptions/{id}")).await;
    (user, subscription)
}

/// A user subscribed to `tier` through Checkout, with this test's own webhook receiver, once
/// the subscription's events have given the account its tier. The subscription's id.
async fn subscribed(app: &TestApp, tier: &str) -> (User, String) {
    app.receive_stripe_webhooks().await;
    let user = app.sign_in(Tier::Free).await;
    let subscription = subscribe(app, &user, tier).await;
    let session = app.session_until(&user, |s| s["tier"] == tier).await;
    assert_eq!(session["tier"], tier, "{session}");
    (user, subscription)
}

/// An event as Stripe delivers it: its id, its body and a valid signature header.
struct Delivery {
    id: String,
    payload: String,
    header: String,
}

async fn delivery(app: &TestApp, id_prefix: &str, kind: &str, object: Value) -> Delivery {
    let id = unique(id_prefix);
    let payload = event(&id, kind, object);
    let header = signed(app, &payload).await;
    Delivery { id, payload, header }
}

/// A user quietly subscribed to `tier`, and a signed `customer.subscription.updated` about it.
async fn subscription_updated(app: &TestApp, tier: &str, id_prefix: &str) -> (User, Delivery) {
    let (user, subscription) = subscribed_quietly(app, tier).await;
    (user, delivery(app, id_prefix, "customer.subscription.updated", subscription).await)
}

#[tokio::test]
async fn the_same_event_five_times_is_applied_once() {
    let app = TestApp::spawn().await;
    let (user, Delivery { payload, header, .. }) = subscription_updated(&app, "BASIC", "evt_dup_").await;

    let mut applied = 0;
    for _ in 0..5 {
        let response = app.deliver(&payload, Some(&header)).await;
        assert_eq!(response.status, 200, "{}", response.body);
        if response.body["duplicate"] == false {
            applied += 1;
            assert_applied(&response, "BASIC");
        }
    }

    assert_eq!(applied, 1);
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "BASIC");
}

#[tokio::test]
async fn events_in_reverse_order_end_in_stripes_state() {
    let app = TestApp::spawn().await;
    let (user, subscription) = subscribed_quietly(&app, "PREMIUM").await;
    let id = subscription["id"].as_str().unwrap().to_owned();
    let created = event(&unique("evt_c_"), "customer.subscription.created", subscription.clone());
    app.stripe_delete(&format!("v1/subscriptions/{id}")).await;
    let mut canceled = subscription;
    canceled["status"] = "canceled".into();
    let deleted = event(&unique("evt_d_"), "customer.subscription.deleted", canceled);

    // The deletion arrives first, the creation last: Stripe now holds a canceled subscription.
    for payload in [&deleted, &created] {
        let response = app.deliver(payload, Some(&signed(&app, payload).await)).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }

    let session = app.get("/auth/session", &user).await.body;
    assert_eq!(session["tier"], "FREE", "{session}");
    assert_eq!(session["subscriptionStatus"], "canceled");
}

#[tokio::test]
async fn a_price_that_is_not_configured_never_grants_a_tier() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let price = unique("price_rogue_");
    app.stripe_post(
        "v1/plans",
        &[
            ("id", &price),
            ("product", "prod_voice_premium"),
            ("amount", "1"),
            ("currency", "usd"),
            ("interval", "month"),
        ],
    )
    .await;
    let customer = app.app.users.get(&user.id).await.unwrap().unwrap();
    let customer =
        voice_core::flows::customers::ensure_customer(&app.app.users, app.app.stripe().await.unwrap(), &customer)
            .await
            .unwrap();
    app.add_card(&customer, "4242424242424242").await;
    let subscription = app
        .stripe_post(
            "v1/subscriptions",
            &[("customer", &customer), ("items[0][plan]", &price), ("metadata[userId]", user.id.as_str())],
        )
        .await;
    assert_eq!(subscription["status"], "active");

    let payload = event(&unique("evt_rogue_"), "customer.subscription.created", subscription);
    let response = app.deliver(&payload, Some(&signed(&app, &payload).await)).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "FREE");
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged() {
    let app = TestApp::spawn().await;
    let payload = event(&unique("evt_unknown_"), "payout.paid", json!({ "object": "payout", "id": "po_1" }));
    let response = app.deliver(&payload, Some(&signed(&app, &payload).await)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["applied"]["result"], "ignored");
}

#[tokio::test]
async fn bad_deliveries_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (_user, Delivery { id: event_id, payload, header: good }) =
        subscription_updated(&app, "PREMIUM", "evt_forged_").await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let secret = app.webhook_secret().await;
    let mut altered = payload.clone().into_bytes();
    altered[10] ^= 1;
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024));

    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("bad signature", payload.clone().into_bytes(), Some(format!("t={now},v1={}", "0".repeat(64)))),
        ("missing header", payload.clone().into_bytes(), None),
        ("wrong secret", payload.clone().into_bytes(), Some(signature::header("whsec_wrong", now, payload.as_bytes()))),
        ("301 s old", payload.clone().into_bytes(), Some(signature::header(&secret, now - 301, payload.as_bytes()))),
        ("one byte altered", altered, Some(good.clone())),
        ("not JSON", b"not json".to_vec(), Some(signature::header(&secret, now, b"not json"))),
        ("1 MB", huge.clone().into_bytes(), Some(signature::header(&secret, now, huge.as_bytes()))),
    ];
    for (case, body, header) in cases {
        let headers: Vec<(&str, &str)> = header.as_deref().map(|h| ("stripe-signature", h)).into_iter().collect();
        let response: TestResponse = app.request_raw(Method::POST, "/billing/webhook", &headers, body).await;
        assert_eq!(response.status, 400, "{case}: {}", response.body);
    }

    // (The user's tier is not asserted here: other tests' webhook receivers may apply this
    // checkout's genuine events meanwhile. What matters is that no refused delivery was recorded.)
    assert!(event_row(&app, &event_id).await.is_none(), "a refused event was recorded");
    assert_applied(&app.deliver(&payload, Some(&good)).await, "PREMIUM");
}

#[tokio::test]
async fn the_portal_returns_a_session_url_for_the_callers_customer() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    let response = app.post("/billing/portal", &user, None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body["portalUrl"].as_str().unwrap().contains("/portal/bps_"));
    let stored = app.app.users.get(&user.id).await.unwrap().unwrap();
    assert!(stored.stripe_customer_id.is_some(), "the customer was created on first need");
}

#[tokio::test]
async fn a_transient_failure_answers_5xx_and_the_retry_is_applied() {
    let app = TestApp::spawn().await;
    let (user, Delivery { payload, header, .. }) = subscription_updated(&app, "BASIC", "evt_retry_").await;
    // Stripe unreachable while the event is applied (the secrets are already loaded).
    let stripe_down = TestApp::builder()
        .config(|c| c.stripe.api_base = integration_tests::DEAD_ENDPOINT.parse().unwrap())
        .spawn()
        .await;

    let failed = stripe_down.deliver(&payload, Some(&header)).await;
    assert_eq!(failed.status, 503, "{}", failed.body);

    let retried = app.deliver(&payload, Some(&header)).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["duplicate"], false, "the failed attempt did not consume the event");
    assert_applied(&retried, "BASIC");
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "BASIC");
}

async fn event_row(app: &TestApp, event_id: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    app.dynamodb
        .get_item()
        .table_name(&app.app.config.tables.webhook_events)
        .key("eventId", AttributeValue::S(event_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn a_subscriber_cannot_check_out_a_second_subscription() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let first = subscribe(&app, &user, "BASIC").await;
    // Whether or not the webhook has arrived yet, Stripe already holds a live subscription.
    for tier in ["PREMIUM", "BASIC"] {
        let again = app.post("/billing/checkout", &user, Some(&json!({ "tier": tier }))).await;
        assert_eq!(again.status, 409, "{tier}: {}", again.body);
        assert_eq!(again.error_code(), "CONFLICT");
        assert!(again.body["error"]["message"].as_str().unwrap().contains("/billing/subscription"));
    }
    let customer = app.app.users.get(&user.id).await.unwrap().unwrap().stripe_customer_id.unwrap();
    let open = app.stripe_get(&format!("v1/subscriptions?customer={customer}")).await;
    let ids: Vec<&str> = open["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.as_str()], "one live subscription");
}

#[tokio::test]
async fn an_event_about_a_subscription_stripe_does_not_know_is_acknowledged_as_ignored() {
    let app = TestApp::spawn().await;
    let object = json!({ "id": "sub_nope", "object": "subscription", "customer": "cus_nope", "status": "active",
                         "items": { "data": [] } });
    let Delivery { id: event_id, payload, header } =
        delivery(&app, "evt_nope_", "customer.subscription.updated", object).await;
    let response = app.deliver(&payload, Some(&header)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["applied"]["result"], "ignored");
    let retried = app.deliver(&payload, Some(&header)).await;
    assert_eq!((retried.status, &retried.body["duplicate"]), (200, &json!(true)), "recorded as done");
    let row = event_row(&app, &event_id).await.unwrap();
    assert_eq!(row["outcome"].as_s().unwrap(), "ignored");
}

#[tokio::test]
async fn an_extreme_signature_timestamp_is_refused_not_a_crash() {
    let app = TestApp::spawn().await;
    let payload = event(&unique("evt_t_"), "invoice.paid", json!({ "object": "invoice", "id": "in_1" }));
    for header in ["t=-9223372036854775808,v1=00", "t=9223372036854775807,v1=00", "t=-1,v1=00"] {
        let response = app.deliver(&payload, Some(header)).await;
        assert_eq!(response.status, 400, "{header}: {}", response.body);
        assert_eq!(response.error_code(), "VALIDATION_FAILED");
    }
}

#[tokio::test]
async fn the_same_event_five_times_concurrently_is_applied_once() {
    let app = TestApp::spawn().await;
    let (user, Delivery { payload, header, .. }) = subscription_updated(&app, "BASIC", "evt_race_").await;

    let deliveries = (0..5).map(|_| app.deliver(&payload, Some(&header)));
    let responses = futures_util::future::join_all(deliveries).await;
    let applied = responses.iter().filter(|r| r.status == 200 && r.body["duplicate"] == false).count();
    assert_eq!(applied, 1, "{:?}", responses.iter().map(|r| (r.status, r.body.to_string())).collect::<Vec<_>>());
    for other in responses.iter().filter(|r| !(r.status == 200 && r.body["duplicate"] == false)) {
        // Either it came after the apply (a duplicate) or during it (retry later).
        assert!(other.status == 409 || other.body["duplicate"] == true, "{}: {}", other.status, other.body);
    }
    assert_eq!(app.deliver(&payload, Some(&header)).await.body["duplicate"], true);
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "BASIC");
}

#[tokio::test]
async fn a_delivery_killed_mid_apply_is_applied_by_the_next_one() {
    let app = TestApp::spawn().await;
    let (user, Delivery { id: event_id, payload, header }) = subscription_updated(&app, "PREMIUM", "evt_killed_").await;
    // What a delivery killed mid-apply (Lambda timeout, crash) leaves behind: its lease.
    let lease = app.app.config.billing.webhook_lease;
    let now_ms = voice_core::clock::unix_ms(OffsetDateTime::now_utc());
    let claim =
        app.app.webhook_events.claim(&event_id, "customer.subscription.updated", now_ms, lease.as_millis() as i64);
    assert!(matches!(claim.await.unwrap(), Claim::Leased { .. }));

    let during = app.deliver(&payload, Some(&header)).await;
    assert_eq!(during.status, 409, "the lease is live: retry later ({})", during.body);

    // Stripe's retry comes after the lease ran out (its first retry is minutes later).
    let later = TestApp::builder().later(time::Duration::seconds(lease.as_secs() as i64 + 1)).spawn().await;
    let header =
        signature::header(&later.webhook_secret().await, later.app.clock.now().unix_timestamp(), payload.as_bytes());
    let retried = later.deliver(&payload, Some(&header)).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["duplicate"], false, "the expired lease was taken over");
    assert_applied(&retried, "PREMIUM");
    let row = event_row(&app, &event_id).await.unwrap();
    assert_eq!(row["status"].as_s().unwrap(), "done");
    assert_eq!(row["attempts"].as_n().unwrap(), "2");
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "PREMIUM");
}

#[tokio::test]
async fn a_failure_before_the_work_leaves_no_claim() {
    let app = TestApp::spawn().await;
    let (_user, Delivery { id: event_id, payload, header }) = subscription_updated(&app, "BASIC", "evt_cold_").await;
    // The Stripe client's cold-start secret fetch fails.
    let broken = TestApp::builder()
        .config(|c| c.secrets.stripe_secret_key = Some("/voice-local/test/stripe-secret-key/missing".into()))
        .spawn()
        .await;
    let failed = broken.deliver(&payload, Some(&header)).await;
    assert!(failed.status >= 500, "{}: {}", failed.status, failed.body);
    assert!(event_row(&app, &event_id).await.is_none(), "nothing was claimed");

    let retried = app.deliver(&payload, Some(&header)).await;
    assert_eq!((retried.status, &retried.body["duplicate"]), (200, &json!(false)), "{}", retried.body);
}

#[tokio::test]
async fn an_older_read_written_last_never_replaces_a_newer_one() {
    let app = TestApp::spawn().await;
    let (user, subscription) = subscribed_quietly(&app, "BASIC").await;
    let id = subscription["id"].as_str().unwrap().to_owned();
    let core = &app.app;
    let billing = voice_core::assemble::billing(core).await.unwrap();
    let now = OffsetDateTime::now_utc();

    let older = billing.read(&id).await.unwrap().unwrap();
    app.stripe_delete(&format!("v1/subscriptions/{id}")).await;
    let newer = billing.read(&id).await.unwrap().unwrap();
    assert!(newer.read_at_ms > older.read_at_ms, "{} then {}", older.read_at_ms, newer.read_at_ms);

    let applied = billing.write(&newer, now).await.unwrap();
    // (Stale only if the reconciliation test synced it meanwhile, from an even fresher read.)
    assert!(matches!(applied, Applied::Synced { tier: Tier::Free, .. } | Applied::Stale { .. }), "{applied:?}");
    let late = billing.write(&older, now).await.unwrap();
    assert!(matches!(late, Applied::Stale { .. }), "{late:?}");

    let session = app.get("/auth/session", &user).await.body;
    let state = (session["tier"].as_str(), session["subscriptionStatus"].as_str());
    assert_eq!(state, (Some("FREE"), Some("canceled")), "{session}");
}

#[tokio::test]
async fn a_second_live_subscription_is_cancelled_and_the_first_stays() {
    let app = TestApp::spawn().await;
    let (user, basic) = subscribed_quietly(&app, "BASIC").await;
    let customer = basic["customer"].as_str().unwrap().to_owned();
    // The first one's checkout was applied long ago.
    let first = event(&unique("evt_first_"), "customer.subscription.created", basic.clone());
    assert_eq!(app.deliver(&first, Some(&signed(&app, &first).await)).await.status, 200);
    // A second subscription made by hand in the Stripe dashboard.
    let premium = app
        .stripe_post(
            "v1/subscriptions",
            &[
                ("customer", &customer),
                ("items[0][plan]", "price_premium_monthly"),
                ("metadata[userId]", user.id.as_str()),
            ],
        )
        .await;
    let premium_id = premium["id"].as_str().unwrap().to_owned();
    // Events about both arrive, in either order: the user keeps the first (BASIC), and the
    // second is cancelled.
    for object in [premium, basic] {
        let payload = event(&unique("evt_two_"), "customer.subscription.updated", object);
        let response = app.deliver(&payload, Some(&signed(&app, &payload).await)).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "BASIC");
    assert_eq!(app.stripe_get(&format!("v1/subscriptions/{premium_id}")).await["status"], "canceled");
}

#[tokio::test]
async fn invoices_are_listed_for_their_owner_only_newest_first_and_paged() {
    let app = TestApp::spawn().await;
    let (owner, subscription) = subscribed_quietly(&app, "BASIC").await;
    // Moving to yearly billing issues a second invoice at once (localstripe bills on interval changes).
    let id = subscription["id"].as_str().unwrap();
    app.stripe_post(&format!("v1/subscriptions/{id}"), &[("items[0][plan]", "price_basic_yearly")]).await;

    let all = app.get("/billing/invoices", &owner).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let invoices = all.body["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 2, "{}", all.body);
    // Newest first, as Stripe lists them.
    let customer = app.app.users.get(&owner.id).await.unwrap().unwrap().stripe_customer_id.unwrap();
    let at_stripe = app.stripe_get(&format!("v1/invoices?customer={customer}")).await;
    let order: Vec<&Value> = at_stripe["data"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
    let ours: Vec<&Value> = invoices.iter().map(|i| &i["invoiceId"]).collect();
    assert_eq!(ours, order);
    for invoice in invoices {
        assert!(invoice["invoiceId"].as_str().unwrap().starts_with("in_"));
        assert!(invoice["amountDue"].as_i64().unwrap() >= 0);
        assert!(!invoice["currency"].as_str().unwrap().is_empty());
    }
    assert!(all.body["nextCursor"].is_null());

    let first = app.get("/billing/invoices?limit=1", &owner).await;
    assert_eq!(first.body["invoices"].as_array().unwrap().len(), 1);
    let cursor = first.body["nextCursor"].as_str().expect("a next page").to_owned();
    let second = app.get(&format!("/billing/invoices?limit=1&cursor={cursor}"), &owner).await;
    assert_eq!(second.body["invoices"][0]["invoiceId"], invoices[1]["invoiceId"], "{}", second.body);

    // Another user never sees them: with no customer, or with a customer of their own.
    let stranger = app.sign_in(Tier::Free).await;
    let none = app.get("/billing/invoices", &stranger).await;
    assert_eq!((none.status, none.body["invoices"].as_array().unwrap().len()), (200, 0));
    let (other, _) = subscribed_quietly(&app, "PREMIUM").await;
    let theirs = app.get("/billing/invoices", &other).await;
    let ids: Vec<&Value> = theirs.body["invoices"].as_array().unwrap().iter().map(|i| &i["invoiceId"]).collect();
    assert_eq!(ids.len(), 1);
    assert!(invoices.iter().all(|i| !ids.contains(&&i["invoiceId"])));

    for bad in ["limit=0", "limit=101", "limit=ten", "cursor=sub_123", "cursor=in_x%26customer%3Dcus_1"] {
        let response = app.get(&format!("/billing/invoices?{bad}"), &owner).await;
        assert_eq!(response.status, 400, "{bad}: {}", response.body);
        assert_eq!(response.error_code(), "VALIDATION_FAILED");
    }
}

#[tokio::test]
async fn the_nightly_reconciliation_repairs_what_lost_webhooks_left_wrong() {
    let app = TestApp::spawn().await;
    // A purchase whose every event was lost: Stripe holds BASIC, we hold FREE.
    let buyer = app.sign_in(Tier::Free).await;
    subscribe(&app, &buyer, "BASIC").await;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let never_synced = [("subscriptionTier", s("FREE")), ("subscriptionReadAt", AttributeValue::N("0".into()))];
    app.set_user(&buyer.id, &never_synced).await;
    // A cancellation whose event was lost: Stripe holds a canceled subscription, we hold PREMIUM.
    let (leaver, premium) = subscribed_quietly(&app, "PREMIUM").await;
    let premium_id = premium["id"].as_str().unwrap();
    app.stripe_delete(&format!("v1/subscriptions/{premium_id}")).await;
    let stale = [
        ("subscriptionTier", s("PREMIUM")),
        ("subscriptionStatus", s("active")),
        ("subscriptionId", s(premium_id)),
        ("subscriptionReadAt", AttributeValue::N("0".into())),
    ];
    app.set_user(&leaver.id, &stale).await;
    assert_eq!(app.get("/auth/session", &leaver).await.body["tier"], "PREMIUM", "wrong before the run");

    let file = fs::read_to_string(format!("{EVENTS}/reconcile-schedule.json")).unwrap();
    let schedule: EventBridgeEvent = serde_json::from_str(&file).unwrap();
    let report = reconcile::handle(app.function("reconcile"), schedule.clone()).await.unwrap();
    assert!(report.repaired >= 2, "{report:?}");

    let bought = app.get("/auth/session", &buyer).await.body;
    assert_eq!((bought["tier"].as_str(), bought["subscriptionStatus"].as_str()), (Some("BASIC"), Some("active")));
    let left = app.get("/auth/session", &leaver).await.body;
    assert_eq!((left["tier"].as_str(), left["subscriptionStatus"].as_str()), (Some("FREE"), Some("canceled")));

    // Idempotent: a second run leaves both as they are.
    reconcile::handle(app.function("reconcile"), schedule).await.unwrap();
    assert_eq!(app.get("/auth/session", &buyer).await.body["tier"], "BASIC");
    assert_eq!(app.get("/auth/session", &leaver).await.body["tier"], "FREE");
}

#[tokio::test]
async fn a_failed_payment_keeps_access_in_grace_and_raises_an_alert_and_one_email_per_invoice() {
    let app = TestApp::spawn().await;
    let (user, subscription) = subscribed(&app, "BASIC").await;
    let customer = app.app.users.get(&user.id).await.unwrap().unwrap().stripe_customer_id.unwrap();

    // The next payment needs 3-D Secure and the authentication fails (localstripe's only way).
    app.add_card(&customer, "4000000000003220").await;
    // Moving to yearly billing issues an invoice at once (localstripe bills on interval changes).
    app.stripe_post(&format!("v1/subscriptions/{subscription}"), &[("items[0][plan]", "price_basic_yearly")]).await;
    let invoices = app.stripe_get(&format!("v1/invoices?customer={customer}")).await;
    let open = invoices["data"].as_array().unwrap().iter().find(|i| i["status"] == "open").unwrap().clone();
    let invoice_id = open["id"].as_str().unwrap().to_owned();
    let payments = app.stripe_get(&format!("v1/invoice_payments?invoice={invoice_id}")).await;
    let intent = payments["data"][0]["payment"]["payment_intent"].as_str().unwrap();
    let intent = app.stripe_get(&format!("v1/payment_intents/{intent}")).await;
    assert_eq!(intent["status"], "requires_action");
    let (intent_id, secret) = (intent["id"].as_str().unwrap(), intent["client_secret"].as_str().unwrap());
    app.stripe_post(
        &format!("v1/payment_intents/{intent_id}/_authenticate"),
        &[("client_secret", secret), ("success", "false")],
    )
    .await;

    let session = app.session_until(&user, |s| s["subscriptionStatus"] == "past_due").await;
    assert_eq!(session["subscriptionStatus"], "past_due", "{session}");
    assert_eq!(session["tier"], "BASIC", "access is kept while Stripe retries (grace)");
    let session = app.session_until(&user, |s| s["billingAlert"]["kind"] == "payment_failed").await;
    let alert = &session["billingAlert"];
    assert_eq!(alert["kind"], "payment_failed", "{session}");
    assert_eq!(alert["invoiceId"], invoice_id.as_str());
    assert_eq!(alert["portal"], "POST /billing/portal");
    assert!(alert["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get("/user/profile", &user).await.body["billingAlert"], *alert);

    // Stripe sends a new event per failed attempt, and may deliver each several times.
    let failed_again = event(&unique("evt_fail_"), "invoice.payment_failed", open.clone());
    let mut deliveries = vec![failed_again.clone(); 5];
    deliveries.extend((0..5).map(|_| event(&unique("evt_fail_"), "invoice.payment_failed", open.clone())));
    let mut headers = Vec::new();
    for payload in &deliveries {
        headers.push(signed(&app, payload).await);
    }
    let sent =
        futures_util::future::join_all(deliveries.iter().zip(&headers).map(|(p, h)| app.deliver(p, Some(h)))).await;
    for response in &sent {
        assert!(matches!(response.status, 200 | 409), "{}: {}", response.status, response.body);
    }
    let emails = app.emails_to(user.email.as_str()).await;
    assert_eq!(emails.len(), 1, "one email per failed invoice: {emails:?}");
    assert_eq!(emails[0]["template"], app.app.config.billing.email.as_ref().unwrap().payment_failed_template.as_str());
    assert_eq!(emails[0]["source"], app.app.config.billing.email.as_ref().unwrap().sender.as_str());
    let data: Value = serde_json::from_str(emails[0]["template_data"].as_str().unwrap()).unwrap();
    assert!(data["amount"].as_str().unwrap().ends_with("USD"), "{data}");

    // Paid with a good card: the alert goes.
    app.add_card(&customer, "4242424242424242").await;
    app.stripe_post(&format!("v1/invoices/{invoice_id}/pay"), &[]).await;
    let paid = app.stripe_get(&format!("v1/invoices/{invoice_id}")).await;
    assert_eq!(paid["status"], "paid");
    let payload = event(&unique("evt_paid_"), "invoice.paid", paid);
    let response = app.deliver(&payload, Some(&signed(&app, &payload).await)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let session = app.get("/auth/session", &user).await.body;
    assert!(session["billingAlert"].is_null(), "{session}");
    assert_eq!(app.emails_to(user.email.as_str()).await.len(), 1);
}

fn live_subscriptions(open: &Value) -> Vec<&str> {
    let data = open["data"].as_array().unwrap();
    data.iter().filter(|s| s["status"] == "active").map(|s| s["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_upgrade_changes_the_one_subscription_now_with_proration() {
    let app = TestApp::spawn().await;
    let (user, id) = subscribed(&app, "BASIC").await;

    let response = app.post("/billing/subscription", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!((response.body["change"].as_str(), response.body["tier"].as_str()), (Some("upgraded"), Some("PREMIUM")));

    let session = app.session_until(&user, |s| s["tier"] == "PREMIUM").await;
    assert_eq!(session["tier"], "PREMIUM", "the tier follows the webhook: {session}");
    assert_eq!(session["subscription"]["subscriptionId"], id.as_str(), "changed in place");
    let customer = app.app.users.get(&user.id).await.unwrap().unwrap().stripe_customer_id.unwrap();
    let open = app.stripe_get(&format!("v1/subscriptions?customer={customer}")).await;
    assert_eq!(live_subscriptions(&open), [id.as_str()], "one live subscription");
    assert_eq!(open["data"][0]["items"]["data"][0]["plan"]["id"], "price_premium_monthly");
    let updates = app.stripe_get(&format!("_test/subscriptions/{id}/updates")).await;
    let update = &updates[0];
    assert_eq!(update["items[0][price]"], "price_premium_monthly", "{updates}");
    assert_eq!(update["proration_behavior"], "always_invoice", "the difference invoiced at once: {updates}");
    assert_eq!(update["payment_behavior"], "pending_if_incomplete", "applied only once paid: {updates}");
    assert!(update["items[0][id]"].as_str().unwrap().starts_with("si_"), "the existing item, not a new one");
    let charges = app.stripe_get(&format!("_test/subscriptions/{id}/charges")).await;
    let charged = &charges[0];
    assert_eq!(charged["status"], "succeeded", "paid before the change applied: {charges}");
    let difference = charged["amount"].as_i64().unwrap();
    assert!((1..=2000).contains(&difference), "the remaining PREMIUM time less the BASIC credit: {charges}");
}

#[tokio::test]
async fn an_upgrade_whose_payment_fails_leaves_the_old_plan() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let id = subscribe(&app, &user, "BASIC").await;
    voice_core::assemble::billing(&app.app)
        .await
        .unwrap()
        .sync_subscription(&id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let customer = app.app.users.get(&user.id).await.unwrap().unwrap().stripe_customer_id.unwrap();
    // A card that attaches but whose charges are declined.
    app.add_card(&customer, "4000000000000341").await;

    let response = app.post("/billing/subscription", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!((response.status, response.error_code()), (409, "CONFLICT"), "{}", response.body);
    assert!(response.body["error"]["portalUrl"].as_str().is_some_and(|u| u.contains("/portal/")), "{}", response.body);
    let subscription = app.stripe_get(&format!("v1/subscriptions/{id}")).await;
    assert_eq!(subscription["items"]["data"][0]["plan"]["id"], "price_basic_monthly", "unchanged at Stripe");
    voice_core::assemble::billing(&app.app)
        .await
        .unwrap()
        .sync_subscription(&id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "BASIC", "no PREMIUM without its payment");
}

#[tokio::test]
async fn no_plan_change_while_a_payment_is_owed() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let id = subscribe(&app, &user, "BASIC").await;
    let billing = voice_core::assemble::billing(&app.app).await.unwrap();
    billing.sync_subscription(&id, OffsetDateTime::now_utc()).await.unwrap();
    let customer = app.app.users.get(&user.id).await.unwrap().unwrap().stripe_customer_id.unwrap();
    // The next payment needs 3-D Secure and its authentication fails: the subscription is past due.
    app.add_card(&customer, "4000000000003220").await;
    app.stripe_post(&format!("v1/subscriptions/{id}"), &[("items[0][plan]", "price_basic_yearly")]).await;
    let invoices = app.stripe_get(&format!("v1/invoices?customer={customer}")).await;
    let open = invoices["data"].as_array().unwrap().iter().find(|i| i["status"] == "open").unwrap().clone();
    let payments = app.stripe_get(&format!("v1/invoice_payments?invoice={}", open["id"].as_str().unwrap())).await;
    let intent = payments["data"][0]["payment"]["payment_intent"].as_str().unwrap();
    let intent = app.stripe_get(&format!("v1/payment_intents/{intent}")).await;
    let (intent_id, secret) = (intent["id"].as_str().unwrap(), intent["client_secret"].as_str().unwrap());
    app.stripe_post(
        &format!("v1/payment_intents/{intent_id}/_authenticate"),
        &[("client_secret", secret), ("success", "false")],
    )
    .await;
    assert_eq!(app.stripe_get(&format!("v1/subscriptions/{id}")).await["status"], "past_due");
    billing.sync_subscription(&id, OffsetDateTime::now_utc()).await.unwrap();

    let response = app.post("/billing/subscription", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!((response.status, response.error_code()), (409, "CONFLICT"), "{}", response.body);
    assert!(response.body["error"]["message"].as_str().unwrap().contains("past_due"), "{}", response.body);
    assert!(response.body["error"]["portalUrl"].is_string(), "{}", response.body);
    assert_eq!(
        app.stripe_get(&format!("_test/subscriptions/{id}/updates")).await.as_array().unwrap().len(),
        1,
        "nothing sent to Stripe but the test's own interval change"
    );
}

#[tokio::test]
async fn a_downgrade_waits_for_the_period_end_and_an_upgrade_back_cancels_it() {
    let app = TestApp::spawn().await;
    app.receive_stripe_webhooks().await;
    let user = app.sign_in(Tier::Free).await;
    let id = subscribe(&app, &user, "PREMIUM").await;
    let session = app.session_until(&user, |s| s["tier"] == "PREMIUM").await;
    let period_end = session["subscription"]["currentPeriodEnd"].as_i64().unwrap();

    let response = app.post("/billing/subscription", &user, Some(&json!({ "tier": "BASIC" }))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["change"], "scheduled");
    assert_eq!(response.body["effectiveAt"], period_end);
    let subscription = app.stripe_get(&format!("v1/subscriptions/{id}")).await;
    assert_eq!(subscription["items"]["data"][0]["plan"]["id"], "price_premium_monthly", "nothing changes now");
    let schedule =
        app.stripe_get(&format!("v1/subscription_schedules/{}", subscription["schedule"].as_str().unwrap())).await;
    assert_eq!(schedule["phases"][1]["items"][0]["price"], "price_basic_monthly");
    assert_eq!(schedule["phases"][1]["start_date"], period_end);
    assert_eq!(app.get("/auth/session", &user).await.body["tier"], "PREMIUM", "paid for until the period ends");

    // Asking for the current plan again cancels the planned move down.
    let kept = app.post("/billing/subscription", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!((kept.status, kept.body["change"].as_str()), (200, Some("kept")), "{}", kept.body);
    assert!(app.stripe_get(&format!("v1/subscriptions/{id}")).await["schedule"].is_null());
    let again = app.post("/billing/subscription", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!(again.status, 409, "already on it: {}", again.body);

    // Planned again, and the period ends: the tier follows.
    let response = app.post("/billing/subscription", &user, Some(&json!({ "tier": "BASIC" }))).await;
    assert_eq!(response.body["change"], "scheduled", "{}", response.body);
    let schedule = app.stripe_get(&format!("v1/subscriptions/{id}")).await["schedule"].as_str().unwrap().to_owned();
    app.stripe_post(&format!("_test/subscription_schedules/{schedule}/advance"), &[]).await;
    let session = app.session_until(&user, |s| s["tier"] == "BASIC").await;
    assert_eq!(session["tier"], "BASIC", "{session}");
    assert_eq!(session["subscription"]["subscriptionId"], id.as_str());
}

#[tokio::test]
async fn plan_changes_need_a_live_subscription_and_a_paid_configured_plan() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let none = app.post("/billing/subscription", &user, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!(none.status, 409, "{}", none.body);
    assert!(none.body["error"]["message"].as_str().unwrap().contains("/billing/checkout"));
    for (body, field) in [
        (json!({ "tier": "FREE" }), "tier"),
        (json!({ "tier": "GOLD" }), "tier"),
        (json!({ "tier": "BASIC", "interval": "week" }), "interval"),
    ] {
        let response = app.post("/billing/subscription", &user, Some(&body)).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert!(response.body["error"]["fields"].get(field).is_some(), "{}", response.body);
    }
}
