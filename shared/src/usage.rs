//! Monthly usage periods and what a user has used of the current one (read side).

use std::{fmt, str::FromStr};

use anyhow::Context;
use serde::Serialize;
use time::{Date, Month, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{tiers::Tier, users::User};

/// A calendar month in UTC, stored as `YYYY-MM` next to the counter it scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsagePeriod {
    year: i32,
    month: Month,
}

impl UsagePeriod {
    pub fn containing(at: OffsetDateTime) -> Self {
        Self { year: at.year(), month: at.month() }
    }

    pub fn next(self) -> Self {
        match self.month {
            Month::December => Self { year: self.year + 1, month: Month::January },
            month => Self { year: self.year, month: month.next() },
        }
    }

    pub fn previous(self) -> Self {
        match self.month {
            Month::January => Self { year: self.year - 1, month: Month::December },
            month => Self { year: self.year, month: month.previous() },
        }
    }

    pub fn starts_at(self) -> OffsetDateTime {
        Date::from_calendar_date(self.year, self.month, 1)
            .expect("the first of a month is a valid date")
            .midnight()
            .assume_utc()
    }
}

impl fmt::Display for UsagePeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month as u8)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a usage period is written YYYY-MM")]
pub struct InvalidPeriod;

impl FromStr for UsagePeriod {
    type Err = InvalidPeriod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (year, month) = s.split_once('-').ok_or(InvalidPeriod)?;
        let (year, month): (i32, u8) =
            (year.parse().map_err(|_| InvalidPeriod)?, month.parse().map_err(|_| InvalidPeriod)?);
        let month = Month::try_from(month).map_err(|_| InvalidPeriod)?;
        if year.to_string().len() != 4 || s.len() != 7 {
            return Err(InvalidPeriod);
        }
        Ok(Self { year, month })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub tier: Tier,
    pub used: u32,
    /// null: unlimited.
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub period: String,
    pub resets_at: String,
}

impl Usage {
    /// A counter stamped with an earlier period counts as zero: the month has turned even if the
    /// monthly reset has not reached this user yet.
    pub fn of(user: &User, now: OffsetDateTime) -> Self {
        let period = UsagePeriod::containing(now);
        let used = if user.usage_period == Some(period) { user.recordings_this_month } else { 0 };
        Self::new(user.tier, used, period)
    }

    pub fn new(tier: Tier, used: u32, period: UsagePeriod) -> Self {
        let limit = tier.rules().monthly_recordings;
        Self {
            tier,
            used,
            limit,
            remaining: limit.map(|l| l.saturating_sub(used)),
            period: period.to_string(),
            resets_at: period.next().starts_at().format(&Rfc3339).expect("UTC timestamps format"),
        }
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
pub async fn reset_month(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    period: UsagePeriod,
    segments: i32,
) -> anyhow::Result<ResetReport> {
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..segments {
        let (client, table) = (client.clone(), table.to_owned());
        tasks.spawn(async move { reset_segment(&client, &table, period, segment, segments).await });
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
    period: UsagePeriod,
    segment: i32,
    segments: i32,
) -> anyhow::Result<ResetReport> {
    use crate::dynamo::{self, n, s};

    let stale = "attribute_not_exists(usagePeriod) OR usagePeriod < :period";
    let mut report = ResetReport::default();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .segment(segment)
            .total_segments(segments)
            .projection_expression("userId")
            .filter_expression(stale)
            .expression_attribute_values(":period", s(period.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("scanning users")?;
        for item in page.items.unwrap_or_default() {
            let Some(user) = item.get("userId").cloned() else { continue };
            report.stale += 1;
            let update = client
                .update_item()
                .table_name(table)
                .key("userId", user)
                .update_expression("SET usagePeriod = :period, recordingsThisMonth = :zero")
                .condition_expression(format!("attribute_exists(userId) AND ({stale})"))
                .expression_attribute_values(":period", s(period.to_string()))
                .expression_attribute_values(":zero", n(0));
            // A failed condition: the user started the month with a generation meanwhile.
            if dynamo::conditional_update(update).await.context("resetting a usage counter")?.is_some() {
                report.reset += 1;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn periods_roll_over_the_year() {
        let december = UsagePeriod::containing(datetime!(2026-12-31 23:59:59 UTC));
        assert_eq!(december.to_string(), "2026-12");
        assert_eq!(december.next().to_string(), "2027-01");
        assert_eq!(december.next().previous(), december);
        assert_eq!(december.next().starts_at(), datetime!(2027-01-01 0:00 UTC));
    }

    #[test]
    fn periods_parse_only_their_own_format() {
        assert_eq!("2026-03".parse::<UsagePeriod>().unwrap().to_string(), "2026-03");
        for bad in ["2026-13", "2026-3", "26-03", "2026/03", ""] {
            assert_eq!(bad.parse::<UsagePeriod>(), Err(InvalidPeriod), "{bad}");
        }
    }
}
