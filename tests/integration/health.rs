//! GET /health and /health/live against the real stack, with Redis or moto made unreachable.

use http::Method;
use integration_tests::{TestApp, TestResponse};
use serde_json::Value;

async fn health(app: &TestApp) -> TestResponse {
    app.request(Method::GET, "/health", &[], None).await
}

fn status_of<'a>(body: &'a Value, dependency: &str) -> &'a str {
    let checks = body["checks"].as_array().unwrap_or_else(|| panic!("no checks: {body}"));
    let check = checks.iter().find(|c| c["name"] == dependency).unwrap_or_else(|| panic!("{dependency}: {body}"));
    assert!(check["latencyMs"].is_u64(), "{check}");
    check["status"].as_str().unwrap()
}

/// Nothing a caller could use: no host, port, key, version or error text.
fn assert_leaks_nothing(app: &TestApp, body: &Value) {
    let text = body.to_string();
    let config = &app.app.config;
    let mut secrets = vec!["127.0.0.1".to_owned(), "localhost".to_owned(), config.audio_bucket.clone()];
    secrets.push(config.tables.users.clone());
    // The stand-ins' ports (the dead endpoint's port 1 would match any latency).
    let urls =
        [config.aws.ssm_endpoint_url.as_ref(), Some(&config.stripe.api_base), Some(&config.voice.elevenlabs_base)];
    secrets.extend(urls.into_iter().flatten().filter_map(|u| u.port()).map(|p| format!(":{p}")));
    for leak in secrets {
        assert!(!text.contains(&leak), "the body mentions {leak}: {text}");
    }
    for word in ["error", "version", "sk_", "password", "redis://"] {
        assert!(!text.to_lowercase().contains(word), "{word} in {text}");
    }
}

#[tokio::test]
async fn with_everything_up_every_dependency_is_ok_and_the_answer_is_200() {
    let app = TestApp::spawn().await;
    let response = health(&app).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["status"], "ok", "{}", response.body);
    for dependency in ["dynamodb", "s3", "redis", "secrets", "stripe", "elevenlabs", "auth0"] {
        assert_eq!(status_of(&response.body, dependency), "ok", "{dependency}");
    }
    assert_leaks_nothing(&app, &response.body);
    assert_eq!(response.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn with_redis_down_the_service_is_degraded_but_answers_200() {
    let app = TestApp::builder().redis_down().spawn().await;
    let response = health(&app).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["status"], "degraded");
    assert_eq!(status_of(&response.body, "redis"), "down");
    assert_eq!(status_of(&response.body, "dynamodb"), "ok");
    assert_leaks_nothing(&app, &response.body);
}

#[tokio::test]
async fn with_dynamodb_and_s3_unreachable_the_service_is_down_with_503() {
    let app = TestApp::builder().aws_down().spawn().await;
    let response = health(&app).await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.body["status"], "down");
    assert_eq!(status_of(&response.body, "dynamodb"), "down");
    assert_eq!(status_of(&response.body, "s3"), "down");
    assert_leaks_nothing(&app, &response.body);
}

#[tokio::test]
async fn a_report_is_reused_for_a_few_seconds_per_instance() {
    let app = TestApp::spawn().await;
    let first = health(&app).await.body;
    let second = health(&app).await.body;
    assert_eq!(first["checkedAt"], second["checkedAt"], "the second probe reused the first report");
}

#[tokio::test]
async fn liveness_checks_nothing_and_answers_even_with_everything_down() {
    let app = TestApp::builder().aws_down().redis_down().spawn().await;
    let response = app.request(Method::GET, "/health/live", &[], None).await;
    assert_eq!((response.status, response.body["status"].as_str()), (200, Some("ok")));
}
