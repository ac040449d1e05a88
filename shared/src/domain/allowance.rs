//! The per-user allowances: what each one counts, how far the tier lets it go, and how a refusal
//! reads. The counting itself (one conditional write, the month's rollover, the give-back) is
//! `store::users::allowance`; the tier table gives every limit.

use std::fmt;

use crate::domain::tiers::{Tier, TierRules};

/// A counter every user has, bounded by their tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allowance {
    /// Generations this month (plus an admin's top-up for the month).
    Recordings,
    /// Characters generated this month: counted beside the recordings, never refused.
    Characters,
    /// Presigned uploads (recordings and voice samples) requested this month.
    Uploads,
    /// Bytes of uploaded recordings reserved or kept.
    StorageBytes,
    /// Recordings kept as favourites.
    Favourites,
    /// Cloned voices kept.
    CloneSlots,
    /// API keys held.
    ApiKeys,
}

impl Allowance {
    /// Counted per calendar month (a new month starts it again).
    pub fn monthly(self) -> bool {
        matches!(self, Self::Recordings | Self::Characters | Self::Uploads)
    }

    /// How far the tier lets this counter go (None: unbounded); `granted` is an admin's top-up
    /// of this month's recordings.
    pub fn limit(self, rules: &TierRules, granted: u32) -> Option<u64> {
        match self {
            Self::Recordings => rules.monthly_recordings.map(|limit| u64::from(limit.saturating_add(granted))),
            Self::Characters => None,
            Self::Uploads => Some(rules.uploads_per_month.into()),
            Self::StorageBytes => Some(rules.storage_bytes),
            Self::Favourites => Some(rules.favourites.into()),
            Self::CloneSlots => Some(rules.clone_slots.into()),
            Self::ApiKeys => Some(rules.api_keys.into()),
        }
    }
}

/// An allowance that had no room left: what was refused, at which limit, on which plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub allowance: Allowance,
    pub limit: u64,
    pub tier: Tier,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { limit, tier, .. } = self;
        match self.allowance {
            Allowance::Recordings => write!(f, "you have used all {limit} recordings of the {tier} plan this month"),
            Allowance::Characters => write!(f, "you have used all {limit} characters of the {tier} plan this month"),
            Allowance::Uploads => write!(f, "you have requested all {limit} uploads of your plan this month"),
            Allowance::StorageBytes => write!(f, "your uploads would exceed the {limit} bytes of storage of your plan"),
            Allowance::Favourites => write!(f, "you already keep {limit} favourites, the most your plan allows"),
            Allowance::CloneSlots => write!(f, "all {limit} cloned-voice slots of the {tier} plan are in use"),
            Allowance::ApiKeys => write!(f, "the {tier} plan holds {limit} API keys at once; revoke one first"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_tier_table_then_each_allowance_has_its_limit() {
        let free = Tier::Free.rules();
        assert_eq!(Allowance::Recordings.limit(free, 0), Some(10));
        assert_eq!(Allowance::Recordings.limit(free, 5), Some(15), "an admin's top-up adds to the month");
        assert_eq!(Allowance::Recordings.limit(Tier::Premium.rules(), 5), None, "unlimited stays unlimited");
        assert_eq!(Allowance::Characters.limit(free, 0), None);
        assert_eq!(Allowance::ApiKeys.limit(free, 0), Some(0));
        assert_eq!(Allowance::CloneSlots.limit(Tier::Basic.rules(), 0), Some(5));
    }

    #[test]
    fn given_a_refusal_then_it_says_what_and_how_many() {
        let refusal = Refusal { allowance: Allowance::Recordings, limit: 10, tier: Tier::Free };
        assert_eq!(refusal.to_string(), "you have used all 10 recordings of the FREE plan this month");
        let keys = Refusal { allowance: Allowance::ApiKeys, limit: 2, tier: Tier::Basic };
        assert_eq!(keys.to_string(), "the BASIC plan holds 2 API keys at once; revoke one first");
    }

    #[test]
    fn only_the_monthly_counters_start_again() {
        assert!(Allowance::Recordings.monthly() && Allowance::Characters.monthly() && Allowance::Uploads.monthly());
        assert!(!Allowance::StorageBytes.monthly() && !Allowance::CloneSlots.monthly());
    }
}
