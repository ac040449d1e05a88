//! `GET /billing/plans` (public) and `POST /billing/checkout` (a Stripe Checkout Session).

use voice_core::{
    domain::plans::{PlanRequest, plans},
    flows::checkout,
    http::{Caller, Ctx, HttpResult, Route, json_body, ok},
    route,
};

pub const ROUTES: &[Route] = &[
    route!("GET /billing/plans", public: list_plans),
    route!("POST /billing/checkout", user: checkout, rate_limit: Billing, body: PlanRequest),
];

async fn list_plans(ctx: Ctx<'_>) -> HttpResult {
    ok(&serde_json::json!({ "plans": plans(&ctx.app.config.billing) }))
}

#[tracing::instrument(skip_all)]
async fn checkout(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let body: PlanRequest = json_body(ctx.req, 1024)?;
    let price = body.price(&app.config.billing)?;
    let stripe = app.stripe().await?;
    let url = checkout::start(&app.users, stripe, &app.config.billing, &caller.user, price, app.clock.now()).await?;
    ok(&serde_json::json!({ "sessionUrl": url }))
}
