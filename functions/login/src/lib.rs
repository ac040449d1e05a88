//! `GET /auth/login?returnTo=&reauthenticate=true`: starts the OIDC authorization code flow
//! (state, nonce, PKCE); `reauthenticate` makes the IdP ask for the password again.

use voice_core::{
    flows::signin,
    http::{Ctx, HttpResult, Route, cookies::state_cookie, query, redirect},
    route,
    store::login_attempts::LOGIN_TTL_SECS,
};

pub const ROUTES: &[Route] = &[route!("GET /auth/login", public: login, per_ip: 20)];

#[tracing::instrument(skip_all)]
async fn login(ctx: Ctx<'_>) -> HttpResult {
    let app = ctx.app;
    let reauthenticate = query(ctx.req, "reauthenticate") == Some("true");
    let return_to = query(ctx.req, "returnTo");
    let started = signin::begin(&app.idp, &app.login_attempts, &app.config.web, return_to, reauthenticate).await?;
    let cookie = state_cookie(app.sessions.policy(), &started.state, LOGIN_TTL_SECS);
    Ok(redirect(&started.location, &[cookie]))
}
