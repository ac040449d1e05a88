//! The monthly reset of every usage counter stamped with an earlier month.

use anyhow::Context;
use serde::Serialize;

use super::{MonthFigures, Users, attr, snapshot::Snapshots};
use crate::{
    domain::{ids::UserId, usage::UsagePeriod},
    store::dynamo::{self, number, string},
};

impl Users {
    /// Resets every counter stamped with a month before `period`; see [`reset_month`].
    pub async fn reset_stale_counters(&self, period: UsagePeriod, segments: i32) -> anyhow::Result<ResetReport> {
        reset_month(self, period, segments).await
    }
}

/// What a monthly reset did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResetReport {
    /// Users whose counter belonged to an earlier month.
    pub stale: u64,
    /// Of those, the ones this run reset (the rest had started the month on their own).
    pub reset: u64,
}

/// Resets every counter stamped with an earlier month to zero for `period`, scanning the users
/// table in `segments` parallel segments. Each write is conditional on the stamp still being
/// earlier, so running twice, or alongside generations that start the month themselves, loses
/// and double-counts nothing.
pub(super) async fn reset_month(users: &Users, period: UsagePeriod, segments: i32) -> anyhow::Result<ResetReport> {
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..segments {
        let (client, table, snapshots) = (users.client.clone(), users.table.clone(), users.snapshots.clone());
        tasks.spawn(async move { reset_segment(&client, &table, &snapshots, period, segment, segments).await });
    }
    let mut report = ResetReport::default();
    while let Some(done) = tasks.join_next().await {
        let part = done.context("a reset segment panicked")??;
        report.stale += part.stale;
        report.reset += part.reset;
    }
    Ok(report)
}

async fn reset_segment(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    snapshots: &Snapshots,
    period: UsagePeriod,
    segment: i32,
    segments: i32,
) -> anyhow::Result<ResetReport> {
    // Users only (an erased account's tombstone has no tier), with a counter from an earlier month.
    let stale = "attribute_exists(subscriptionTier) AND (attribute_not_exists(usagePeriod) OR usagePeriod < :period)";
    let mut report = ResetReport::default();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .segment(segment)
            .total_segments(segments)
            .projection_expression("userId, usagePeriod, recordingsThisMonth, charactersThisMonth")
            .filter_expression(stale)
            .expression_attribute_values(":period", string(period.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("scanning users")?;
        for item in page.items.unwrap_or_default() {
            let Some(user) = item.get(attr::USER_ID).cloned() else { continue };
            let id = UserId::parse(dynamo::str(&item, attr::USER_ID)?).context("stored userId")?;
            report.stale += 1;
            let update = client
                .update_item()
                .table_name(table)
                .key(attr::USER_ID, user)
                .expression_attribute_values(":period", string(period.to_string()))
                .expression_attribute_values(":zero", number(0));
            // The finished month is archived in the same write, conditioned on still being the
            // one read: a second or late run, or a generation that started the month meanwhile,
            // finds nothing to do and loses nothing.
            let update = match MonthFigures::from_row(&item)? {
                Some(old) => old
                    .archive(update)
                    .update_expression(
                        "SET usagePeriod = :period, recordingsThisMonth = :zero, charactersThisMonth = :zero, \
                         #month = :figures",
                    )
                    .condition_expression("attribute_exists(userId) AND usagePeriod = :old_period"),
                None => update
                    .update_expression(
                        "SET usagePeriod = :period, recordingsThisMonth = :zero, charactersThisMonth = :zero",
                    )
                    .condition_expression("attribute_exists(userId) AND attribute_not_exists(usagePeriod)"),
            };
            // A failed condition: the user started the month with a generation meanwhile.
            if dynamo::conditional_update(update).await.context("resetting a usage counter")?.is_some() {
                report.reset += 1;
                snapshots.forget(&id).await;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(report);
        }
    }
}
