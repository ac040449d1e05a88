//! `POST /billing/webhook`: Stripe's signed events. Verified over the raw body, recorded once by
//! event id, then applied by syncing the subscription from Stripe. A transient failure answers
//! 5xx (and releases the event) so that Stripe retries.

use voice_core::{
    ApiError,
    flows::billing::Billing,
    http::{Ctx, HttpResult, Route, header, ok},
    route,
    upstream::stripe::{signature, types::Event},
};

pub const ROUTES: &[Route] = &[route!("POST /billing/webhook", public: webhook)];

/// Stripe's events are far smaller; anything larger is not from Stripe.
const MAX_BODY: usize = 256 * 1024;

#[tracing::instrument(skip_all)]
async fn webhook(ctx: Ctx<'_>) -> HttpResult {
    let app = ctx.app;
    let payload: &[u8] = ctx.req.body().as_ref();
    if payload.len() > MAX_BODY {
        return Err(ApiError::validation("body", format!("larger than {MAX_BODY} bytes")));
    }
    let secrets = app.stripe_webhook_secrets().await?;
    let now = app.clock.now();
    signature::verify(payload, header(ctx.req, "stripe-signature"), secrets, now.unix_timestamp())
        .map_err(|e| ApiError::validation("Stripe-Signature", e.to_string()))?;
    let event: Event = serde_json::from_slice(payload).map_err(|e| ApiError::validation("body", e.to_string()))?;

    let events = &app.webhook_events;
    if !events.claim(&event.id, &event.kind, now.unix_timestamp()).await? {
        tracing::info!(event_id = event.id, kind = event.kind, "duplicate delivery ignored");
        return ok(&serde_json::json!({ "received": true, "duplicate": true }));
    }
    let billing = Billing {
        stripe: app.stripe().await?,
        users: &app.users,
        subscriptions: &app.subscriptions,
        settings: &app.config.billing,
    };
    match billing.apply_event(&event, now).await {
        Ok(applied) => {
            tracing::info!(event_id = event.id, kind = event.kind, ?applied, "event applied");
            ok(&serde_json::json!({ "received": true, "duplicate": false, "applied": applied }))
        }
        Err(error) => {
            if let Err(release) = events.release(&event.id).await {
                tracing::error!(error = format!("{release:#}"), "could not release the event for a retry");
            }
            Err(ApiError::Upstream { service: "Stripe", temporary: true, source: error })
        }
    }
}
