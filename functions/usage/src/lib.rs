//! `GET /usage` (this period's usage against the tier's limit) and `GET /user/profile`.

use lambda_http::{Body, Request, Response, http::Method};
use shared::{
    App,
    http::{self, HttpResult},
    usage::Usage,
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/usage") => usage(app, &req).await,
        (&Method::GET, "/user/profile") => profile(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[tracing::instrument(skip_all)]
async fn usage(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    http::ok(&Usage::of(&caller.user, app.clock.now()))
}

#[tracing::instrument(skip_all)]
async fn profile(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    http::ok(&caller.user.view(app.clock.now()))
}
