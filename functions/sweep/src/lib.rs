//! Every 15 minutes (EventBridge): gives back the allowance of upload URLs that expired unused,
//! and finishes account erasures that stopped midway.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use voice_core::{
    App,
    flows::{
        erase::ErasureStatus,
        upload_sweep::{SweepReport, UploadSweep},
    },
};

/// Idempotent: each upload is settled once, so an overlapping or retried run changes nothing more.
pub async fn handle(app: &App, event: EventBridgeEvent) -> anyhow::Result<SweepReport> {
    let sweep = UploadSweep { recordings: &app.recordings, voices: &app.voices, audio: app.audio(), users: &app.users };
    let report = sweep.run(app.clock.now()).await?;
    tracing::info!(event_id = ?event.id, confirmed = report.confirmed, given_back = report.given_back, "upload sweep");

    let unfinished = app.users.erasing().await?;
    if !unfinished.is_empty() {
        let erasure = voice_core::assemble::erasure(app).await?;
        for user in unfinished {
            let status = erasure.erase(&user, app.clock.now()).await?;
            tracing::info!(user_id = %user, ?status, "resumed an account erasure");
            if status == ErasureStatus::Deleting {
                anyhow::bail!("the erasure of {user} is still unfinished; the retry will resume it");
            }
        }
    }
    Ok(report)
}
