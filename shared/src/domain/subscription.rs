//! Stripe subscription states and what each grants.
//!
//! Status → access:
//! - `active`, `trialing`: the price's tier;
//! - `past_due`: the price's tier is kept while Stripe retries the payment (grace); the status
//!   shows `past_due` so the app can ask for a new card. Stripe ends the grace by moving the
//!   subscription to `canceled` or `unpaid` (per the account's retry settings);
//! - `canceled`, `unpaid`, `incomplete`, `incomplete_expired`, `paused`, or a status this code
//!   does not know: FREE;
//! - a price that is not configured grants nothing (FREE).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::domain::tiers::Tier;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Canceled,
    Unpaid,
    Incomplete,
    IncompleteExpired,
    Paused,
    /// A status Stripe added after this code was written: kept as sent, grants nothing.
    Other(String),
}

const NAMED: [(SubscriptionStatus, &str); 8] = [
    (SubscriptionStatus::Active, "active"),
    (SubscriptionStatus::Trialing, "trialing"),
    (SubscriptionStatus::PastDue, "past_due"),
    (SubscriptionStatus::Canceled, "canceled"),
    (SubscriptionStatus::Unpaid, "unpaid"),
    (SubscriptionStatus::Incomplete, "incomplete"),
    (SubscriptionStatus::IncompleteExpired, "incomplete_expired"),
    (SubscriptionStatus::Paused, "paused"),
];

impl SubscriptionStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(raw) => raw,
            known => NAMED.iter().find(|(s, _)| s == known).map(|(_, name)| *name).expect("every variant is named"),
        }
    }

    /// States that keep the paid tier.
    pub fn grants_access(&self) -> bool {
        matches!(self, Self::Active | Self::Trialing | Self::PastDue)
    }

    /// States in which Stripe may still charge the customer: the live ones, an unpaid one it
    /// may retry, and an incomplete one whose first payment is pending.
    pub fn may_bill(&self) -> bool {
        self.grants_access() || matches!(self, Self::Unpaid | Self::Incomplete)
    }
}

impl FromStr for SubscriptionStatus {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(NAMED.iter().find(|(_, name)| *name == s).map(|(s, _)| s.clone()).unwrap_or_else(|| Self::Other(s.into())))
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SubscriptionStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SubscriptionStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(raw.parse().unwrap_or_else(|never| match never {}))
    }
}

/// The tier a subscription in `status` on a price of `price_tier` grants.
pub fn tier_for(status: &SubscriptionStatus, price_tier: Option<Tier>) -> Tier {
    match price_tier {
        Some(tier) if status.grants_access() => tier,
        _ => Tier::Free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &str) -> SubscriptionStatus {
        raw.parse().unwrap()
    }

    #[test]
    fn states_map_to_access() {
        for raw in ["active", "trialing", "past_due"] {
            assert_eq!(tier_for(&status(raw), Some(Tier::Premium)), Tier::Premium, "{raw}");
        }
        for raw in ["canceled", "unpaid", "incomplete", "incomplete_expired", "paused", "something_new"] {
            assert_eq!(tier_for(&status(raw), Some(Tier::Premium)), Tier::Free, "{raw}");
        }
        assert_eq!(tier_for(&status("active"), None), Tier::Free, "an unknown price grants nothing");
    }

    #[test]
    fn statuses_print_as_stripe_sends_them() {
        for raw in ["active", "past_due", "incomplete_expired", "something_new"] {
            assert_eq!(status(raw).as_str(), raw);
            assert_eq!(serde_json::to_value(status(raw)).unwrap(), raw);
        }
        assert_eq!(status("past_due"), SubscriptionStatus::PastDue);
    }
}
