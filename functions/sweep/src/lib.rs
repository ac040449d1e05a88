//! Every 15 minutes (EventBridge): gives back the allowance of upload URLs that expired unused,
//! sends the overage usage events a generation could not send itself, and finishes account
//! erasures that stopped midway (each one tried, however many keep failing).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use voice_core::{
    App,
    flows::{
        erase::ErasureStatus,
        upload_sweep::{SweepReport, UploadSweep},
    },
};

/// How long an erasure runs on its own before the sweep resumes it.
pub const ERASURE_GRACE_SECS: i64 = 300;

/// Idempotent: each upload is settled once, so an overlapping or retried run changes nothing more.
pub async fn handle(app: &App, event: EventBridgeEvent) -> anyhow::Result<SweepReport> {
    let sweep = UploadSweep { recordings: &app.recordings, voices: &app.voices, audio: app.audio(), users: &app.users };
    let mut report = sweep.run(app.clock.now()).await?;
    // Favourite changes whose retag did not get through (a minute's grace for those under way).
    let before = app.clock.now().unix_timestamp() - 60;
    report.retagged = voice_core::flows::recordings::settle_retags(&app.recordings, app.audio(), before).await?;
    if let Some(overage) = &app.config.billing.overage {
        let before = app.clock.now().unix_timestamp() - voice_core::flows::overage::SWEEP_AFTER;
        let due = app.usage_events.due(before).await?;
        if !due.is_empty() {
            let metering = voice_core::assemble::metering(app, &overage.meter_event).await?;
            report.usage_events_sent = metering.send_all(due, app.clock.now()).await.sent as u64;
        }
    }
    let ended = app.sessions.apply_pending_ends().await?;
    if ended > 0 {
        tracing::info!(ended, "sign-outs made while DynamoDB was away are now durable");
    }
    tracing::info!(event_id = ?event.id, confirmed = report.confirmed, given_back = report.given_back, "upload sweep");

    // An erasure started moments ago may still be running in its own request.
    let unfinished = app.users.erasing(app.clock.now().unix_timestamp() - ERASURE_GRACE_SECS).await?;
    if !unfinished.is_empty() {
        let erasure = voice_core::assemble::erasure(app).await?;
        // Every one is tried: an erasure that keeps failing never holds up the others. Each
        // unfinished one is a metric (an alarm fires when one keeps failing for an hour); the run
        // itself succeeds, since the next sweep resumes them anyway.
        for user in unfinished {
            let status = match erasure.erase(&user, app.clock.now()).await {
                Ok(status) => status,
                Err(error) => {
                    tracing::error!(user_id = %user, error = %error, "an erasure could not be resumed");
                    ErasureStatus::Deleting
                }
            };
            tracing::info!(user_id = %user, ?status, "resumed an account erasure");
            if status == ErasureStatus::Deleting {
                report.unfinished_erasures += 1;
                voice_core::telemetry::metrics::count("UnfinishedErasures", ("Function", "sweep"));
            }
        }
    }
    Ok(report)
}
