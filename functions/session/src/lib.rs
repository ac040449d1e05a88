//! `GET /auth/session` (who am I) and `POST /auth/logout`.

use lambda_http::http::StatusCode;
use serde::Serialize;
use voice_core::{
    ApiError,
    domain::{session::Session, user::UserView},
    http::{Caller, Ctx, HttpResult, Route, cookies::cleared_cookie, json, ok},
    route,
};

pub const ROUTES: &[Route] =
    &[route!("GET /auth/session", user: current), route!("POST /auth/logout", session: logout)];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CurrentSession {
    #[serde(flatten)]
    user: UserView,
    csrf_token: String,
    session_expires_at: i64,
}

#[tracing::instrument(skip_all)]
async fn current(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&CurrentSession {
        user: caller.user.view(ctx.app.clock.now()),
        csrf_token: caller.session()?.csrf_token.clone(),
        session_expires_at: caller.session()?.absolute_expires_at,
    })
}

/// Ends the session in both stores (it succeeds while either is up), clears the cookie, and
/// hands back the IdP's logout URL so the browser ends the Auth0 session too.
#[tracing::instrument(skip_all)]
async fn logout(ctx: Ctx<'_>, session: Session) -> HttpResult {
    let app = ctx.app;
    app.sessions.end(&session, app.clock.now()).await.map_err(|source| ApiError::Upstream {
        service: "session store",
        temporary: true,
        source,
    })?;
    let logout_url = app.idp.logout_url(&app.config.web.app_url).await;
    let mut response = json(StatusCode::OK, &serde_json::json!({ "logoutUrl": logout_url.as_str() }));
    let cookie = cleared_cookie(app.sessions.policy()).parse().expect("cookie text is a valid header value");
    response.headers_mut().insert("set-cookie", cookie);
    Ok(response)
}
