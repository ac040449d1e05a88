//! Overage: generations past the allowance, allowed up to the user's cap, each reported once to
//! Stripe's Billing Meter (the stand-in's meters), from an outbox written with the recording.

use std::{collections::HashSet, sync::Arc};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{EVENTS, TestApp, User, VOICE, elevenlabs::Fault, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::domain::{tiers::Tier, usage::UsagePeriod};

fn this_month() -> UsagePeriod {
    UsagePeriod::containing(OffsetDateTime::now_utc())
}

/// A BASIC user whose subscription bills now (a customer of their own), with the month's 100
/// generations used and `cap_cents` allowed past them.
async fn past_the_allowance(app: &TestApp, cap_cents: u32) -> (User, String) {
    let user = app.sign_in(Tier::Basic).await;
    let email = format!("{}@example.test", unique("overage-"));
    let created = app.stripe_post("v1/customers", &[("email", email.as_str())]).await;
    let customer = created["id"].as_str().unwrap().to_owned();
    let fields = [
        ("stripeCustomerId", AttributeValue::S(customer.clone())),
        ("subscriptionStatus", AttributeValue::S("active".into())),
        ("usagePeriod", AttributeValue::S(this_month().to_string())),
        ("recordingsThisMonth", AttributeValue::N("100".into())),
    ];
    app.set_user(&user.id, &fields).await;
    let set = app.patch("/billing/settings", &user, &json!({ "overageCapCents": cap_cents })).await;
    assert_eq!(set.status, 200, "{}", set.body);
    (user, customer)
}

/// What the stand-in's meter counted for `customer`.
async fn metered(app: &TestApp, customer: &str) -> Vec<Value> {
    let response = app.stripe_setup(Method::GET, &format!("_test/meter_events?customer={customer}")).send().await;
    response.unwrap().json().await.unwrap()
}

fn speak(voice: &str) -> Value {
    json!({ "voiceId": voice, "text": format!("Past the plan, {}.", unique("")) })
}

async fn generations(app: &Arc<TestApp>, user: &User, n: usize) -> Vec<(u16, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (app, user) = (app.clone(), user.clone());
        tasks.spawn(async move {
            let response = app.post("/tts", &user, Some(&speak(VOICE))).await;
            (response.status, response.body)
        });
    }
    tasks.join_all().await
}

/// Runs the sweep as if `by_minutes` had passed (only one test may: a sweep sends every due
/// event, other tests' too).
async fn sweep_later(by_minutes: i64) -> voice_core::flows::upload_sweep::SweepReport {
    let later = TestApp::builder().later(time::Duration::minutes(by_minutes)).spawn().await;
    let schedule: EventBridgeEvent =
        serde_json::from_str(&std::fs::read_to_string(format!("{EVENTS}/sweep-schedule.json")).unwrap()).unwrap();
    sweep::handle(later.function("sweep"), schedule).await.unwrap()
}

#[tokio::test]
async fn fifty_concurrent_generations_past_the_allowance_are_fifty_meter_events_each_once() {
    let app = Arc::new(TestApp::spawn().await);
    // Two people, 25 each at once (a BASIC user may start 40 a minute).
    let (first, first_customer) = past_the_allowance(&app, 5_000).await;
    let (second, second_customer) = past_the_allowance(&app, 5_000).await;

    let (a, b) = tokio::join!(generations(&app, &first, 25), generations(&app, &second, 25));

    assert!(a.iter().chain(&b).all(|(status, _)| *status == 201), "{a:?} {b:?}");
    let mut identifiers = HashSet::new();
    for (user, customer) in [(&first, &first_customer), (&second, &second_customer)] {
        let events = metered(&app, customer).await;
        assert_eq!(events.len(), 25, "{events:?}");
        identifiers.extend(events.iter().map(|e| e["identifier"].as_str().unwrap().to_owned()));
        let stored = app.app.usage_events.of_period(&user.id, this_month()).await.unwrap();
        assert_eq!(stored.len(), 25);
        assert!(stored.iter().all(|s| s.sent_at.is_some()), "each marked sent");
        assert_eq!(app.counter(user).await.0, 125);
    }
    assert_eq!(identifiers.len(), 50, "one identifier per generation");
}

#[tokio::test]
async fn the_cap_holds_under_concurrency_and_names_itself() {
    let app = Arc::new(TestApp::spawn().await);
    // $2.00 at 10 cents: 20 generations past the plan.
    let (user, customer) = past_the_allowance(&app, 200).await;

    let answers = generations(&app, &user, 35).await;

    let made = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(made, 20, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_eq!((*status, body["error"]["code"].as_str()), (403, Some("LIMIT_REACHED")), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("overage cap of $2.00") && message.contains("the 20 more"), "{message}");
    }
    assert_eq!(app.counter(&user).await.0, 120);
    assert_eq!(metered(&app, &customer).await.len(), 20);
}

#[tokio::test]
async fn an_upstream_failure_past_the_allowance_reaches_no_meter() {
    let app = TestApp::spawn().await;
    let (user, customer) = past_the_allowance(&app, 500).await;
    let failing = app.elevenlabs().voice_that(Fault::Fail).await;

    let response = app.post("/tts", &user, Some(&speak(&failing))).await;

    assert!(response.status >= 500, "{}: {}", response.status, response.body);
    assert_eq!(app.counter(&user).await.0, 100, "the unit was given back");
    assert!(app.app.usage_events.of_period(&user.id, this_month()).await.unwrap().is_empty());
    assert!(metered(&app, &customer).await.is_empty(), "and no event waits to be sent");
}

#[tokio::test]
async fn an_event_its_generation_could_not_send_is_sent_once_by_the_sweep() {
    let app = TestApp::spawn().await;
    let (user, customer) = past_the_allowance(&app, 500).await;
    // Stripe fails the generation's own send (as if the instance died right after storing).
    let fail = [("customer", customer.as_str()), ("count", "1")];
    let failing = app.stripe_setup(Method::POST, "_test/meter_events/fail").form(&fail).send().await;
    assert!(failing.unwrap().status().is_success());

    let response = app.post("/tts", &user, Some(&speak(VOICE))).await;

    assert_eq!(response.status, 201, "{}", response.body);
    let stored = app.app.usage_events.of_period(&user.id, this_month()).await.unwrap();
    assert_eq!((stored.len(), stored[0].sent_at), (1, None), "stored with the recording, not sent");
    assert!(metered(&app, &customer).await.is_empty());
    // Before it is a minute old the sweep leaves it to its generation.
    sweep_later(0).await;
    assert!(metered(&app, &customer).await.is_empty());

    // Another sender reached Stripe with it and died before recording that: the sweep's send
    // is the same event, counted once.
    let event = &stored[0].event;
    let stripe = app.app.stripe().await.unwrap();
    let name = &app.app.config.billing.overage.as_ref().unwrap().meter_event;
    stripe.meter_event(name, &customer, &event.identifier(), event.timestamp, 1).await.unwrap();
    // (Other tests' sweeps may send it first: what counts is what Stripe holds.)
    sweep_later(3).await;
    sweep_later(3).await;

    let events = metered(&app, &customer).await;
    assert_eq!(events.len(), 1, "counted once: {events:?}");
    assert_eq!(events[0]["identifier"], event.identifier());
    let stored = app.app.usage_events.of_period(&user.id, this_month()).await.unwrap();
    assert!(stored[0].sent_at.is_some());
}

#[tokio::test]
async fn overage_settings_are_bounded_and_need_a_plan_and_a_subscription_to_bill() {
    let app = TestApp::spawn().await;
    let free = app.sign_in(Tier::Free).await;
    let refused = app.patch("/billing/settings", &free, &json!({ "overageCapCents": 500 })).await;
    assert_eq!((refused.status, refused.error_code()), (403, "FEATURE_LOCKED"), "{}", refused.body);

    let unbilled = app.sign_in(Tier::Basic).await;
    let refused = app.patch("/billing/settings", &unbilled, &json!({ "overageCapCents": 500 })).await;
    assert_eq!((refused.status, refused.error_code()), (409, "CONFLICT"), "{}", refused.body);

    let (user, _) = past_the_allowance(&app, 0).await;
    let too_much = app.patch("/billing/settings", &user, &json!({ "overageCapCents": 10_001 })).await;
    assert_eq!((too_much.status, too_much.error_code()), (400, "VALIDATION_FAILED"), "{}", too_much.body);
    assert!(too_much.body["error"]["fields"]["overageCapCents"].is_string(), "{}", too_much.body);
    let set = app.patch("/billing/settings", &user, &json!({ "overageCapCents": 1_234 })).await;
    assert_eq!(
        set.body,
        json!({ "overageCapCents": 1234, "overageUnitCents": 10, "overageUnits": 123, "maxOverageCapCents": 10000 })
    );
    assert_eq!(app.get("/billing/settings", &user).await.body, set.body);

    // With no cap the plan stops at its limit, as before.
    let (stops, customer) = past_the_allowance(&app, 0).await;
    let response = app.post("/tts", &stops, Some(&speak(VOICE))).await;
    assert_eq!((response.status, response.error_code()), (403, "LIMIT_REACHED"));
    assert!(!response.body["error"]["message"].as_str().unwrap().contains("overage"), "{}", response.body);
    assert!(metered(&app, &customer).await.is_empty());
}

#[tokio::test]
async fn a_streamed_generation_past_the_allowance_is_metered_and_erasure_removes_the_record() {
    let app = TestApp::spawn().await;
    let (user, customer) = past_the_allowance(&app, 500).await;

    let mut response = app.stream("/tts/stream", &user, &speak(VOICE)).await;
    assert_eq!(response.status, 200);
    while response.next_chunk().await.unwrap().is_some() {}

    let events = metered(&app, &customer).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let recording = response.headers["x-recording-id"].to_str().unwrap().to_owned();
    assert_eq!(events[0]["identifier"], format!("gen_{recording}"));
    assert_eq!(app.counter(&user).await.0, 101);

    let erased = app.delete("/user", &user).await;
    assert_eq!((erased.status, &erased.body["status"]), (200, &json!("erased")), "{}", erased.body);
    assert!(app.app.usage_events.of_period(&user.id, this_month()).await.unwrap().is_empty());
}

/// The data of each usage-alert email sent to `user`.
async fn alerts_to(app: &TestApp, user: &User) -> Vec<Value> {
    let template = app.app.config.billing.email.as_ref().unwrap().usage_alert_template.clone();
    let emails = app.emails_to(&user.email).await;
    let alerts = emails.into_iter().filter(|e| e["template"] == template.as_str());
    alerts.map(|e| serde_json::from_str(e["template_data"].as_str().unwrap()).unwrap()).collect()
}

async fn with_counter(app: &TestApp, user: &User, period: UsagePeriod, used: u32) {
    let fields = [
        ("usagePeriod", AttributeValue::S(period.to_string())),
        ("recordingsThisMonth", AttributeValue::N(used.to_string())),
    ];
    app.set_user(&user.id, &fields).await;
}

#[tokio::test]
async fn each_threshold_is_emailed_once_a_month_under_concurrency_and_shown_as_a_banner() {
    let app = Arc::new(TestApp::spawn().await);
    let user = app.sign_in(Tier::Free).await;
    assert!(app.get("/usage", &user).await.body.get("alert").is_none(), "no banner below 80 %");
    // FREE's 10: the 8th generation reaches 80 %, the 10th 100 %.
    with_counter(&app, &user, this_month(), 6).await;

    let answers = generations(&app, &user, 6).await;

    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 4, "{answers:?}");
    let alerts = alerts_to(&app, &user).await;
    let percents: Vec<_> = alerts.iter().map(|e| e["percent"].as_u64().unwrap()).collect();
    assert_eq!(percents.len(), 2, "one email per threshold: {alerts:?}");
    assert!(percents.contains(&80) && percents.contains(&100), "{alerts:?}");
    let what = alerts[0]["what"].as_str().unwrap();
    assert!(what.contains("10 recordings of your FREE plan"), "{what}");
    let banner = &app.get("/usage", &user).await.body["alert"];
    assert_eq!(banner, &json!({ "of": "allowance", "percent": 100 }));
    let session = app.get("/auth/session", &user).await;
    assert_eq!(session.body["usage"]["alert"], json!({ "of": "allowance", "percent": 100 }), "{}", session.body);

    // A new month starts the allowance and the alerts again.
    let month_ago = this_month().previous();
    with_counter(&app, &user, month_ago, 10).await;
    assert!(app.get("/usage", &user).await.body.get("alert").is_none(), "a fresh month");
    let first = app.post("/tts", &user, Some(&speak(VOICE))).await;
    assert_eq!((first.status, first.body["usage"]["used"].as_u64()), (201, Some(1)), "{}", first.body);
    with_counter(&app, &user, this_month(), 7).await;
    assert_eq!(app.post("/tts", &user, Some(&speak(VOICE))).await.status, 201);
    assert_eq!(alerts_to(&app, &user).await.len(), 2, "this month's 80 % was emailed already");
}

#[tokio::test]
async fn the_overage_caps_thresholds_are_emailed_too() {
    let app = Arc::new(TestApp::spawn().await);
    // $1.00 at 10 cents: 10 past the 100; 80 % of them is the 108th generation.
    let (user, _) = past_the_allowance(&app, 100).await;
    with_counter(&app, &user, this_month(), 106).await;

    let answers = generations(&app, &user, 6).await;

    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 4, "{answers:?}");
    let alerts = alerts_to(&app, &user).await;
    let mut seen: Vec<_> = alerts.iter().map(|e| e["percent"].as_u64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, [80, 100], "{alerts:?}");
    assert!(alerts.iter().all(|e| e["what"].as_str().unwrap().contains("$1.00 overage cap")), "{alerts:?}");
    assert_eq!(app.get("/usage", &user).await.body["alert"], json!({ "of": "overageCap", "percent": 100 }));
}

#[tokio::test]
async fn a_streamed_generation_reaching_a_threshold_emails_it() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, this_month(), 7).await;

    let mut response = app.stream("/tts/stream", &user, &speak(VOICE)).await;
    assert_eq!(response.status, 200);
    while response.next_chunk().await.unwrap().is_some() {}

    let alerts = alerts_to(&app, &user).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["percent"], 80);
}

#[tokio::test]
async fn the_nightly_reconciliation_sends_again_what_stripes_meter_lost() {
    let app = Arc::new(TestApp::spawn().await);
    let (user, customer) = past_the_allowance(&app, 500).await;
    assert!(generations(&app, &user, 3).await.iter().all(|(status, _)| *status == 201));
    let sent: HashSet<String> =
        metered(&app, &customer).await.iter().map(|e| e["identifier"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent.len(), 3);
    // Stripe lost one.
    let lost = sent.iter().next().unwrap().clone();
    let dropped = app.stripe_setup(Method::POST, "_test/meter_events/drop").form(&[("identifier", lost.as_str())]);
    assert!(dropped.send().await.unwrap().status().is_success());
    assert_eq!(metered(&app, &customer).await.len(), 2);

    let schedule: EventBridgeEvent =
        serde_json::from_str(&std::fs::read_to_string(format!("{EVENTS}/reconcile-schedule.json")).unwrap()).unwrap();
    reconcile::handle(app.function("reconcile"), schedule.clone()).await.unwrap();

    let held: HashSet<String> =
        metered(&app, &customer).await.iter().map(|e| e["identifier"].as_str().unwrap().to_owned()).collect();
    assert_eq!(held, sent, "the lost one sent again, the others not counted twice");
    reconcile::handle(app.function("reconcile"), schedule).await.unwrap();
    assert_eq!(metered(&app, &customer).await.len(), 3, "nothing more to repair");
}

/// Checkout for `tier`, "paid" at the stand-in; the subscription's id once its webhooks gave the
/// account the tier.
async fn subscribed(app: &TestApp, user: &User, tier: &str) -> String {
    app.receive_stripe_webhooks().await;
    let response = app.post("/billing/checkout", user, Some(&json!({ "tier": tier }))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let session = response.body["sessionUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let completed = app.stripe_post(&format!("_test/checkout/{session}/complete"), &[]).await;
    let session = app.session_until(user, |s| s["tier"] == tier).await;
    assert_eq!(session["tier"], tier, "{session}");
    completed["subscription"].as_str().unwrap().to_owned()
}

/// The prices of a subscription's items, as Stripe holds them.
async fn item_prices(app: &TestApp, subscription: &str) -> Vec<String> {
    let held = app.stripe_get(&format!("v1/subscriptions/{subscription}")).await;
    let items = held["items"]["data"].as_array().unwrap();
    items.iter().map(|i| i["price"]["id"].as_str().or(i["plan"]["id"].as_str()).unwrap().to_owned()).collect()
}

const METERED: &str = "price_overage_generation";

#[tokio::test]
async fn the_invoice_at_the_period_end_carries_the_usage_line() {
    let app = Arc::new(TestApp::spawn().await);
    let user = app.sign_in(Tier::Free).await;
    let subscription = subscribed(&app, &user, "BASIC").await;
    assert_eq!(item_prices(&app, &subscription).await, ["price_basic_monthly", METERED], "added at checkout");
    with_counter(&app, &user, this_month(), 100).await;
    let set = app.patch("/billing/settings", &user, &json!({ "overageCapCents": 500 })).await;
    assert_eq!(set.status, 200, "{}", set.body);
    let answers = generations(&app, &user, 3).await;
    assert!(answers.iter().all(|(status, _)| *status == 201), "{answers:?}");

    // The period ends: Stripe makes the renewal invoice.
    let ended = app.stripe_post(&format!("_test/subscriptions/{subscription}/end_period"), &[]).await;
    assert_eq!(ended["status"], "paid", "{ended}");

    let listed = app.get("/billing/invoices", &user).await;
    let invoice = &listed.body["invoices"][0];
    assert_eq!(invoice["invoiceId"], ended["id"], "{}", listed.body);
    let lines = invoice["lines"].as_array().unwrap();
    let usage: Vec<_> = lines.iter().filter(|l| l["usage"] == true).collect();
    assert_eq!(usage.len(), 1, "one usage line: {lines:?}");
    assert_eq!((usage[0]["quantity"].as_i64(), usage[0]["amount"].as_i64()), (Some(3), Some(30)), "{lines:?}");
    assert!(usage[0]["description"].as_str().unwrap().starts_with("3 × "), "{lines:?}");
    let plan: Vec<_> = lines.iter().filter(|l| l["usage"] == false).map(|l| l["amount"].as_i64().unwrap()).collect();
    assert_eq!(plan, [999], "the next period of BASIC: {lines:?}");
    assert_eq!(invoice["amountPaid"], 999 + 30);
}

#[tokio::test]
async fn a_subscription_without_the_metered_price_gains_it_once_when_synced_and_premium_never_does() {
    let app = TestApp::spawn().await;
    let billing = voice_core::assemble::billing(&app.app).await.unwrap();
    let mut made = Vec::new();
    for plan in ["price_basic_monthly", "price_premium_monthly"] {
        // Made straight in Stripe with one item, as before overage was offered.
        let user = app.sign_in(Tier::Free).await;
        let email = format!("{}@example.test", unique("metered-"));
        let customer = app.stripe_post("v1/customers", &[("email", email.as_str())]).await;
        let customer = customer["id"].as_str().unwrap().to_owned();
        app.add_card(&customer, "4242424242424242").await;
        app.set_user(&user.id, &[("stripeCustomerId", AttributeValue::S(customer.clone()))]).await;
        let form = [("customer", customer.as_str()), ("items[0][plan]", plan), ("metadata[userId]", user.id.as_str())];
        let subscription = app.stripe_post("v1/subscriptions", &form).await;
        made.push((plan, subscription["id"].as_str().unwrap().to_owned()));
    }
    for (plan, id) in &made {
        // Twice, and twice at once: a webhook's delivery and its retry, or two events.
        let now = OffsetDateTime::now_utc();
        billing.sync_subscription(id, now).await.unwrap();
        let (a, b) = tokio::join!(billing.sync_subscription(id, now), billing.sync_subscription(id, now));
        a.unwrap();
        b.unwrap();
        let expected: &[&str] = if *plan == "price_basic_monthly" { &[plan, METERED] } else { &[plan] };
        assert_eq!(item_prices(&app, id).await, expected);
    }
}

#[tokio::test]
async fn plan_changes_keep_the_metered_price_and_a_move_down_to_basic_brings_it() {
    let app = TestApp::spawn().await;
    let basic = app.sign_in(Tier::Free).await;
    let id = subscribed(&app, &basic, "BASIC").await;
    let up = app.post("/billing/subscription", &basic, Some(&json!({ "tier": "PREMIUM" }))).await;
    assert_eq!(up.body["change"], "upgraded", "{}", up.body);
    // What BASIC's overage counted this period is still billed at its end.
    assert_eq!(item_prices(&app, &id).await, ["price_premium_monthly", METERED], "kept");

    let premium = app.sign_in(Tier::Free).await;
    let id = subscribed(&app, &premium, "PREMIUM").await;
    assert_eq!(item_prices(&app, &id).await, ["price_premium_monthly"], "PREMIUM has no overage to bill");
    let down = app.post("/billing/subscription", &premium, Some(&json!({ "tier": "BASIC" }))).await;
    assert_eq!(down.body["change"], "scheduled", "{}", down.body);
    let schedule = app.stripe_get(&format!("v1/subscriptions/{id}")).await["schedule"].as_str().unwrap().to_owned();
    let planned = app.stripe_get(&format!("v1/subscription_schedules/{schedule}")).await;
    assert_eq!(planned["phases"][0]["items"].as_array().unwrap().len(), 1, "{planned}");
    assert_eq!(planned["phases"][1]["items"][1]["price"], METERED, "{planned}");
    app.stripe_post(&format!("_test/subscription_schedules/{schedule}/advance"), &[]).await;
    assert_eq!(item_prices(&app, &id).await, ["price_basic_monthly", METERED]);
}

#[tokio::test]
async fn the_usage_history_shows_each_months_overage_and_its_cost() {
    let app = Arc::new(TestApp::spawn().await);
    let (user, _) = past_the_allowance(&app, 500).await;
    let answers = generations(&app, &user, 3).await;
    assert!(answers.iter().all(|(status, _)| *status == 201), "{answers:?}");
    // Archive this month and an earlier one without overage, as the monthly reset does.
    let month = |recordings: u32| {
        AttributeValue::M(
            [("recordings".to_owned(), AttributeValue::N(recordings.to_string()))]
                .into_iter()
                .chain([("characters".to_owned(), AttributeValue::N("50".into()))])
                .collect(),
        )
    };
    let archived =
        [(format!("usage_{}", this_month()), month(103)), (format!("usage_{}", this_month().previous()), month(40))];
    let fields: Vec<_> = archived.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
    app.set_user(&user.id, &fields).await;

    let history = app.get("/usage/history", &user).await;

    assert_eq!(history.status, 200, "{}", history.body);
    let months = history.body["months"].as_array().unwrap();
    assert_eq!(months.len(), 2, "{}", history.body);
    assert_eq!((&months[0]["recordings"], &months[0]["overage"]), (&json!(103), &json!({ "units": 3, "cents": 30 })));
    assert_eq!(months[1]["overage"], json!({ "units": 0, "cents": 0 }));
}
