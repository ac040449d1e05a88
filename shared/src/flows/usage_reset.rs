//! The monthly usage reset (EventBridge, 00:00 UTC on the 1st).

use time::OffsetDateTime;

use crate::{
    domain::usage::UsagePeriod,
    store::users::{ResetReport, Users},
};

/// Parallel scan segments: enough to finish a large table well within the function's timeout.
pub const SEGMENTS: i32 = 4;

/// Resets every counter of an earlier month. Idempotent: a second run (EventBridge retries, or a
/// manual one) finds nothing left to reset, and generations that already started the month are
/// left alone.
pub async fn reset_month(users: &Users, now: OffsetDateTime) -> anyhow::Result<(UsagePeriod, ResetReport)> {
    let period = UsagePeriod::containing(now);
    let report = users.reset_stale_counters(period, SEGMENTS).await?;
    Ok((period, report))
}
