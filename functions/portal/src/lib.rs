//! `POST /billing/portal`: a Stripe Billing Portal session for the caller's customer.

use lambda_http::{Body, Request, Response, http::Method};
use shared::{
    ApiError, App,
    billing::customers::ensure_customer,
    http::{self, HttpResult},
};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, "/billing/portal") => portal(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[tracing::instrument(skip_all)]
async fn portal(app: &App, req: &Request) -> HttpResult {
    let caller = app.caller(req).await?;
    let upstream = |source: anyhow::Error| ApiError::Upstream { service: "Stripe", temporary: true, source };
    let stripe = app.stripe().await?;
    let customer = ensure_customer(&app.users, stripe, &caller.user).await.map_err(upstream)?;
    let session = stripe
        .create_portal_session(&customer, app.config.billing.portal_return_url.as_str())
        .await
        .map_err(|e| upstream(e.into()))?;
    http::ok(&serde_json::json!({ "portalUrl": session.url }))
}
