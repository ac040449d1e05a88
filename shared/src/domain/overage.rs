//! Overage: generations past the plan's monthly allowance, which a user on a plan that has an
//! overage price (BASIC) may allow up to a monthly spending cap of their own. Each one is
//! reported to Stripe's meter (`flows::overage`) and invoiced with the subscription. FREE stops
//! at its limit; PREMIUM has none.

use serde::{Deserialize, Serialize};

use crate::{domain::tiers::Tier, error::ApiError};

/// The highest cap a user may set: $100 a month.
pub const MAX_CAP_CENTS: u32 = 10_000;

/// How much a user allows past their allowance each month, in US cents (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverageCap {
    pub cents: u32,
}

impl OverageCap {
    /// The generations past the allowance the cap pays for on `tier` (0 when the plan has no
    /// overage price or the user allows none).
    pub fn units(self, tier: Tier) -> u32 {
        tier.rules().overage_unit_cents.filter(|unit| *unit > 0).map_or(0, |unit| self.cents / unit)
    }

    /// LIMIT_REACHED's message when the allowance and the cap are both used.
    pub fn reached(self, tier: Tier, allowance: u64) -> String {
        format!(
            "you have used all {allowance} recordings of the {tier} plan this month and the {} more your overage cap \
             of {} pays for; raise the cap in your billing settings (PATCH /billing/settings)",
            self.units(tier),
            dollars(self.cents)
        )
    }
}

/// `$12.50`.
pub fn dollars(cents: u32) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// `PATCH /billing/settings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingSettingsPatch {
    #[serde(deserialize_with = "crate::domain::json::whole_number")]
    pub overage_cap_cents: u32,
}

impl BillingSettingsPatch {
    /// The cap, if `tier` offers overage and it is within bounds; turning it off (0) is always
    /// allowed.
    pub fn check(&self, tier: Tier) -> Result<OverageCap, ApiError> {
        let cents = self.overage_cap_cents;
        if cents > MAX_CAP_CENTS {
            let most = dollars(MAX_CAP_CENTS);
            return Err(ApiError::validation("overageCapCents", format!("must be from 0 to {MAX_CAP_CENTS} ({most})")));
        }
        if cents > 0 && tier.rules().overage_unit_cents.is_none() {
            let why = match tier {
                Tier::Free => "the FREE plan has no overage; upgrade to BASIC to go past its limit",
                _ => "this plan has no monthly limit to go past",
            };
            return Err(ApiError::locked(why));
        }
        Ok(OverageCap { cents })
    }
}

/// What `GET` and `PATCH /billing/settings` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingSettings {
    pub overage_cap_cents: u32,
    /// The price of one generation past the allowance; null: the plan has no overage.
    pub overage_unit_cents: Option<u32>,
    /// Generations past the allowance the cap pays for each month.
    pub overage_units: u32,
    pub max_overage_cap_cents: u32,
}

impl BillingSettings {
    pub fn new(cap: OverageCap, tier: Tier) -> Self {
        Self {
            overage_cap_cents: cap.cents,
            overage_unit_cents: tier.rules().overage_unit_cents,
            overage_units: cap.units(tier),
            max_overage_cap_cents: MAX_CAP_CENTS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_pays_for_whole_generations_on_a_plan_with_overage_only() {
        let cap = OverageCap { cents: 505 };
        assert_eq!(cap.units(Tier::Basic), 50, "10 cents each, the rest unspent");
        assert_eq!(cap.units(Tier::Free), 0);
        assert_eq!(cap.units(Tier::Premium), 0);
        assert_eq!(
            cap.reached(Tier::Basic, 100).split("; ").next().unwrap(),
            "you have used all 100 recordings of the BASIC plan this month and the 50 more your overage cap of $5.05 pays for"
        );
    }

    #[test]
    fn a_cap_written_as_a_whole_float_is_a_whole_number() {
        let patch: BillingSettingsPatch = serde_json::from_str(r#"{"overageCapCents": 1186.0}"#).unwrap();
        assert_eq!(patch.overage_cap_cents, 1186);
        assert!(serde_json::from_str::<BillingSettingsPatch>(r#"{"overageCapCents": 11.5}"#).is_err());
    }

    #[test]
    fn a_patch_is_bounded_and_needs_a_plan_with_overage() {
        let patch = |cents| BillingSettingsPatch { overage_cap_cents: cents };
        assert_eq!(patch(2_000).check(Tier::Basic).unwrap(), OverageCap { cents: 2_000 });
        assert_eq!(patch(10_001).check(Tier::Basic).unwrap_err().code(), "VALIDATION_FAILED");
        assert_eq!(patch(500).check(Tier::Free).unwrap_err().code(), "FEATURE_LOCKED");
        assert_eq!(patch(0).check(Tier::Free).unwrap(), OverageCap { cents: 0 }, "off is always allowed");
    }
}
