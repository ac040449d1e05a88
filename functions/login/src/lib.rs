//! `GET /auth/login?returnTo=`: starts the OIDC authorization code flow (state, nonce, PKCE).

use lambda_http::{Body, Request, Response, http::Method};
use shared::{
    App,
    auth::signin,
    http::{self, HttpResult},
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/auth/login") => login(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[tracing::instrument(skip_all)]
async fn login(app: &App, req: &Request) -> HttpResult {
    let started = signin::begin(app, http::query(req, "returnTo")).await?;
    Ok(http::redirect(&started.location, &[started.state_cookie]))
}
