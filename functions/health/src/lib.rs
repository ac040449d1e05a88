//! `GET /health`: every dependency's status and latency (200 while DynamoDB and S3 work, 503 when
//! they do not), cached per instance for a few seconds; `GET /health/live`: the process answers,
//! nothing is checked. No authentication, and nothing secret in either body.

use lambda_http::http::StatusCode;
use voice_core::{
    flows::health::{Probes, report},
    http::{Ctx, HttpResult, Route, json, ok},
    route,
};

pub const ROUTES: &[Route] = &[route!("GET /health", public: health), route!("GET /health/live", public: live)];

#[tracing::instrument(skip_all)]
async fn health(ctx: Ctx<'_>) -> HttpResult {
    let app = ctx.app;
    let config = &app.config;
    let probes = Probes {
        users: &app.users,
        audio: app.audio(),
        redis: &app.redis,
        ssm: app.ssm(),
        probe_parameter: config.secrets.health_probe.clone(),
        http: app.http()?,
        stripe: config.stripe.api_base.join("v1/balance").expect("a relative path joins"),
        elevenlabs: config.voice.elevenlabs_base.join("v1/models").expect("a relative path joins"),
        auth0_discovery: config.idp.issuer.join(".well-known/openid-configuration").expect("a relative path joins"),
    };
    let report = report(&app.health, probes, app.clock.now()).await;
    let status = StatusCode::from_u16(report.http_status()).expect("200 or 503");
    Ok(json(status, &report))
}

#[tracing::instrument(skip_all)]
async fn live(_ctx: Ctx<'_>) -> HttpResult {
    ok(&serde_json::json!({ "status": "ok" }))
}
