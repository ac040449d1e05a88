//! `GET /auth/session` (who am I) and `POST /auth/logout`.

use lambda_http::{Body, Request, Response, http::Method};
use serde::Serialize;
use shared::{
    ApiError, App,
    auth::session::cleared_cookie,
    http::{self, HttpResult},
    users::UserView,
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/auth/session") => current(app, &req).await,
        (&Method::POST, "/auth/logout") => logout(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CurrentSession {
    #[serde(flatten)]
    user: UserView,
    csrf_token: String,
    session_expires_at: i64,
}

#[tracing::instrument(skip_all)]
async fn current(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    http::ok(&CurrentSession {
        user: caller.user.view(app.clock.now()),
        csrf_token: caller.session.csrf_token,
        session_expires_at: caller.session.absolute_expires_at,
    })
}

/// Ends the session in both stores (it succeeds while either is up), clears the cookie, and
/// hands back the IdP's logout URL so the browser ends the Auth0 session too.
#[tracing::instrument(skip_all)]
async fn logout(app: &App, req: &Request) -> HttpResult {
    let session = app.session(req).await?;
    app.sessions.end(&session, app.clock.now()).await.map_err(|source| ApiError::Upstream {
        service: "session store",
        temporary: true,
        source,
    })?;
    let logout_url = app.idp.logout_url(&app.config.web.app_url).await;
    let mut response =
        http::json(lambda_http::http::StatusCode::OK, &serde_json::json!({ "logoutUrl": logout_url.as_str() }));
    let cookie = cleared_cookie(app.sessions.policy()).parse().expect("cookie text is a valid header value");
    response.headers_mut().insert("set-cookie", cookie);
    Ok(response)
}
