//! Nightly reconciliation, run by EventBridge at 03:30 UTC: every user's subscription is re-synced
//! from Stripe, repairing what a lost webhook left wrong; and every clone at ElevenLabs that no
//! row of ours owns is deleted, account by account; and each overage customer's usage is compared
//! with what Stripe's meter counted, what it lacks sent again.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use voice_core::{
    App,
    flows::{
        reconcile::{ReconcileReport, Reconciler},
        voice_reconcile::VoiceReconciler,
    },
};

/// Syncs in flight at once: well under Stripe's read rate limit (100/s live).
const CONCURRENCY: usize = 8;

/// Idempotent: a second run (EventBridge retries, or a manual one) finds nothing left to repair.
/// Fails (so EventBridge retries) when any subscription could not be synced.
pub async fn handle(app: &App, event: EventBridgeEvent) -> anyhow::Result<ReconcileReport> {
    let billing = voice_core::assemble::billing(app).await?;
    let reconciler = Reconciler { billing, users: &app.users, concurrency: CONCURRENCY };
    let report = reconciler.run(app.clock.now()).await?;
    tracing::info!(event_id = ?event.id, ?report, "billing reconciliation");
    if let Some(overage) = &app.config.billing.overage {
        let metering = voice_core::assemble::metering(app, &overage.meter_event).await?;
        let usage = metering.reconcile(app.clock.now()).await?;
        tracing::info!(event_id = ?event.id, ?usage, "usage reconciliation");
    }
    for account in app.elevenlabs().await?.all() {
        let voices = VoiceReconciler { voices: &app.voices, account }.run(app.clock.now()).await?;
        tracing::info!(event_id = ?event.id, account = account.name, ?voices, "voice reconciliation");
    }
    if report.failed > 0 {
        anyhow::bail!("{} of the subscriptions could not be synced; the retry will try them again", report.failed);
    }
    Ok(report)
}
