//! The voice library: `GET /voices` (premade voices and the caller's own clones), the consent
//! statement, sample uploads, and the caller's clones (`POST /voices`, `GET/PATCH/DELETE
//! /voices/{id}`). Another user's clone is NOT_FOUND, exactly like one that never existed.
//! A workspace's shared library (`/workspaces/{id}/voices`): read by its members, made and
//! deleted by those who may manage its voices; a workspace of others is NOT_FOUND.

use serde::Serialize;
use voice_core::{
    ApiError,
    domain::{
        ids::{Ulid, UserId, VoiceId},
        push::Event,
        session::ClientInfo,
        voices::{CONSENT, NewVoiceBody, SampleRequest, VoicePatchBody},
        workspaces::Permission,
    },
    flows::{
        voices::{Cloning, Library, upload_sample},
        workspaces::{Actor, authorize, record},
    },
    http::{Caller, Ctx, HttpResult, Route, created, header, json_body, ok, path_param, source_ip},
    route,
    store::{
        voices::Voice,
        workspaces::{Held, Member},
    },
};

pub const ROUTES: &[Route] = &[
    route!("GET /voices", user: list, api_keys: true),
    route!("GET /voices/consent", user: consent),
    route!("POST /voices/samples", user: sample, body: SampleRequest),
    route!("POST /voices", user: create, body: NewVoiceBody),
    route!("GET /voices/{id}", user: read),
    route!("PATCH /voices/{id}", user: rename, body: VoicePatchBody),
    route!("DELETE /voices/{id}", user: delete),
    route!("GET /workspaces/{id}/voices", user: library),
    route!("POST /workspaces/{id}/voices", user: create_shared, body: NewVoiceBody),
    route!("DELETE /workspaces/{id}/voices/{voiceId}", user: delete_shared),
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cloned<'a> {
    #[serde(flatten)]
    voice: &'a Voice,
    category: &'static str,
}

fn cloned(voice: &Voice) -> Cloned<'_> {
    Cloned { voice, category: "cloned" }
}

fn voice_id(ctx: Ctx<'_>) -> Result<VoiceId, ApiError> {
    path_param(ctx.req, "id").and_then(Ulid::parse).ok_or_else(|| ApiError::not_found("voice"))
}

fn actor<'a>(ctx: &Ctx<'a>, caller: &'a Caller) -> Actor<'a> {
    Actor { user: &caller.user, request_id: ctx.request_id }
}

/// The caller's membership of the path's workspace, if it grants `permission`.
async fn member(ctx: Ctx<'_>, caller: &Caller, permission: Permission) -> Result<Member, ApiError> {
    authorize(&ctx.app.workspaces, path_param(ctx.req, "id").unwrap_or_default(), &caller.user.id, permission).await
}

async fn cloning(ctx: Ctx<'_>) -> Result<Cloning<'_>, ApiError> {
    Ok(Cloning { removal: voice_core::assemble::voice_removal(ctx.app).await?, settings: &ctx.app.config.voice })
}

#[tracing::instrument(skip_all)]
async fn list(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let premade = ctx.app.elevenlabs().await?.primary().client.voices().await?;
    let own = ctx.app.voices.list(&caller.user.id).await?;
    let mut voices: Vec<serde_json::Value> = premade
        .into_iter()
        .map(|v| {
            serde_json::json!({
                "voiceId": v.voice_id, "name": v.name, "category": "premade",
                "labels": v.labels, "previewUrl": v.preview_url,
            })
        })
        .collect();
    voices.extend(own.iter().map(|v| serde_json::to_value(cloned(v)).expect("voices serialize")));
    ok(&serde_json::json!({ "voices": voices }))
}

async fn consent(_ctx: Ctx<'_>, _caller: Caller) -> HttpResult {
    ok(&CONSENT)
}

#[tracing::instrument(skip_all)]
async fn sample(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let request: SampleRequest = json_body(ctx.req, 1024)?;
    let app = ctx.app;
    let upload = upload_sample(&app.users, &app.voices, app.audio(), &caller.user, &request, app.clock.now());
    created(&upload.await?)
}

#[tracing::instrument(skip_all)]
async fn create(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let body: NewVoiceBody = json_body(ctx.req, 16 * 1024)?;
    let request = body.check()?;
    let client =
        ClientInfo { ip_address: source_ip(ctx.req), user_agent: header(ctx.req, "user-agent").map(String::from) };
    let now = ctx.app.clock.now();
    let made = cloning(ctx).await?.create(&caller.user, Library::Own, request, &client, now).await;
    if let Some(push) = voice_core::assemble::push(ctx.app) {
        // Made, or failed while being made (a refusal of the request itself is only its own).
        let event = match &made {
            Ok(voice) => Some(Event::VoiceReady { voice_id: voice.voice_id.to_string(), name: voice.name.clone() }),
            Err(error @ (ApiError::Upstream { .. } | ApiError::Busy { .. } | ApiError::Internal(_))) => {
                Some(Event::VoiceFailed { code: error.code() })
            }
            Err(_) => None,
        };
        if let Some(event) = event {
            push.notify(&caller.user.id, &event, now.unix_timestamp()).await;
        }
    }
    created(&cloned(&made?))
}

#[tracing::instrument(skip_all)]
async fn read(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = voice_id(ctx)?;
    let voice = ctx.app.voices.voice(&caller.user.id, &id).await?.filter(|v| !v.deleting);
    ok(&cloned(&voice.ok_or_else(|| ApiError::not_found("voice"))?))
}

#[tracing::instrument(skip_all)]
async fn rename(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = voice_id(ctx)?;
    let patch = json_body::<VoicePatchBody>(ctx.req, 4 * 1024)?.check()?;
    let description = patch.description.as_ref().map(Option::as_deref);
    let voice = ctx.app.voices.update(&caller.user.id, &id, patch.name.as_deref(), description).await?;
    ok(&cloned(&voice.ok_or_else(|| ApiError::not_found("voice"))?))
}

#[tracing::instrument(skip_all)]
async fn delete(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = voice_id(ctx)?;
    cloning(ctx).await?.removal.delete(&caller.user.id, &id, ctx.app.clock.now()).await?;
    ok(&serde_json::json!({ "deleted": id }))
}

/// `GET /workspaces/{id}/voices`: the shared library, with its slots.
#[tracing::instrument(skip_all)]
async fn library(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let member = member(ctx, &caller, Permission::Read).await?;
    let workspace =
        ctx.app.workspaces.get(&member.workspace_id).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
    let voices = ctx.app.voices.list(&UserId::library_of(&member.workspace_id)).await?;
    ok(&serde_json::json!({
        "voices": voices.iter().map(cloned).collect::<Vec<_>>(),
        "slots": workspace.slots(Held::LibraryVoices),
    }))
}

/// `POST /workspaces/{id}/voices`: a clone of the caller's own samples, with their consent, for
/// the workspace's library.
#[tracing::instrument(skip_all)]
async fn create_shared(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let member = member(ctx, &caller, Permission::ManageVoices).await?;
    let request = json_body::<NewVoiceBody>(ctx.req, 16 * 1024)?.check()?;
    let workspace =
        ctx.app.workspaces.get(&member.workspace_id).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
    let client =
        ClientInfo { ip_address: source_ip(ctx.req), user_agent: header(ctx.req, "user-agent").map(String::from) };
    let now = ctx.app.clock.now();
    let library = Library::Workspace(&workspace);
    let voice = cloning(ctx).await?.create(&caller.user, library, request, &client, now).await?;
    let detail =
        serde_json::json!({ "workspaceId": member.workspace_id, "voiceId": voice.voice_id, "name": voice.name });
    record(&ctx.app.audit, actor(&ctx, &caller), Some(&member), "workspace-voice-create", None, detail, now).await?;
    created(&cloned(&voice))
}

/// `DELETE /workspaces/{id}/voices/{voiceId}`.
#[tracing::instrument(skip_all)]
async fn delete_shared(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let member = member(ctx, &caller, Permission::ManageVoices).await?;
    let id = path_param(ctx.req, "voiceId").and_then(Ulid::parse).ok_or_else(|| ApiError::not_found("voice"))?;
    let owner = UserId::library_of(&member.workspace_id);
    let now = ctx.app.clock.now();
    cloning(ctx).await?.removal.delete(&owner, &id, now).await?;
    let detail = serde_json::json!({ "workspaceId": member.workspace_id, "voiceId": id });
    record(&ctx.app.audit, actor(&ctx, &caller), Some(&member), "workspace-voice-delete", None, detail, now).await?;
    ok(&serde_json::json!({ "deleted": id }))
}
