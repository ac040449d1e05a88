//! The caller's whole account: `DELETE /user` erases it and everything it owns (see
//! `flows::erase`); `GET /user/export` hands all of it out (see `flows::export`).

use lambda_http::http::StatusCode;
use voice_core::{
    ApiError,
    domain::{
        usage::UsagePeriod,
        workspaces::{Acceptance, NewInvitation, NewWorkspace, RoleChange, SeatLimit, Transfer},
    },
    flows::{
        api_keys,
        erase::{ErasureStatus, REAUTHENTICATE_WITHIN_SECS},
        export::{Exporter, INLINE_LIMIT},
    },
    http::{Caller, Ctx, HttpResult, Route, cookies::cleared_cookie, json, json_body, ok, path_param},
    route,
};

pub const ROUTES: &[Route] = &[
    route!("DELETE /user", user: erase),
    route!("GET /user/export", user: export),
    route!("POST /api-keys", user: create_key, body: NewKeyBody),
    route!("GET /api-keys", user: list_keys),
    route!("PATCH /api-keys/{id}", user: edit_key, body: KeyBudgetBody),
    route!("DELETE /api-keys/{id}", user: revoke_key),
    route!("POST /workspaces", user: workspaces::create, body: NewWorkspace),
    route!("GET /workspaces", user: workspaces::mine),
    route!("GET /workspaces/{id}", user: workspaces::view),
    route!("DELETE /workspaces/{id}", user: workspaces::delete),
    route!("GET /workspaces/{id}/usage", user: workspaces::usage),
    route!("POST /workspaces/{id}/api-keys", user: workspaces::create_key, body: NewKeyBody),
    route!("GET /workspaces/{id}/api-keys", user: workspaces::keys),
    route!("DELETE /workspaces/{id}/api-keys/{keyId}", user: workspaces::revoke_key),
    route!("GET /workspaces/{id}/members", user: workspaces::members),
    route!("PATCH /workspaces/{id}/members/{userId}", user: workspaces::change_role, body: RoleChange),
    route!("DELETE /workspaces/{id}/members/{userId}", user: workspaces::remove),
    route!("POST /workspaces/{id}/transfer", user: workspaces::transfer, body: Transfer),
    route!("GET /workspaces/{id}/invitations", user: workspaces::invitations),
    route!("POST /workspaces/{id}/invitations", user: workspaces::invite, body: NewInvitation),
    route!("POST /workspaces/{id}/invitations/{invitationId}/resend", user: workspaces::resend),
    route!("DELETE /workspaces/{id}/invitations/{invitationId}", user: workspaces::revoke),
    route!("POST /invitations/accept", user: workspaces::accept, body: Acceptance),
    route!("PATCH /workspaces/{id}/seats", user: workspaces::set_seats, body: SeatLimit),
    route!("POST /workspaces/{id}/billing/checkout", user: workspaces::checkout, body: SeatLimit),
];

mod workspaces;

/// `POST /api-keys`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewKeyBody {
    pub name: String,
    /// The most characters the key may speak a month; absent or null: only the plan limits it.
    #[serde(default, deserialize_with = "voice_core::domain::json::whole_number_or_null")]
    pub monthly_character_limit: Option<u64>,
}

/// `PATCH /api-keys/{id}`: the key's monthly character budget, null to remove it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyBudgetBody {
    /// Required, null included (an absent field is not a removal).
    #[serde(deserialize_with = "voice_core::domain::json::whole_number_or_null")]
    pub monthly_character_limit: Option<u64>,
}

/// The most characters of an API key's name.
pub const KEY_NAME_MAX_CHARS: usize = 50;

/// An API key's name as stored: trimmed, 1 to 50 printable characters.
pub fn key_name(raw: &str) -> Result<String, ApiError> {
    voice_core::domain::text::printable("name", raw, 1, KEY_NAME_MAX_CHARS)
}

/// `POST /api-keys {name, monthlyCharacterLimit?}`: the key is in this answer and nowhere else,
/// ever.
#[tracing::instrument(skip_all)]
async fn create_key(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let body: NewKeyBody = json_body(ctx.req, 1024)?;
    let name = key_name(&body.name)?;
    let budget = api_keys::character_budget(body.monthly_character_limit)?;
    let made = api_keys::create(&app.users, &app.api_keys, &caller.user, &name, budget, app.clock.now()).await?;
    let mut body = serde_json::to_value(&made.meta).expect("key metadata serializes");
    body["key"] = made.key.into();
    Ok(json(StatusCode::CREATED, &body))
}

#[tracing::instrument(skip_all)]
async fn list_keys(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let period = UsagePeriod::containing(ctx.app.clock.now());
    let keys: Vec<_> = ctx.app.api_keys.list(&caller.user.id).await?.into_iter().map(|k| k.as_of(period)).collect();
    ok(&serde_json::json!({ "keys": keys }))
}

/// `PATCH /api-keys/{id} {monthlyCharacterLimit}`: applies from the key's next request; what it
/// spoke this month counts against the new budget.
#[tracing::instrument(skip_all)]
async fn edit_key(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let id = path_param(ctx.req, "id").ok_or_else(|| ApiError::not_found("API key"))?;
    let body: KeyBudgetBody = json_body(ctx.req, 1024)?;
    let budget = api_keys::character_budget(body.monthly_character_limit)?;
    let key = app.api_keys.set_character_limit(&caller.user.id, id, budget).await?;
    let period = UsagePeriod::containing(app.clock.now());
    ok(&key.ok_or_else(|| ApiError::not_found("API key"))?.as_of(period))
}

#[tracing::instrument(skip_all)]
async fn revoke_key(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let id = path_param(ctx.req, "id").ok_or_else(|| ApiError::not_found("API key"))?;
    let revoked = api_keys::revoke(&app.users, &app.api_keys, &caller.user, id).await?;
    ok(&serde_json::json!({ "revoked": revoked.key_id }))
}

#[tracing::instrument(skip_all)]
async fn export(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let exporter = Exporter {
        recordings: &app.recordings,
        voices: &app.voices,
        consent: &app.consent,
        audio: app.audio(),
        stripe: app.stripe().await?,
        api_keys: &app.api_keys,
        workspaces: &app.workspaces,
        inline_limit: INLINE_LIMIT,
    };
    ok(&exporter.export(&caller.user, app.clock.now()).await?)
}

/// FORBIDDEN with the IdP's re-authentication link unless the IdP asked for the credentials within
/// the last 10 minutes: a session's age says nothing, since a sign-in through the IdP's own
/// session asks for nothing.
pub(crate) fn signed_in_lately(ctx: &Ctx<'_>, caller: &Caller, doing: &str) -> Result<(), ApiError> {
    let now = ctx.app.clock.now().unix_timestamp();
    if caller.session()?.authenticated_at.is_some_and(|at| now - at <= REAUTHENTICATE_WITHIN_SECS) {
        return Ok(());
    }
    let mut url = ctx.app.config.idp.callback_url.join("login").map_err(|e| ApiError::Internal(e.into()))?;
    url.query_pairs_mut().append_pair("reauthenticate", "true");
    Err(ApiError::Reauthenticate {
        message: format!("{doing} needs you to sign in again with your credentials (within 10 minutes)"),
        reauthenticate_url: url.to_string(),
    })
}

/// Needs the IdP to have asked for the credentials within the last 10 minutes (an erasure
/// already under way may be resumed
/// without one). 200 when everything is gone, 202 `deleting` when a step failed: the retry, or
/// the sweep within 15 minutes, finishes it.
#[tracing::instrument(skip_all)]
async fn erase(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let now = app.clock.now();
    if !caller.user.erasing {
        signed_in_lately(&ctx, &caller, "erasing the account")?;
    }
    if !caller.user.erasing {
        let sole = voice_core::assemble::teams(app).solely_owned(&caller.user.id).await?;
        if !sole.is_empty() {
            let names: Vec<_> = sole.iter().map(|m| format!("\"{}\"", m.workspace_name)).collect();
            return Err(ApiError::Conflict(format!(
                "you are the only OWNER of the workspace {}: transfer ownership (POST /workspaces/{{id}}/transfer) \
                 or delete it (DELETE /workspaces/{{id}}) before erasing your account",
                names.join(", ")
            )));
        }
    }
    let erasure = voice_core::assemble::erasure(app).await?;
    match erasure.erase(&caller.user.id, now).await? {
        ErasureStatus::Erased => {
            let mut response = json(StatusCode::OK, &serde_json::json!({ "status": ErasureStatus::Erased }));
            let cookie = cleared_cookie(app.sessions.policy()).parse().expect("cookie text is a valid header value");
            response.headers_mut().insert("set-cookie", cookie);
            Ok(response)
        }
        ErasureStatus::Deleting => Ok(json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "status": ErasureStatus::Deleting, "retry": "DELETE /user" }),
        )),
    }
}
