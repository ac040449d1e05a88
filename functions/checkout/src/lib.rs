//! `GET /billing/plans` (public) and `POST /billing/checkout` (a Stripe Checkout Session).

use lambda_http::{
    Body, Request, Response,
    http::{Method, StatusCode},
};
use serde::Deserialize;
use shared::{
    ApiError, App,
    billing::{customers::ensure_customer, plans::plans, stripe::NewCheckout, sync::grants_access},
    config::Interval,
    http::{self, HttpResult},
    tiers::Tier,
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/billing/plans") => http::ok(&serde_json::json!({ "plans": plans(&app.config.billing) })),
        (&Method::POST, "/billing/checkout") => checkout(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckoutBody {
    tier: String,
    interval: Option<Interval>,
}

#[tracing::instrument(skip_all)]
async fn checkout(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let body: CheckoutBody = http::json_body(req, 1024)?;
    let tier: Tier =
        body.tier.parse().map_err(|e: shared::tiers::UnknownTier| ApiError::validation("tier", e.to_string()))?;
    if tier == Tier::Free {
        return Err(ApiError::validation("tier", "FREE needs no checkout; cancel in the billing portal instead"));
    }
    let interval = body.interval.unwrap_or(Interval::Month);
    let price = app.config.billing.price_for(tier, interval).ok_or_else(|| {
        ApiError::validation("interval", format!("{tier} is not offered {interval:?}ly").to_lowercase())
    })?;
    let user = &caller.user;
    if user.tier == tier && user.subscription_status.as_deref().is_some_and(grants_access) {
        return Err(ApiError::Conflict(format!(
            "you already have {tier}; change or cancel it in the billing portal (POST /billing/portal)"
        )));
    }

    let stripe = app.stripe().await?;
    let customer = ensure_customer(&app.users, stripe, user).await.map_err(|source| ApiError::Upstream {
        service: "Stripe",
        temporary: true,
        source,
    })?;
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
        .await
        .map_err(|e| ApiError::Upstream { service: "Stripe", temporary: true, source: e.into() })?;
    let url = session.url.ok_or_else(|| anyhow::anyhow!("Stripe returned a session without a URL"))?;
    Ok(http::json(StatusCode::OK, &serde_json::json!({ "sessionUrl": url })))
}
