//! `GET /auth/session` (who am I), `POST /auth/logout`, and `POST /push/tickets` (a ticket that
//! opens a WebSocket connection of live updates).

use lambda_http::http::StatusCode;
use serde::Serialize;
use voice_core::{
    ApiError,
    domain::{push::TICKET_TTL_SECONDS, session::Session, user::UserView},
    http::{Caller, Ctx, HttpResult, Route, cookies::cleared_cookie, created, json, ok},
    route,
    store::connections::{Holder, session_tag},
};

pub const ROUTES: &[Route] = &[
    route!("GET /auth/session", user: current),
    route!("POST /auth/logout", session: logout),
    route!("POST /push/tickets", user: ticket),
];

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
    let now = app.clock.now();
    app.sessions.end(&session, now).await.map_err(|source| ApiError::Upstream {
        service: "session store",
        temporary: true,
        source,
    })?;
    if let Some(push) = voice_core::assemble::push(app) {
        push.close_session(&session.user_id, &session_tag(&session), now.unix_timestamp()).await;
    }
    let logout_url = app.idp.logout_url(&app.config.web.app_url).await;
    let mut response = json(StatusCode::OK, &serde_json::json!({ "logoutUrl": logout_url.as_str() }));
    let cookie = cleared_cookie(app.sessions.policy()).parse().expect("cookie text is a valid header value");
    response.headers_mut().insert("set-cookie", cookie);
    Ok(response)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    ticket: String,
    /// Where to connect: `{url}?ticket={ticket}`.
    url: String,
    expires_in: u64,
}

/// A single-use ticket for the caller's session, good for 30 seconds: the browser cannot send
/// the session cookie to the WebSocket API's own domain, so it shows this instead.
#[tracing::instrument(skip_all)]
async fn ticket(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let (Some((connections, _)), Some(settings)) = (&app.push, &app.config.push) else {
        return Err(ApiError::NotFound("live updates are not configured here".into()));
    };
    let session = caller.session()?;
    let holder = Holder { user_id: caller.user.id.clone(), session: session_tag(session) };
    let ticket = connections.issue_ticket(&holder).await.map_err(|source| ApiError::Upstream {
        service: "session store",
        temporary: true,
        source,
    })?;
    created(&Ticket { ticket, url: settings.public_url.to_string(), expires_in: TICKET_TTL_SECONDS })
}
