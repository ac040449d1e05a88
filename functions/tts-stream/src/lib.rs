//! `POST /tts/stream`: the speech of `POST /tts`, sent as ElevenLabs produces it (Lambda response
//! streaming behind a Function URL). The same checks, quota reservation and tier rules; the
//! recording is stored before the stream ends, and its id is in `X-Recording-Id`.

use lambda_http::{
    Response,
    http::{StatusCode, header},
};
use voice_core::{
    App,
    domain::generation::{Generation, MAX_BODY_BYTES, TtsBody},
    error::ApiError,
    http::{Caller, Ctx, Route, json_body, router::Streamed},
    route,
};

pub const ROUTES: &[Route] =
    &[route!("POST /tts/stream", stream: speak, rate_limit: Generations, api_keys: true, body: TtsBody)];

#[tracing::instrument(skip_all)]
async fn speak(app: &'static App, ctx: Ctx<'_>, caller: Caller) -> Result<Streamed, ApiError> {
    let body: TtsBody = json_body(ctx.req, MAX_BODY_BYTES)?;
    let key = caller.api_key().cloned();
    let user = caller.user;
    let request = Generation::check(body, user.tier, &user.custom_presets)?;
    let generator = voice_core::assemble::generator(app).await?;
    let streaming = generator.generate_streaming(user, key, request, app.clock.now(), ctx.deadline).await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "audio/mpeg")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-recording-id", streaming.recording_id.to_string())
        .body(streaming.audio)
        .map_err(|error| ApiError::Internal(error.into()))
}
