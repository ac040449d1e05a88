//! The functions' metrics, read back from the lines they write to stdout (CloudWatch Embedded
//! Metric Format): a generation, a quota denial, a webhook outcome, a rate-limit denial and a
//! session store fallback each leave a metric CloudWatch would record, with a dimension only
//! where an alarm or the dashboard reads it (each dimension value is a metric billed monthly).

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{TestApp, VOICE, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::{
    domain::tiers::Tier,
    telemetry::metrics::{captured, namespace, start_capture},
    upstream::stripe::signature,
};

/// The EMF lines that declare `metric` with every `(dimension, value)` given.
fn lines_with(metric: &str, dimensions: &[(&str, &str)]) -> Vec<Value> {
    captured()
        .into_iter()
        .filter(|line| {
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            let declared = directive["Metrics"].as_array().is_some_and(|m| m.iter().any(|m| m["Name"] == metric));
            declared
                && directive["Namespace"] == namespace()
                && line["_aws"]["Timestamp"].is_u64()
                && line[metric].is_number()
                && dimensions.iter().all(|(name, value)| line[*name] == *value)
                && directive["Dimensions"].as_array().is_some_and(|sets| {
                    sets.iter().flat_map(|set| set.as_array().unwrap()).all(|d| line[d.as_str().unwrap()].is_string())
                })
        })
        .collect()
}

fn speak() -> Value {
    json!({ "text": "Metrics, please", "voiceId": VOICE })
}

#[tokio::test]
async fn a_generation_counts_with_its_latency_route_and_upstream_call() {
    start_capture();
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Basic).await;
    assert_eq!(app.post("/tts", &user, Some(&speak())).await.status, 201);

    assert_eq!(namespace(), app.app.config.metrics_namespace, "the configured namespace");
    let generations = lines_with("Generations", &[("Tier", "BASIC")]);
    assert_eq!(generations.len(), 1, "{generations:?}");
    assert_eq!(generations[0]["Generations"], 1.0);
    let requests = lines_with("Requests", &[("Route", "POST /tts"), ("Outcome", "2xx")]);
    assert_eq!(requests.len(), 1, "{:?}", captured());
    assert!(requests[0]["Latency"].as_f64().unwrap() > 0.0, "the latency is in the line: {requests:?}");
    let upstream = lines_with("UpstreamErrors", &[("Service", "elevenlabs")]);
    assert!(!upstream.is_empty() && upstream.iter().all(|l| l["UpstreamErrors"] == 0.0), "{upstream:?}");
    assert!(upstream.iter().all(|l| l["UpstreamLatency"].as_f64().is_some()), "{upstream:?}");
    every_dimension_is_one_that_is_read();
}

/// The dimensions of every metric written so far: only those an alarm or the dashboard reads
/// apart (template.yaml); everything else is one series with its detail in the line.
fn every_dimension_is_one_that_is_read() {
    for line in captured() {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        for metric in directive["Metrics"].as_array().unwrap() {
            let expected = match metric["Name"].as_str().unwrap() {
                "Requests" | "WebhookOutcomes" => json!([["Outcome"]]),
                _ => json!([[]]),
            };
            assert_eq!(directive["Dimensions"], expected, "{line}");
        }
    }
}

#[tokio::test]
async fn a_quota_denial_counts_per_tier() {
    start_capture();
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let now = OffsetDateTime::now_utc();
    let period = format!("{:04}-{:02}", now.year(), now.month() as u8);
    app.set_user(
        &user.id,
        &[("recordingsThisMonth", AttributeValue::N("10".into())), ("usagePeriod", AttributeValue::S(period))],
    )
    .await;
    assert_eq!(app.post("/tts", &user, Some(&speak())).await.error_code(), "LIMIT_REACHED");
    assert_eq!(lines_with("QuotaDenials", &[("Tier", "FREE")]).len(), 1);
    assert!(lines_with("Generations", &[]).is_empty());
    assert_eq!(lines_with("Requests", &[("Route", "POST /tts"), ("Outcome", "4xx")]).len(), 1);
}

#[tokio::test]
async fn webhook_outcomes_are_counted() {
    start_capture();
    let app = TestApp::spawn().await;
    let id = unique("evt_metrics_");
    let payload = json!({ "id": id, "object": "event", "type": "payout.paid", "created": OffsetDateTime::now_utc().unix_timestamp(), "data": { "object": { "object": "payout", "id": "po_1" } } }).to_string();
    let header =
        signature::header(&app.webhook_secret().await, OffsetDateTime::now_utc().unix_timestamp(), payload.as_bytes());
    assert_eq!(app.deliver(&payload, Some(&header)).await.status, 200);
    assert_eq!(app.deliver(&payload, Some(&header)).await.status, 200);
    assert_eq!(lines_with("WebhookOutcomes", &[("Outcome", "ignored")]).len(), 1);
    assert_eq!(lines_with("WebhookOutcomes", &[("Outcome", "duplicate")]).len(), 1);
    every_dimension_is_one_that_is_read();
}

#[tokio::test]
async fn rate_limit_denials_and_session_fallbacks_are_counted() {
    start_capture();
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let per_minute = Tier::Free.rules().per_minute(voice_core::domain::tiers::Limit::Requests);
    let mut limited = 0;
    for _ in 0..=per_minute {
        limited += u32::from(app.get("/usage", &user).await.status == 429);
    }
    assert!(limited >= 1);
    assert!(!lines_with("RateLimitDenials", &[("Scope", "api")]).is_empty(), "{:?}", captured());

    let cold = TestApp::builder().redis_down().spawn().await;
    let other = cold.sign_in(Tier::Free).await;
    assert_eq!(cold.get("/usage", &other).await.status, 200);
    assert!(!lines_with("SessionFallbacks", &[("Reason", "unavailable")]).is_empty());
    every_dimension_is_one_that_is_read();
}
