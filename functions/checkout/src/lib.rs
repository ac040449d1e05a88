//! `GET /billing/plans` (public) and `POST /billing/checkout` (a Stripe Checkout Session).

use voice_core::{
    ApiError,
    domain::plans::{PlanRequest, plans},
    flows::customers::ensure_customer,
    http::{Caller, Ctx, HttpResult, Route, json_body, ok},
    route,
    upstream::stripe::client::NewCheckout,
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
    let tier = price.tier;
    let user = &caller.user;
    let stripe = app.stripe().await?;
    // One live subscription per customer: our mirror first, then Stripe itself (a checkout paid
    // a moment ago may not have reached us yet).
    let live_in_stripe = match &user.stripe_customer_id {
        Some(customer) => stripe.open_subscriptions(customer).await?.iter().any(|s| s.status.grants_access()),
        None => false,
    };
    if user.has_live_subscription() || live_in_stripe {
        return Err(ApiError::Conflict(
            "you already have a subscription; change its plan with POST /billing/subscription, or manage it in \
             the billing portal (POST /billing/portal)"
                .to_owned(),
        ));
    }
    let customer = ensure_customer(&app.users, stripe, user).await?;
    // One session per user, price and ten-minute window: a double click reuses it.
    let window = app.clock.now().unix_timestamp() / 600;
    let idempotency_key = format!("checkout-{}-{}-{window}", user.id, price.id);
    let billing = &app.config.billing;
    let session = stripe
        .create_checkout_session(&NewCheckout {
            customer: &customer,
            price: &price.id,
            user_id: user.id.as_str(),
            tier: tier.as_str(),
            success_url: billing.checkout_success_url.as_str(),
            cancel_url: billing.checkout_cancel_url.as_str(),
            idempotency_key: &idempotency_key,
        })
        .await?;
    let url = session.url.ok_or_else(|| anyhow::anyhow!("Stripe returned a session without a URL"))?;
    ok(&serde_json::json!({ "sessionUrl": url }))
}
