//! `POST /billing/portal`: a Stripe Billing Portal session for the caller's customer.

use voice_core::{
    flows::customers::ensure_customer,
    http::{Caller, Ctx, HttpResult, Route, ok},
    route,
};

pub const ROUTES: &[Route] = &[route!("POST /billing/portal", user: portal)];

#[tracing::instrument(skip_all)]
async fn portal(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let stripe = app.stripe().await?;
    let customer = ensure_customer(&app.users, stripe, &caller.user).await?;
    let session = stripe.create_portal_session(&customer, app.config.billing.portal_return_url.as_str()).await?;
    ok(&serde_json::json!({ "portalUrl": session.url }))
}
