//! `GET /auth/callback?code&state`: completes the sign-in and opens a session. Every failure
//! redirects to the app with `authError=<code>` and leaves no session behind.

use lambda_http::{Body, Request, Response, http::Method};
use shared::{
    App,
    auth::{
        session::{ClientInfo, session_cookie},
        signin::{self, CallbackQuery, STATE_COOKIE},
    },
    http::{self, HttpResult},
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/auth/callback") => callback(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[tracing::instrument(skip_all)]
async fn callback(app: &App, req: &Request) -> HttpResult {
    let query = CallbackQuery {
        code: http::query(req, "code"),
        state: http::query(req, "state"),
        error: http::query(req, "error"),
    };
    let client =
        ClientInfo { ip_address: http::source_ip(req), user_agent: http::header(req, "user-agent").map(String::from) };
    let clear_state = signin::state_cookie(app, "", 0);

    match signin::complete(app, &query, http::cookie(req, STATE_COOKIE), &client).await {
        Ok(done) => {
            tracing::info!(user_id = %done.signed_in.user.id, "signed in");
            let cookie = session_cookie(&done.signed_in.token, app.sessions.policy());
            Ok(http::redirect(&done.return_to, &[cookie, clear_state]))
        }
        Err(failure) => {
            tracing::warn!(code = failure.code(), error = %error_chain(&failure), "sign-in refused");
            let mut to = app.config.web.app_url.clone();
            to.query_pairs_mut().append_pair("authError", failure.code());
            Ok(http::redirect(&to, &[clear_state]))
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
