//! The hot path: an authenticated read is one Redis round trip (session, user snapshot and rate
//! counters in one script) and no DynamoDB call, and every write to the user is seen by the very
//! next request. Redis and moto sit behind counting proxies (tests/harness/fault.rs), so the
//! counts are what crossed the network.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    TestApp, User, VOICE,
    fault::{FaultProxy, target_of},
    unique,
};
use redis::AsyncCommands;
use serde_json::json;
use voice_core::{
    config::Secret,
    domain::{tiers::Tier, usage::UsagePeriod, user::Suspension},
    store::users::snapshot::{self, Seen},
};

/// An app whose Redis and DynamoDB (and S3) calls go through counting proxies. SSM goes
/// straight to moto: its secrets are fetched once per cold start, before what is measured.
async fn counted() -> (TestApp, FaultProxy, FaultProxy) {
    let config = integration_tests::stack_config();
    let redis_url: url::Url = config.redis_url.expose().parse().unwrap();
    let moto = config.aws.endpoint_url.clone().unwrap();
    let (redis, aws) = (FaultProxy::start(target_of(&redis_url)).await, FaultProxy::start(target_of(&moto)).await);
    let (redis_proxied, aws_proxied) = (redis.in_front_of(&redis_url).to_string(), aws.in_front_of(&moto));
    let app = TestApp::builder()
        .config(move |c| {
            c.redis_url = Secret::new(redis_proxied.clone());
            c.aws.ssm_endpoint_url = c.aws.endpoint_url.clone();
            c.aws.endpoint_url = Some(aws_proxied.clone());
        })
        .spawn()
        .await;
    (app, redis, aws)
}

/// (Redis round trips, DynamoDB/S3 requests) one GET costs, and its answer.
async fn cost_of(app: &TestApp, redis: &FaultProxy, aws: &FaultProxy, path: &str, user: &User) -> (usize, usize) {
    let (redis_before, aws_before) = (redis.round_trips(), aws.round_trips());
    let response = app.get(path, user).await;
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    (redis.round_trips() - redis_before, aws.round_trips() - aws_before)
}

#[tokio::test]
async fn an_authenticated_read_is_one_redis_round_trip_and_no_dynamodb_call() {
    let (app, redis, aws) = counted().await;
    let user = app.sign_in(Tier::Basic).await;
    // The first read finds no snapshot: it reads DynamoDB once and stores one.
    let (first_redis, first_aws) = cost_of(&app, &redis, &aws, "/usage", &user).await;
    assert_eq!(first_aws, 1, "the first read fills the snapshot from DynamoDB");
    assert!(first_redis >= 2, "and writes it to Redis ({first_redis})");
    // Each function has its own Redis connection, as in Lambda: the session function's first
    // request opens its own (and authenticates it) before the warm requests measured below.
    assert_eq!(app.get("/auth/session", &user).await.status, 200);

    for path in ["/usage", "/auth/session", "/usage", "/auth/session"] {
        assert_eq!(cost_of(&app, &redis, &aws, path, &user).await, (1, 0), "{path}: (Redis, DynamoDB)");
    }
    // The snapshot served the right user and counters.
    let usage = app.get("/usage", &user).await;
    assert_eq!((usage.body["used"].clone(), usage.body["limit"].clone()), (json!(0), json!(100)));
}

#[tokio::test]
async fn every_write_to_the_user_is_seen_by_the_very_next_request() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let read = |user: &User| {
        let app = &app;
        let user = user.clone();
        async move { app.get("/usage", &user).await.body }
    };
    assert_eq!(read(&user).await["limit"], 10);
    assert_eq!(read(&user).await["limit"], 10, "served from the snapshot");

    // A tier change written straight to the row (as the harness and an operator do) ...
    app.set_user(&user.id, &[("subscriptionTier", AttributeValue::S("BASIC".into()))]).await;
    assert_eq!(read(&user).await["limit"], 100, "BASIC on the next request");

    // ... a generation (the quota counter) ...
    let text = format!("Hot path {}", unique(""));
    let generated = app.post("/tts", &user, Some(&json!({ "voiceId": VOICE, "text": text }))).await;
    assert_eq!(generated.status, 201, "{}", generated.body);
    assert_eq!(read(&user).await["used"], 1, "the generation counts on the next request");

    // ... an admin's grant, through the store ...
    let period = UsagePeriod::containing(time::OffsetDateTime::now_utc());
    app.app.users.grant_recordings(&user.id, period, 5).await.unwrap();
    assert_eq!(read(&user).await["limit"], 105, "the grant shows on the next request");

    // ... a profile edit through the API ...
    let edited = app.patch("/user/profile", &user, &json!({ "name": "Renamed" })).await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(app.get("/user/profile", &user).await.body["name"], "Renamed");

    // ... and a suspension: signed out at once.
    let suspension =
        Suspension { since: "2026-12-01T00:00:00Z".into(), reason: "abuse".into(), by: "auth0|admin".into() };
    app.app.users.suspend(&user.id, &suspension).await.unwrap();
    assert_eq!(app.get("/usage", &user).await.status, 401, "suspended: no request passes");
}

#[tokio::test]
async fn an_edited_or_borrowed_snapshot_is_never_used() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let other = app.sign_in(Tier::Basic).await;
    assert_eq!(app.get("/usage", &user).await.body["limit"], 10);
    assert_eq!(app.get("/usage", &other).await.body["limit"], 100);
    let key = snapshot::key(&user.id);

    // The user's own row, edited to BASIC with its MAC kept.
    let row: String = app.redis().await.hget(&key, "item").await.unwrap();
    let edited = row.replace(r#""subscriptionTier":{"S":"FREE"}"#, r#""subscriptionTier":{"S":"BASIC"}"#);
    assert_ne!(edited, row, "the row holds the tier");
    let _: () = app.redis().await.hset(&key, "item", &edited).await.unwrap();
    assert_eq!(app.get("/usage", &user).await.body["limit"], 10, "the edited row is refused; DynamoDB decides");

    // Another user's genuine row, copied under this user's key.
    let borrowed: String = app.redis().await.hget(snapshot::key(&other.id), "item").await.unwrap();
    let _: () = app.redis().await.hset(&key, "item", &borrowed).await.unwrap();
    let usage = app.get("/usage", &user).await;
    assert_eq!(usage.body["limit"], 10, "a row signed for another key is refused: {}", usage.body);
    let profile = app.get("/auth/session", &user).await;
    assert_eq!(profile.body["userId"], user.id.as_str());
}

#[tokio::test]
async fn a_read_that_raced_a_write_never_stores_what_the_write_replaced() {
    let app = TestApp::spawn().await;
    let user = app.sign_in(Tier::Free).await;
    let key = snapshot::key(&user.id);
    let generation: Option<String> = app.redis().await.hget(&key, "gen").await.unwrap();
    let seen = Seen { generation: generation.unwrap_or_default(), row: None };
    // The reader's DynamoDB read: FREE.
    let item = app.stored_item(&app.app.config.tables.users, &[("userId", user.id.as_str())]).await.unwrap();
    // A write lands (and forgets the snapshot) before the reader stores what it read.
    app.set_user(&user.id, &[("subscriptionTier", AttributeValue::S("BASIC".into()))]).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    app.app.users.snapshots().fill(&user.id, &item, &seen, now).await;

    let stored: Option<String> = app.redis().await.hget(&key, "item").await.unwrap();
    assert_eq!(stored, None, "the stale row was not stored");
    assert_eq!(app.get("/usage", &user).await.body["limit"], 100, "BASIC, as DynamoDB holds");
}
