//! `GET/POST /recordings`, `GET/PATCH/DELETE /recordings/{id}`. Everything is scoped to the
//! caller: another user's recording id is NOT_FOUND, exactly like one that never existed.

use serde::{Deserialize, Serialize};
use voice_core::{
    ApiError,
    clock::timestamp,
    domain::{
        audio::{AudioType, RecordingSource},
        ids::RecordingId,
    },
    flows::uploads,
    http::{Caller, Ctx, HttpResult, Route, created, json_body, ok, page_limit, path_param, query},
    route,
    store::recordings::{self, Recording},
};

pub const MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;
/// The most characters of an upload's `voiceName` and `text` (the caller's own labels).
pub const UPLOAD_VOICE_NAME_MAX_CHARS: usize = 100;
pub const UPLOAD_TEXT_MAX_CHARS: usize = 10_000;
pub const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;

pub const ROUTES: &[Route] = &[
    route!("GET /recordings", user: list, api_keys: true),
    route!("POST /recordings", user: create_upload, api_keys: true),
    route!("GET /recordings/{id}", user: read, api_keys: true),
    route!("PATCH /recordings/{id}", user: set_favorite, api_keys: true),
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
        .map(|raw| {
            recordings::parse_cursor(raw).ok_or_else(|| ApiError::validation("cursor", "is not a cursor from this API"))
        })
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
async fn create_upload(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    // Room for the longest fields, even written as \u escapes (6 bytes a character).
    let body: UploadBody = json_body(ctx.req, 64 * 1024)?;
    let content_type: AudioType = body
        .content_type
        .parse()
        .map_err(|e: voice_core::domain::audio::UnknownAudioType| ApiError::validation("contentType", e.to_string()))?;
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

    let now = app.clock.now();
    let upgrade_url = &app.config.voice.upgrade_url;
    let reservation = uploads::reserve_upload(&app.users, &caller.user, body.size_bytes, now, upgrade_url).await?;
    let id = RecordingId::generate(now);
    let s3_key = Recording::s3_key_for(&caller.user.id, &id, content_type);
    let stored = async {
        let upload_url = app.audio().upload_url(&s3_key, content_type, body.size_bytes).await?;
        let recording = Recording {
            recording_id: id.clone(),
            user_id: caller.user.id.clone(),
            voice_id: None,
            voice_name: body.voice_name,
            text: body.text,
            preset_used: None,
            audio_config: None,
            content_type,
            s3_key,
            is_favorite: false,
            created_at: timestamp(now),
            expires_at: Some(now.unix_timestamp() + app.config.voice.recording_ttl.as_secs() as i64),
            source: RecordingSource::Upload,
            upload_bytes: Some(body.size_bytes),
        };
        let deadline = now.unix_timestamp() + app.audio().presign_ttl().as_secs() as i64;
        app.recordings.put_upload(&recording, deadline).await?;
        Ok::<_, ApiError>(upload_url)
    }
    .await;
    let upload_url = match stored {
        Ok(url) => url,
        Err(error) => {
            uploads::give_back(&app.users, &caller.user, reservation).await;
            return Err(error);
        }
    };
    created(&Upload {
        recording_id: id,
        upload_url,
        method: "PUT",
        headers: serde_json::json!({ "content-type": content_type, "x-amz-tagging": "retention=temporary" }),
        expires_in: app.audio().presign_ttl().as_secs(),
    })
}

#[tracing::instrument(skip_all)]
async fn read(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let recording = owned(ctx, &caller).await?;
    let audio_url = ctx.app.audio().download_url(&recording.s3_key).await?;
    ok(&WithAudio { recording, audio_url })
}

/// `PATCH /recordings/{id}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FavoriteBody {
    pub is_favorite: bool,
}

/// Favourites never expire, so they are capped per tier. The change itself is made first and
/// only if it is a change (conditional), so of concurrent identical requests exactly one goes on:
/// it takes a place (undoing the change when the tier has none left) or gives one back.
#[tracing::instrument(skip_all)]
async fn set_favorite(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let id = recording_id(ctx)?;
    let body: FavoriteBody = json_body(ctx.req, 1024)?;
    let user = &caller.user;
    let expires_at = app.clock.now().unix_timestamp() + app.config.voice.recording_ttl.as_secs() as i64;
    let Some(recording) = app.recordings.set_favorite(&user.id, &id, body.is_favorite, expires_at).await? else {
        // Already so (another request made the change), or no such recording.
        let current = app.recordings.get(&user.id, &id).await?;
        return ok(&current.ok_or_else(|| ApiError::not_found("recording"))?);
    };
    if !body.is_favorite {
        app.users.release_favourite(&user.id).await?;
    } else if let Err(refused) = app.users.reserve_favourite(&user.id, user.tier).await {
        app.recordings.set_favorite(&user.id, &id, false, expires_at).await?;
        return Err(uploads::refused(refused, &app.config.voice.upgrade_url));
    }
    // The lifecycle rule follows the tag; a failure here only affects the safety net.
    if let Err(error) = app.audio().set_retention(&recording.s3_key, body.is_favorite).await {
        tracing::warn!(error = format!("{error:#}"), "could not retag the audio");
    }
    ok(&recording)
}

#[tracing::instrument(skip_all)]
async fn delete(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let recording = owned(ctx, &caller).await?;
    app.audio().delete(&recording.s3_key).await?;
    app.recordings.delete(&caller.user.id, &recording.recording_id).await?;
    // What it held of the user's allowances is free again.
    if let Some(bytes) = recording.upload_bytes {
        app.users.release_storage(&caller.user.id, bytes).await?;
    }
    if recording.is_favorite {
        app.users.release_favourite(&caller.user.id).await?;
    }
    ok(&serde_json::json!({ "deleted": recording.recording_id }))
}
