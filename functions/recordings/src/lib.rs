//! `GET/POST /recordings`, `GET/PATCH/DELETE /recordings/{id}`. Everything is scoped to the
//! caller: another user's recording id is NOT_FOUND, exactly like one that never existed.

use lambda_http::{
    Body, Request, RequestExt, Response,
    http::{Method, StatusCode},
};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, App, Caller,
    http::{self, HttpResult},
    recordings::{self, AUDIO_TYPES, Recording, RecordingId, timestamp},
};

pub const MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;
const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let path = req.uri().path().to_owned();
    let result = match (req.method(), path.as_str()) {
        (&Method::GET, "/recordings") => list(app, &req).await,
        (&Method::POST, "/recordings") => create_upload(app, &req).await,
        (method, p) if p.starts_with("/recordings/") => match *method {
            Method::GET => read(app, &req).await,
            Method::PATCH => set_favorite(app, &req).await,
            Method::DELETE => delete(app, &req).await,
            _ => Err(http::no_route(&req)),
        },
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

/// The caller's recording named by the path, or NOT_FOUND.
async fn owned(app: &App, req: &Request, caller: &Caller) -> Result<Recording, ApiError> {
    let id = recording_id(req)?;
    app.recordings.get(&caller.user.id, &id).await?.ok_or_else(|| ApiError::not_found("recording"))
}

fn recording_id(req: &Request) -> Result<RecordingId, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first("id"))
        .and_then(RecordingId::parse)
        .ok_or_else(|| ApiError::not_found("recording"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithAudio {
    #[serde(flatten)]
    recording: Recording,
    audio_url: String,
}

#[tracing::instrument(skip_all)]
async fn list(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let limit = match http::query(req, "limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::validation("limit", format!("must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    let cursor = http::query(req, "cursor")
        .map(|raw| {
            recordings::parse_cursor(raw).ok_or_else(|| ApiError::validation("cursor", "is not a cursor from this API"))
        })
        .transpose()?;
    let favourites_only = match http::query(req, "favouritesOnly") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("favouritesOnly", "must be true or false")),
    };
    let now = app.clock.now().unix_timestamp();
    let page = app.recordings.list(&caller.user.id, limit, cursor.as_ref(), favourites_only, now).await?;
    http::ok(&page)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UploadBody {
    content_type: String,
    size_bytes: u64,
    voice_name: Option<String>,
    text: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Upload {
    recording_id: RecordingId,
    upload_url: String,
    method: &'static str,
    headers: serde_json::Value,
    expires_in: u64,
}

/// Creates a recording for audio recorded in the browser, and a presigned PUT for exactly that
/// object, type and size.
#[tracing::instrument(skip_all)]
async fn create_upload(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let body: UploadBody = http::json_body(req, 8 * 1024)?;
    if !AUDIO_TYPES.iter().any(|(t, _)| *t == body.content_type) {
        let allowed: Vec<&str> = AUDIO_TYPES.iter().map(|(t, _)| *t).collect();
        return Err(ApiError::validation("contentType", format!("must be one of {}", allowed.join(", "))));
    }
    if body.size_bytes == 0 || body.size_bytes > MAX_UPLOAD_BYTES {
        return Err(ApiError::validation("sizeBytes", format!("must be from 1 to {MAX_UPLOAD_BYTES} bytes")));
    }
    for (field, value, max) in [("voiceName", &body.voice_name, 100), ("text", &body.text, 10_000)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(ApiError::validation(field, format!("must be at most {max} characters")));
        }
    }

    let now = app.clock.now();
    let id = RecordingId::generate(now);
    let s3_key = Recording::s3_key_for(&caller.user.id, &id, &body.content_type);
    let upload_url = app.audio.upload_url(&s3_key, &body.content_type, body.size_bytes).await?;
    let recording = Recording {
        recording_id: id.clone(),
        user_id: caller.user.id.clone(),
        voice_id: None,
        voice_name: body.voice_name,
        text: body.text,
        preset_used: None,
        audio_config: None,
        content_type: body.content_type.clone(),
        s3_key,
        is_favorite: false,
        created_at: timestamp(now),
        expires_at: Some(now.unix_timestamp() + app.config.voice.recording_ttl.as_secs() as i64),
        source: "upload".to_owned(),
    };
    app.recordings.put(&recording).await?;
    Ok(http::json(
        StatusCode::CREATED,
        &Upload {
            recording_id: id,
            upload_url,
            method: "PUT",
            headers: serde_json::json!({ "content-type": body.content_type, "x-amz-tagging": "retention=temporary" }),
            expires_in: app.audio.presign_ttl().as_secs(),
        },
    ))
}

#[tracing::instrument(skip_all)]
async fn read(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let recording = owned(app, req, &caller).await?;
    let audio_url = app.audio.download_url(&recording.s3_key).await?;
    http::ok(&WithAudio { recording, audio_url })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FavoriteBody {
    is_favorite: bool,
}

#[tracing::instrument(skip_all)]
async fn set_favorite(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let id = recording_id(req)?;
    let body: FavoriteBody = http::json_body(req, 1024)?;
    let expires_at = app.clock.now().unix_timestamp() + app.config.voice.recording_ttl.as_secs() as i64;
    let recording = app
        .recordings
        .set_favorite(&caller.user.id, &id, body.is_favorite, expires_at)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    // The lifecycle rule follows the tag; a failure here only affects the safety net.
    if let Err(error) = app.audio.set_retention(&recording.s3_key, body.is_favorite).await {
        tracing::warn!(error = format!("{error:#}"), "could not retag the audio");
    }
    http::ok(&recording)
}

#[tracing::instrument(skip_all)]
async fn delete(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let recording = owned(app, req, &caller).await?;
    app.audio.delete(&recording.s3_key).await?;
    app.recordings.delete(&caller.user.id, &recording.recording_id).await?;
    Ok(http::json(StatusCode::OK, &serde_json::json!({ "deleted": recording.recording_id })))
}
