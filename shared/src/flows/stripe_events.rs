//! A delivery of Stripe's webhook, once its signature is verified: the event is claimed by its id
//! with a lease, applied (the subscription synced from Stripe, the payment alert), then marked
//! done. The same event delivered again is acknowledged without applying it twice; one that
//! another delivery is applying right now is refused so that Stripe retries; a failure releases
//! the lease and is retried; a delivery killed mid-apply leaves a lease that runs out before
//! Stripe's retry, which then applies it.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    clock::unix_ms,
    error::ApiError,
    flows::{
        billing::{Applied, Billing},
        billing_alerts::BillingAlerts,
    },
    store::webhook_events::{Claim, WebhookEvents},
    telemetry::metrics,
    upstream::stripe::types::Event,
};

/// What a delivery did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    pub received: bool,
    pub duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
}

/// What applying Stripe's events reads and writes.
pub struct StripeEvents<'a> {
    pub billing: Billing<'a>,
    pub alerts: BillingAlerts<'a>,
    pub events: &'a WebhookEvents,
    /// How long a delivery holds its event.
    pub lease: Duration,
}

impl StripeEvents<'_> {
    /// Applies a verified event once, however often it is delivered.
    pub async fn receive(&self, event: &Event, now: OffsetDateTime) -> Result<Received, ApiError> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let lease = match self.events.claim(&event.id, &event.kind, unix_ms(now), lease_ms).await? {
            Claim::Leased { until_ms } => until_ms,
            Claim::Done => {
                tracing::info!(event_id = event.id, kind = event.kind, "duplicate delivery ignored");
                outcome("duplicate");
                return Ok(Received { received: true, duplicate: true, applied: None });
            }
            Claim::InProgress => {
                outcome("busy");
                // Any non-2xx makes Stripe retry later, by when this delivery finished or its lease ran out.
                return Err(ApiError::Conflict(format!("event {} is being applied by another delivery", event.id)));
            }
        };
        let applied = async {
            let applied = self.billing.apply_event(event, now).await?;
            let alert = self.alerts.apply_event(event, now).await?;
            Ok::<_, anyhow::Error>((applied, alert))
        };
        match applied.await {
            Ok((applied, alert)) => {
                let (event_id, kind) = (&event.id, &event.kind);
                tracing::info!(event_id, kind, outcome = applied.outcome(), ?applied, ?alert, "event applied");
                self.events.complete(&event.id, applied.outcome(), unix_ms(now)).await?;
                outcome(if matches!(applied, Applied::Ignored { .. }) { "ignored" } else { "applied" });
                Ok(Received { received: true, duplicate: false, applied: Some(applied) })
            }
            Err(error) => {
                outcome("failed");
                if let Err(release) = self.events.release(&event.id, lease).await {
                    tracing::error!(error = format!("{release:#}"), "could not release the event for a retry");
                }
                Err(ApiError::Upstream { service: "Stripe", temporary: true, source: error })
            }
        }
    }
}

/// The `WebhookOutcomes` metric: applied, duplicate, ignored, busy (another delivery holds the
/// event) or failed (to be retried by Stripe).
fn outcome(outcome: &str) {
    metrics::count_by("WebhookOutcomes", ("Outcome", outcome));
}
