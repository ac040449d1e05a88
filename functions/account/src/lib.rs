//! The caller's whole account: `DELETE /user` erases it and everything it owns (see
//! `flows::erase`); `GET /user/export` hands all of it out (see `flows::export`).

use lambda_http::http::StatusCode;
use voice_core::{
    ApiError,
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
    route!("DELETE /api-keys/{id}", user: revoke_key),
];

/// `POST /api-keys`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub name: String,
}

/// The most characters of an API key's name.
pub const KEY_NAME_MAX_CHARS: usize = 50;

/// An API key's name as stored: trimmed, 1 to 50 printable characters.
pub fn key_name(raw: &str) -> Result<String, ApiError> {
    voice_core::domain::text::printable("name", raw, 1, KEY_NAME_MAX_CHARS)
}

/// `POST /api-keys {name}`: the key is in this answer and nowhere else, ever.
#[tracing::instrument(skip_all)]
async fn create_key(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let body: NewKeyBody = json_body(ctx.req, 1024)?;
    let name = key_name(&body.name)?;
    let made = api_keys::create(&app.users, &app.api_keys, &caller.user, &name, app.clock.now()).await?;
    let mut body = serde_json::to_value(&made.meta).expect("key metadata serializes");
    body["key"] = made.key.into();
    Ok(json(StatusCode::CREATED, &body))
}

#[tracing::instrument(skip_all)]
async fn list_keys(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&serde_json::json!({ "keys": ctx.app.api_keys.list(&caller.user.id).await? }))
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
        inline_limit: INLINE_LIMIT,
    };
    ok(&exporter.export(&caller.user, app.clock.now()).await?)
}

/// Needs the IdP to have asked for the credentials within the last 10 minutes (an erasure
/// already under way may be resumed
/// without one). 200 when everything is gone, 202 `deleting` when a step failed: the retry, or
/// the sweep within 15 minutes, finishes it.
#[tracing::instrument(skip_all)]
async fn erase(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let now = app.clock.now();
    // The IdP must have asked for the credentials lately: a session's age says nothing, since a
    // sign-in through the IdP's own session asks for nothing.
    let asked_lately =
        caller.session()?.authenticated_at.is_some_and(|at| now.unix_timestamp() - at <= REAUTHENTICATE_WITHIN_SECS);
    if !asked_lately && !caller.user.erasing {
        let mut url = app.config.idp.callback_url.join("login").map_err(|e| ApiError::Internal(e.into()))?;
        url.query_pairs_mut().append_pair("reauthenticate", "true");
        return Err(ApiError::Reauthenticate {
            message: "erasing the account needs you to sign in again with your credentials (within 10 minutes)".into(),
            reauthenticate_url: url.to_string(),
        });
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
