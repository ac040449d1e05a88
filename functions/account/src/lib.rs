//! The caller's whole account: `DELETE /user` erases it and everything it owns (see
//! `flows::erase`); `GET /user/export` hands all of it out (see `flows::export`).

use lambda_http::http::StatusCode;
use voice_core::{
    ApiError,
    flows::{
        erase::{Erasure, ErasureStatus, REAUTHENTICATE_WITHIN_SECS},
        export::{Exporter, INLINE_LIMIT},
    },
    http::{Caller, Ctx, HttpResult, Route, cookies::cleared_cookie, json, ok},
    route,
};

pub const ROUTES: &[Route] = &[route!("DELETE /user", user: erase), route!("GET /user/export", user: export)];

#[tracing::instrument(skip_all)]
async fn export(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let exporter = Exporter {
        recordings: &app.recordings,
        voices: &app.voices,
        consent: &app.consent,
        audio: &app.audio,
        stripe: app.stripe().await?,
        inline_limit: INLINE_LIMIT,
    };
    ok(&exporter.export(&caller.user, app.clock.now()).await?)
}

/// Needs a sign-in within the last 10 minutes (an erasure already under way may be resumed
/// without one). 200 when everything is gone, 202 `deleting` when a step failed: the retry, or
/// the sweep within 15 minutes, finishes it.
#[tracing::instrument(skip_all)]
async fn erase(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let now = app.clock.now();
    let signed_in_ago = now.unix_timestamp() - caller.session.created_at;
    if signed_in_ago > REAUTHENTICATE_WITHIN_SECS && !caller.user.erasing {
        let mut url = app.config.idp.callback_url.join("login").map_err(|e| ApiError::Internal(e.into()))?;
        url.query_pairs_mut().append_pair("reauthenticate", "true");
        return Err(ApiError::Reauthenticate {
            message: "erasing the account needs a sign-in within the last 10 minutes".into(),
            reauthenticate_url: url.to_string(),
        });
    }
    let erasure = Erasure {
        users: &app.users,
        sessions: &app.sessions,
        recordings: &app.recordings,
        voices: &app.voices,
        subscriptions: &app.subscriptions,
        consent: &app.consent,
        audio: &app.audio,
        stripe: app.stripe().await?,
        elevenlabs: app.elevenlabs().await?,
    };
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
