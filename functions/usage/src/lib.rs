//! `GET /usage` (this period's usage against the tier's limit) and `GET /user/profile`.

use serde::Serialize;
use voice_core::{
    domain::{usage::Usage, user::Allowances},
    http::{Caller, Ctx, HttpResult, Route, ok},
    route,
};

pub const ROUTES: &[Route] = &[route!("GET /usage", user: usage), route!("GET /user/profile", user: profile)];

/// This month's generations, plus uploads, storage and favourites against the tier.
#[derive(Serialize)]
struct UsageView {
    #[serde(flatten)]
    generations: Usage,
    allowances: Allowances,
}

#[tracing::instrument(skip_all)]
async fn usage(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let now = ctx.app.clock.now();
    ok(&UsageView { generations: caller.user.usage(now), allowances: caller.user.allowances(now) })
}

#[tracing::instrument(skip_all)]
async fn profile(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&caller.user.view(ctx.app.clock.now()))
}
