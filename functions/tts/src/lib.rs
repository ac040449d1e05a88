//! `POST /tts`, `GET /voices`, and presets: `GET /presets`, `POST /presets`, `DELETE /presets/{id}`.

use lambda_http::{
    Body, Request, RequestExt, Response,
    http::{Method, StatusCode},
};
use shared::{
    ApiError, App,
    http::{self, HttpResult},
    presets::{self, NewPreset},
    tts::{self, Generation, TtsBody},
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let path = req.uri().path().to_owned();
    let result = match (req.method(), path.as_str()) {
        (&Method::POST, "/tts") => generate(app, &req).await,
        (&Method::GET, "/voices") => voices(app, &req).await,
        (&Method::GET, "/presets") => list_presets(app, &req).await,
        (&Method::POST, "/presets") => save_preset(app, &req).await,
        (&Method::DELETE, p) if p.starts_with("/presets/") => delete_preset(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[tracing::instrument(skip_all)]
async fn generate(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let body: TtsBody = http::json_body(req, tts::MAX_BODY_BYTES)?;
    let request =
        Generation::check(body, caller.user.tier, &caller.user.custom_presets, &app.config.voice.upgrade_url)?;
    let generated = tts::generate(app, &caller, request).await?;
    Ok(http::json(StatusCode::CREATED, &generated))
}

#[tracing::instrument(skip_all)]
async fn voices(app: &App, req: &Request) -> HttpResult {
    app.caller(req).await?;
    let voices = app.elevenlabs().await?.voices().await?;
    http::ok(&serde_json::json!({ "voices": voices }))
}

#[tracing::instrument(skip_all)]
async fn list_presets(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    http::ok(&presets::list(caller.user.tier, &caller.user.custom_presets))
}

#[tracing::instrument(skip_all)]
async fn save_preset(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let body: NewPreset = http::json_body(req, 4 * 1024)?;
    let saved = presets::save(app, &caller, body).await?;
    Ok(http::json(StatusCode::CREATED, &saved))
}

#[tracing::instrument(skip_all)]
async fn delete_preset(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let id = req.path_parameters_ref().and_then(|p| p.first("id")).ok_or_else(|| ApiError::not_found("preset"))?;
    presets::delete(app, &caller, id).await?;
    Ok(http::json(StatusCode::OK, &serde_json::json!({ "deleted": id })))
}
