//! Monthly usage periods, and the usage view of one period.

use std::{fmt, str::FromStr};

use serde::Serialize;
use time::{Date, Month, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::domain::tiers::Tier;

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
    /// Characters generated this period.
    pub characters: u64,
    pub period: String,
    pub resets_at: String,
    /// How close the month is to a wall (the client shows it as a banner); absent when not close.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<UsageAlert>,
}

/// What a usage alert is about: the plan's allowance, or the overage cap past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AlertOf {
    Allowance,
    OverageCap,
}

/// 80 % or 100 % of the month's allowance, or of what the overage cap pays for past it. Each is
/// emailed once a month, by the generation that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageAlert {
    pub of: AlertOf,
    pub percent: u8,
}

impl UsageAlert {
    /// The highest threshold `used` generations have reached, with `limit` (None: unlimited) and
    /// `cap_units` past it.
    pub fn at(used: u32, limit: Option<u32>, cap_units: u32) -> Option<Self> {
        let limit = limit?;
        let eighty = |of: u32| of - of / 5; // 80 %, rounded up
        let thresholds = [
            (limit + cap_units, AlertOf::OverageCap, 100),
            (limit + eighty(cap_units), AlertOf::OverageCap, 80),
            (limit, AlertOf::Allowance, 100),
            (eighty(limit), AlertOf::Allowance, 80),
        ];
        let crossed = thresholds
            .into_iter()
            .filter(|(_, of, _)| *of == AlertOf::Allowance || cap_units > 0)
            .find(|(at, _, _)| used >= *at && *at > 0)?;
        Some(Self { of: crossed.1, percent: crossed.2 })
    }

    /// The threshold the `used`-th generation reached, if it reached one (exactly one of any
    /// number of concurrent generations takes each count).
    pub fn reached(used: u32, limit: Option<u32>, cap_units: u32) -> Option<Self> {
        let now = Self::at(used, limit, cap_units)?;
        (Self::at(used.saturating_sub(1), limit, cap_units) != Some(now)).then_some(now)
    }

    /// Names it among a user's alerts of one month.
    pub fn id(self) -> String {
        let of = match self.of {
            AlertOf::Allowance => "allowance",
            AlertOf::OverageCap => "overage-cap",
        };
        format!("{of}-{}", self.percent)
    }
}

/// A finished month's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthUsage {
    #[serde(serialize_with = "as_text")]
    pub period: UsagePeriod,
    pub recordings: u32,
    pub characters: u64,
}

fn as_text<S: serde::Serializer>(period: &UsagePeriod, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(period)
}

impl Usage {
    /// Adds an admin's top-up to a limited tier's limit (unlimited stays unlimited).
    pub fn with_grant(mut self, granted: u32) -> Self {
        self.limit = self.limit.map(|limit| limit.saturating_add(granted));
        self.remaining = self.limit.map(|limit| limit.saturating_sub(self.used));
        self
    }

    /// The alert for this usage, with `cap_units` allowed past the limit.
    pub fn with_alert(mut self, cap_units: u32) -> Self {
        self.alert = UsageAlert::at(self.used, self.limit, cap_units);
        self
    }

    pub fn with_characters(mut self, characters: u64) -> Self {
        self.characters = characters;
        self
    }

    pub fn new(tier: Tier, used: u32, period: UsagePeriod) -> Self {
        let limit = tier.rules().monthly_recordings;
        Self {
            tier,
            used,
            limit,
            remaining: limit.map(|l| l.saturating_sub(used)),
            characters: 0,
            period: period.to_string(),
            resets_at: period.next().starts_at().format(&Rfc3339).expect("UTC timestamps format"),
            alert: None,
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

#[cfg(test)]
mod quota_arithmetic {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn given_a_limit_when_some_is_used_then_the_rest_remains() {
        let period = UsagePeriod::containing(datetime!(2026-11-20 10:00 UTC));
        let usage = Usage::new(Tier::Free, 4, period);
        assert_eq!((usage.used, usage.limit, usage.remaining), (4, Some(10), Some(6)));
        assert_eq!(Usage::new(Tier::Free, 12, period).remaining, Some(0), "never negative");
        assert_eq!(Usage::new(Tier::Premium, 12, period).remaining, None, "unlimited");
    }

    #[test]
    fn alerts_come_at_80_and_100_percent_of_the_allowance_then_of_the_cap() {
        let at = |used| UsageAlert::at(used, Some(100), 0).map(|a| (a.of, a.percent));
        assert_eq!(
            [at(79), at(80), at(99), at(100), at(150)],
            [
                None,
                Some((AlertOf::Allowance, 80)),
                Some((AlertOf::Allowance, 80)),
                Some((AlertOf::Allowance, 100)),
                Some((AlertOf::Allowance, 100))
            ]
        );
        // 20 allowed past the 100: 80 % of them is 16.
        let capped = |used| UsageAlert::at(used, Some(100), 20).map(|a| (a.of, a.percent));
        assert_eq!(capped(100), Some((AlertOf::Allowance, 100)));
        assert_eq!(capped(116), Some((AlertOf::OverageCap, 80)));
        assert_eq!(capped(120), Some((AlertOf::OverageCap, 100)));
        assert_eq!(UsageAlert::at(5000, None, 0), None, "unlimited: no wall");
        // Reached by exactly one count each.
        let reached: Vec<_> =
            (1..=125).filter_map(|used| UsageAlert::reached(used, Some(100), 20).map(|a| (used, a.id()))).collect();
        assert_eq!(
            reached,
            [
                (80, "allowance-80".into()),
                (100, "allowance-100".into()),
                (116, "overage-cap-80".into()),
                (120, "overage-cap-100".into())
            ]
        );
        // FREE's 10: 8 is 80 %.
        assert_eq!(UsageAlert::reached(8, Some(10), 0).map(UsageAlert::id), Some("allowance-80".into()));
    }

    #[test]
    fn periods_order_by_time() {
        let november: UsagePeriod = "2026-11".parse().unwrap();
        assert!(november.previous() < november && november < november.next());
        assert!("2025-12".parse::<UsagePeriod>().unwrap() < "2026-01".parse().unwrap());
    }
}
