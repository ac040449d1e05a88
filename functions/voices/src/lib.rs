//! `GET /voices`: the voices the caller may use.

use voice_core::{
    http::{Caller, Ctx, HttpResult, Route, ok},
    route,
};

pub const ROUTES: &[Route] = &[route!("GET /voices", user: list)];

#[tracing::instrument(skip_all)]
async fn list(ctx: Ctx<'_>, _caller: Caller) -> HttpResult {
    let voices = ctx.app.elevenlabs().await?.voices().await?;
    ok(&serde_json::json!({ "voices": voices }))
}
