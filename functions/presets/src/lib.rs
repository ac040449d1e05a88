//! Presets: `GET /presets` (the catalogue, marked by tier, and PREMIUM's saved ones),
//! `POST /presets`, `PATCH /presets/{id}` (a new name) and `DELETE /presets/{id}` (PREMIUM).

use voice_core::{
    ApiError,
    domain::presets::{self, NewPreset, PresetRename},
    flows::presets as saved,
    http::{Caller, Ctx, HttpResult, Route, created, json_body, ok, path_param},
    route,
};

pub const ROUTES: &[Route] = &[
    route!("GET /presets", user: list),
    route!("POST /presets", user: save, body: NewPreset),
    route!("PATCH /presets/{id}", user: rename, body: PresetRename),
    route!("DELETE /presets/{id}", user: delete),
];

#[tracing::instrument(skip_all)]
async fn list(_ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&presets::list(caller.user.tier, &caller.user.custom_presets))
}

#[tracing::instrument(skip_all)]
async fn save(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let body: NewPreset = json_body(ctx.req, 4 * 1024)?;
    created(&saved::save(&ctx.app.users, &caller.user, body).await?)
}

#[tracing::instrument(skip_all)]
async fn rename(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = path_param(ctx.req, "id").ok_or_else(|| ApiError::not_found("preset"))?;
    let body: PresetRename = json_body(ctx.req, 4 * 1024)?;
    ok(&saved::rename(&ctx.app.users, &caller.user, id, &body.name).await?)
}

#[tracing::instrument(skip_all)]
async fn delete(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = path_param(ctx.req, "id").ok_or_else(|| ApiError::not_found("preset"))?;
    saved::delete(&ctx.app.users, &caller.user, id).await?;
    ok(&serde_json::json!({ "deleted": id }))
}
