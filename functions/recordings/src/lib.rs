//! `GET/POST /recordings`, `GET/PATCH/DELETE /recordings/{id}`. Everything is scoped to the
//! caller: another user's recording id is NOT_FOUND, exactly like one that never existed.

use serde::{Deserialize, Serialize};
use voice_core::{
    ApiError,
    domain::ids::RecordingId,
    flows::recordings::{self, Library, NewUpload},
    http::{Caller, Ctx, HttpResult, Route, created, json_body, ok, page_limit, path_param, query},
    route,
    store::recordings::{Recording, parse_cursor},
};

pub const MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;
/// The most characters of an upload's `voiceName` and `text` (the caller's own labels).
pub const UPLOAD_VOICE_NAME_MAX_CHARS: usize = 100;
pub const UPLOAD_TEXT_MAX_CHARS: usize = 10_000;
pub const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;

pub const ROUTES: &[Route] = &[
    route!("GET /recordings", user: list, api_keys: true),
    route!("POST /recordings", user: create_upload, api_keys: true, body: UploadBody),
    route!("GET /recordings/{id}", user: read, api_keys: true),
    route!("PATCH /recordings/{id}", user: set_favorite, api_keys: true, body: FavoriteBody),
    route!("DELETE /recordings/{id}", user: delete, api_keys: true),
];

/// The caller's recording named by the path, or NOT_FOUND.
async fn owned(ctx: Ctx<'_>, caller: &Caller) -> Result<Recording, ApiError> {
    let id = recording_id(ctx)?;
    ctx.app.recordings.get(&caller.user.id, &id).await?.ok_or_else(|| ApiError::not_found("recording"))
}

fn recording_id(ctx: Ctx<'_>) -> Result<RecordingId, ApiError> {
    path_param(ctx.req, "id").and_then(RecordingId::parse).ok_or_else(|| ApiError::not_found("recording"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithAudio {
    #[serde(flatten)]
    recording: Recording,
    audio_url: String,
}

#[tracing::instrument(skip_all)]
async fn list(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let (app, req) = (ctx.app, ctx.req);
    let limit = page_limit(req, DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = query(req, "cursor")
        .map(|raw| parse_cursor(raw).ok_or_else(|| ApiError::validation("cursor", "is not a cursor from this API")))
        .transpose()?;
    let favourites_only = match query(req, "favouritesOnly") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("favouritesOnly", "must be true or false")),
    };
    let now = app.clock.now().unix_timestamp();
    let page = app.recordings.list(&caller.user.id, limit, cursor.as_ref(), favourites_only, now).await?;
    ok(&page)
}

/// `POST /recordings`: an upload of the caller's own audio.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadBody {
    pub content_type: String,
    #[serde(deserialize_with = "voice_core::domain::json::whole_number")]
    pub size_bytes: u64,
    pub voice_name: Option<String>,
    pub text: Option<String>,
}

/// Creates a recording for audio recorded in the browser, and a presigned PUT for exactly that
/// object, type and size.
#[tracing::instrument(skip_all)]
async fn create_upload(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    // Room for the longest fields, even written as \u escapes (6 bytes a character).
    let body: UploadBody = json_body(ctx.req, 64 * 1024)?;
    let content_type = recordings::upload_type(&body.content_type)?;
    if body.size_bytes == 0 || body.size_bytes > MAX_UPLOAD_BYTES {
        return Err(ApiError::validation("sizeBytes", format!("must be from 1 to {MAX_UPLOAD_BYTES} bytes")));
    }
    for (field, value, max) in
        [("voiceName", &body.voice_name, UPLOAD_VOICE_NAME_MAX_CHARS), ("text", &body.text, UPLOAD_TEXT_MAX_CHARS)]
    {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(ApiError::validation(field, format!("must be at most {max} characters")));
        }
    }
    let upload = NewUpload { content_type, size_bytes: body.size_bytes, voice_name: body.voice_name, text: body.text };
    created(&library(ctx).create_upload(&caller.user, upload, ctx.app.clock.now()).await?)
}

#[tracing::instrument(skip_all)]
async fn read(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let recording = owned(ctx, &caller).await?;
    let audio_url = ctx.app.audio().audio_url(&recording.s3_key).await?;
    ok(&WithAudio { recording, audio_url })
}

/// `PATCH /recordings/{id}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FavoriteBody {
    pub is_favorite: bool,
}

#[tracing::instrument(skip_all)]
async fn set_favorite(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = recording_id(ctx)?;
    let body: FavoriteBody = json_body(ctx.req, 1024)?;
    ok(&library(ctx).set_favourite(&caller.user, &id, body.is_favorite, ctx.app.clock.now()).await?)
}

#[tracing::instrument(skip_all)]
async fn delete(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let deleted = library(ctx).delete(&caller.user, &recording_id(ctx)?).await?;
    ok(&serde_json::json!({ "deleted": deleted }))
}

fn library(ctx: Ctx<'_>) -> Library<'_> {
    let app = ctx.app;
    Library { users: &app.users, recordings: &app.recordings, audio: app.audio(), settings: &app.config.voice }
}
