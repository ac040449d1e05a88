//! `POST /billing/webhook`: Stripe's signed events. Verified over the raw body, claimed by event
//! id with a lease, applied by syncing the subscription from Stripe, then marked done. A
//! transient failure answers 5xx (and releases the lease) so that Stripe retries; a delivery
//! killed mid-apply leaves a lease that expires before Stripe's retry, which then applies it.

use voice_core::{
    ApiError,
    clock::unix_ms,
    flows::{
        billing::{Applied, Billing},
        billing_alerts::BillingAlerts,
    },
    http::{Ctx, HttpResult, Route, header, ok},
    route,
    store::webhook_events::Claim,
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
    // Everything that can fail before the work (secrets, clients) happens before the claim.
    let secrets = app.stripe_webhook_secrets().await?;
    let stripe = app.stripe().await?;
    let now = app.clock.now();
    signature::verify(payload, header(ctx.req, "stripe-signature"), secrets, now.unix_timestamp())
        .map_err(|e| ApiError::validation("Stripe-Signature", e.to_string()))?;
    let event: Event = serde_json::from_slice(payload).map_err(|e| ApiError::validation("body", e.to_string()))?;

    let events = &app.webhook_events;
    let lease_ms = i64::try_from(app.config.billing.webhook_lease.as_millis()).unwrap_or(i64::MAX);
    let lease = match events.claim(&event.id, &event.kind, unix_ms(now), lease_ms).await? {
        Claim::Leased { until_ms } => until_ms,
        Claim::Done => {
            tracing::info!(event_id = event.id, kind = event.kind, "duplicate delivery ignored");
            outcome("duplicate");
            return ok(&serde_json::json!({ "received": true, "duplicate": true }));
        }
        Claim::InProgress => {
            outcome("busy");
            // Any non-2xx makes Stripe retry later, by when this delivery finished or its lease ran out.
            return Err(ApiError::Conflict(format!("event {} is being applied by another delivery", event.id)));
        }
    };
    let billing =
        Billing { stripe, users: &app.users, subscriptions: &app.subscriptions, settings: &app.config.billing };
    let alerts = BillingAlerts {
        stripe,
        users: &app.users,
        events,
        mailer: app.mailer(),
        settings: &app.config.billing,
        account_url: &app.config.billing.portal_return_url,
    };
    let applied = async {
        let applied = billing.apply_event(&event, now).await?;
        let alert = alerts.apply_event(&event, now).await?;
        Ok::<_, anyhow::Error>((applied, alert))
    };
    match applied.await {
        Ok((applied, alert)) => {
            tracing::info!(
                event_id = event.id,
                kind = event.kind,
                outcome = applied.outcome(),
                ?applied,
                ?alert,
                "event applied"
            );
            events.complete(&event.id, applied.outcome(), unix_ms(app.clock.now())).await?;
            outcome(if matches!(applied, Applied::Ignored { .. }) { "ignored" } else { "applied" });
            ok(&serde_json::json!({ "received": true, "duplicate": false, "applied": applied }))
        }
        Err(error) => {
            outcome("failed");
            if let Err(release) = events.release(&event.id, lease).await {
                tracing::error!(error = format!("{release:#}"), "could not release the event for a retry");
            }
            Err(ApiError::Upstream { service: "Stripe", temporary: true, source: error })
        }
    }
}

/// The `WebhookOutcomes` metric: applied, duplicate, ignored, busy (another delivery holds the
/// event) or failed (to be retried by Stripe).
fn outcome(outcome: &str) {
    voice_core::telemetry::metrics::count("WebhookOutcomes", ("Outcome", outcome));
}
