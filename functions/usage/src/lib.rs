//! `GET /usage` (this period's usage against the tier's limit) and `GET /user/profile`.

use voice_core::{
    http::{Caller, Ctx, HttpResult, Route, ok},
    route,
};

pub const ROUTES: &[Route] = &[route!("GET /usage", user: usage), route!("GET /user/profile", user: profile)];

#[tracing::instrument(skip_all)]
async fn usage(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&caller.user.usage(ctx.app.clock.now()))
}

#[tracing::instrument(skip_all)]
async fn profile(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&caller.user.view(ctx.app.clock.now()))
}
