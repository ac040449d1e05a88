//! The monthly usage reset, run by EventBridge at 00:00 UTC on the 1st.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use shared::{
    App,
    usage::{ResetReport, UsagePeriod, reset_month},
};

const SEGMENTS: i32 = 4;

/// Idempotent: a second run (EventBridge retries, or a manual one) finds nothing left to reset.
pub async fn handle(app: &App, event: EventBridgeEvent) -> anyhow::Result<ResetReport> {
    let period = UsagePeriod::containing(app.clock.now());
    let report = reset_month(&app.dynamodb, &app.config.tables.users, period, SEGMENTS).await?;
    tracing::info!(event_id = ?event.id, %period, stale = report.stale, reset = report.reset, "monthly usage reset");
    Ok(report)
}
