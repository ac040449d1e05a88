//! `POST /tts`: speech from ElevenLabs within the caller's tier rules, quota and rate limit.

use voice_core::{
    domain::generation::{Generation, MAX_BODY_BYTES, TtsBody},
    http::{Caller, Ctx, HttpResult, Route, created, json_body},
    route,
};

pub const ROUTES: &[Route] =
    &[route!("POST /tts", user: generate, rate_limit: Generations, api_keys: true, body: TtsBody)];

#[tracing::instrument(skip_all)]
async fn generate(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let body: TtsBody = json_body(ctx.req, MAX_BODY_BYTES)?;
    let user = &caller.user;
    let request = Generation::check(body, user.tier, &user.custom_presets)?;
    let generator = voice_core::assemble::generator(app).await?;
    created(&generator.generate(user, caller.api_key(), request, app.clock.now(), ctx.deadline).await?)
}
