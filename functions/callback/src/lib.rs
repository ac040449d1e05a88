//! `GET /auth/callback?code&state`: completes the sign-in and opens a session. Every failure
//! redirects to the app with `authError=<code>` and leaves no session behind.

use voice_core::{
    domain::session::ClientInfo,
    flows::signin::{CallbackQuery, SignIn, SignInFailure},
    http::{
        Ctx, HttpResult, Route, cookie,
        cookies::{STATE_COOKIE, session_cookie, state_cookie},
        header, query, redirect, source_ip,
    },
    route,
};

pub const ROUTES: &[Route] = &[route!("GET /auth/callback", public: callback, per_ip: 20)];

#[tracing::instrument(skip_all)]
async fn callback(ctx: Ctx<'_>) -> HttpResult {
    let (app, req) = (ctx.app, ctx.req);
    let query = CallbackQuery { code: query(req, "code"), state: query(req, "state"), error: query(req, "error") };
    let client = ClientInfo { ip_address: source_ip(req), user_agent: header(req, "user-agent").map(String::from) };
    let clear_state = state_cookie(app.sessions.policy(), "", 0);

    let completed = match app.auth0_client_secret().await {
        Ok(client_secret) => {
            let stripe = app.stripe().await.inspect_err(|e| tracing::warn!(error = format!("{e:#}"))).ok();
            let sign_in = SignIn {
                idp: &app.idp,
                attempts: &app.login_attempts,
                users: &app.users,
                sessions: &app.sessions,
                client_secret,
                stripe,
                web: &app.config.web,
                require_verified_email: app.config.idp.require_verified_email,
            };
            sign_in.complete(&query, cookie(req, STATE_COOKIE), &client, app.clock.now()).await
        }
        Err(error) => Err(SignInFailure::Internal(error)),
    };
    match completed {
        Ok(done) => {
            tracing::info!(user_id = %done.signed_in.user.id, "signed in");
            let cookie = session_cookie(&done.signed_in.token, app.sessions.policy());
            Ok(redirect(&done.return_to, &[cookie, clear_state]))
        }
        Err(failure) => {
            tracing::warn!(code = failure.code(), error = %error_chain(&failure), "sign-in refused");
            let mut to = app.config.web.app_url.clone();
            to.query_pairs_mut().append_pair("authError", failure.code());
            Ok(redirect(&to, &[clear_state]))
        }
    }
}

/// The error and its causes on one line, for the log.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
