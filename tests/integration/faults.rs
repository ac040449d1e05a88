//! Fault injection: Redis, moto (DynamoDB and S3) or the ElevenLabs stand-in becomes unreachable
//! in the middle of the work, through a proxy only this test's app talks through. Each case: no
//! panic, the documented status, nothing half-written, and recovery when the server returns.

use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    TestApp, User,
    elevenlabs::Fault,
    eventually,
    fault::{FaultProxy, target_of},
    unique,
};
use serde_json::json;
use time::OffsetDateTime;
use voice_core::{
    config::Secret,
    domain::{tiers::Tier, usage::UsagePeriod},
};

async fn with_counter(app: &TestApp, user: &User, used: u32) {
    let period = UsagePeriod::containing(OffsetDateTime::now_utc()).to_string();
    let fields =
        [("usagePeriod", AttributeValue::S(period)), ("recordingsThisMonth", AttributeValue::N(used.to_string()))];
    app.set_user(&user.id, &fields).await;
}

async fn redis_behind(proxy: &FaultProxy, later: time::Duration) -> TestApp {
    let url: url::Url = integration_tests::stack_config().redis_url.expose().parse().unwrap();
    let proxied = proxy.in_front_of(&url).to_string();
    TestApp::builder().config(move |c| c.redis_url = Secret::new(proxied.clone())).later(later).spawn().await
}

#[tokio::test]
async fn redis_going_away_mid_flight_falls_back_to_dynamodb_and_recovers() {
    let url: url::Url = integration_tests::stack_config().redis_url.expose().parse().unwrap();
    let proxy = FaultProxy::start(target_of(&url)).await;
    let app = redis_behind(&proxy, time::Duration::ZERO).await;
    let user = app.sign_in(Tier::Basic).await;
    assert!(app.cached_session(&user).await.is_some());

    let reads = (0..20).map(|_| app.get("/auth/session", &user));
    let cut = async {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
        proxy.cut();
    };
    let (responses, ()) = tokio::join!(futures_util::future::join_all(reads), cut);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "served from DynamoDB while Redis is away: {statuses:?}");

    // A logout while Redis is away still ends the session (DynamoDB's copy goes).
    assert_eq!(app.post("/auth/logout", &user, None).await.status, 200);
    assert_eq!(app.get("/auth/session", &user).await.status, 401);

    proxy.restore();
    // Redis kept the entry through the logout it missed: the re-check bounds that to 60 s.
    let after_recheck = redis_behind(&proxy, time::Duration::seconds(61)).await;
    assert_eq!(after_recheck.get("/auth/session", &user).await.status, 401);
    // And Redis serves new sessions again.
    let again = app.sign_in(Tier::Basic).await;
    assert_eq!(app.get("/auth/session", &again).await.status, 200);
    assert!(app.cached_session(&again).await.is_some(), "cached in Redis again");
}

#[tokio::test]
async fn dynamodb_and_s3_going_away_mid_generation_leave_nothing_half_written() {
    let moto = integration_tests::stack_config().aws.endpoint_url.unwrap();
    let proxy = FaultProxy::start(target_of(&moto)).await;
    let proxied = proxy.in_front_of(&moto);
    let app = TestApp::builder()
        .config(move |c| {
            c.aws.ssm_endpoint_url = c.aws.endpoint_url.clone();
            c.aws.endpoint_url = Some(proxied.clone());
        })
        .spawn()
        .await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, 4).await;
    let voice = app.elevenlabs().voice_that(Fault::Slow).await;

    // The unit is reserved, ElevenLabs takes 1.5 s, and moto goes away meanwhile for longer than
    // the AWS SDK's own retries last (a shorter outage is simply ridden out): until the audio's
    // puts have given up (three attempts each) and giving the unit back has failed too.
    let body = json!({ "voiceId": voice, "text": "Hello there." });
    let generation = app.post("/tts", &user, Some(&body));
    let outage = async {
        let called =
            eventually(StdDuration::from_secs(5), || async { !app.upstream_requests(&voice).await.is_empty() });
        assert!(called.await, "ElevenLabs was called");
        proxy.cut();
        let given_up = eventually(StdDuration::from_secs(30), || std::future::ready(proxy.refused() >= 9));
        assert!(given_up.await, "the stores were refused ({} connections)", proxy.refused());
        proxy.restore();
    };
    let (response, ()) = tokio::join!(generation, outage);

    assert!(response.status >= 500, "{}: {}", response.status, response.body);
    assert!(matches!(response.error_code(), "INTERNAL" | "UPSTREAM_UNAVAILABLE"), "{}", response.body);
    assert_eq!(app.upstream_requests(&voice).await.len(), 1, "ElevenLabs was called");
    assert_eq!(app.counter(&user).await.0, 4, "the unit was given back once moto returned");
    let rows = app
        .dynamodb
        .query()
        .table_name(&app.app.config.tables.recordings)
        .key_condition_expression("userId = :u")
        .expression_attribute_values(":u", AttributeValue::S(user.id.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(rows.count, 0, "no recording row");
    let objects =
        app.s3.list_objects_v2().bucket(&app.app.config.audio_bucket).prefix(format!("{}/", user.id)).send().await;
    assert_eq!(objects.unwrap().key_count, Some(0), "no audio object");

    // Recovered: the next generation works.
    let response = app.post("/tts", &user, Some(&json!({ "voiceId": unique("ok-"), "text": "Again." }))).await;
    assert_eq!(response.status, 201, "{}", response.body);
}

#[tokio::test]
async fn elevenlabs_unreachable_costs_nothing_and_recovers() {
    let base = integration_tests::stack_config().voice.elevenlabs_base;
    let proxy = FaultProxy::start(target_of(&base)).await;
    let proxied = proxy.in_front_of(&base);
    let app = TestApp::builder().config(move |c| c.voice.elevenlabs_base = proxied.clone()).spawn().await;
    let user = app.sign_in(Tier::Free).await;
    with_counter(&app, &user, 4).await;
    proxy.cut();

    let response = app.post("/tts", &user, Some(&json!({ "voiceId": unique("down-"), "text": "Hi." }))).await;
    assert_eq!((response.status, response.error_code()), (503, "UPSTREAM_UNAVAILABLE"), "{}", response.body);
    assert_eq!(app.counter(&user).await.0, 4);

    proxy.restore();
    let response = app.post("/tts", &user, Some(&json!({ "voiceId": unique("up-"), "text": "Hi." }))).await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(app.counter(&user).await.0, 5);
}

#[tokio::test]
async fn a_silent_upstream_is_cut_off_at_the_invocations_deadline_not_the_clients_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let app = TestApp::builder()
        .config(move |c| c.stripe.api_base = format!("http://{address}/").parse().unwrap())
        .function_timeout(StdDuration::from_secs(2))
        .spawn()
        .await;
    let user = app.sign_in(Tier::Basic).await;

    let started = std::time::Instant::now();
    let response = app.post("/billing/portal", &user, None).await;
    let took = started.elapsed();

    assert_eq!((response.status, response.error_code()), (503, "UPSTREAM_UNAVAILABLE"), "{}", response.body);
    assert!(took < StdDuration::from_secs(2), "answered within the 2 s deadline, not the 8 s client timeout: {took:?}");
}
