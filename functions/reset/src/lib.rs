//! The monthly usage reset, run by EventBridge at 00:00 UTC on the 1st.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use voice_core::{App, flows::usage_reset::reset_month, store::users::ResetReport};

/// Idempotent: a second run (EventBridge retries, or a manual one) finds nothing left to reset.
pub async fn handle(app: &App, event: EventBridgeEvent) -> anyhow::Result<ResetReport> {
    let (period, report) = reset_month(&app.users, app.clock.now()).await?;
    tracing::info!(event_id = ?event.id, %period, stale = report.stale, reset = report.reset, "monthly usage reset");
    Ok(report)
}
