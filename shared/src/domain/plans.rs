//! `GET /billing/plans`: the tier table joined with the configured Stripe prices.

use serde::Serialize;

use crate::{
    config::{BillingSettings, Interval},
    domain::tiers::{Features, Tier, UnknownTier},
};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub tier: Tier,
    pub name: &'static str,
    /// None for FREE.
    pub price_id: Option<String>,
    /// In cents.
    pub amount: u32,
    pub currency: &'static str,
    pub interval: Option<Interval>,
    pub features: Features,
}

/// FREE, then every configured paid price (monthly, and yearly where configured).
pub fn plans(billing: &BillingSettings) -> Vec<Plan> {
    let free = Tier::Free.rules();
    let mut plans = vec![Plan {
        tier: Tier::Free,
        name: free.display_name,
        price_id: None,
        amount: 0,
        currency: "usd",
        interval: None,
        features: Tier::Free.features(),
    }];
    for tier in [Tier::Basic, Tier::Premium] {
        let rules = tier.rules();
        for interval in [Interval::Month, Interval::Year] {
            if let Some(price) = billing.price_for(tier, interval) {
                plans.push(Plan {
                    tier,
                    name: rules.display_name,
                    price_id: Some(price.id.clone()),
                    amount: match interval {
                        Interval::Month => rules.monthly_price_cents,
                        Interval::Year => rules.yearly_price_cents,
                    },
                    currency: "usd",
                    interval: Some(interval),
                    features: tier.features(),
                });
            }
        }
    }
    plans
}

/// The body of `POST /billing/checkout` and `POST /billing/subscription`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanRequest {
    pub tier: String,
    pub interval: Option<Interval>,
}

impl PlanRequest {
    /// The configured price asked for: a paid tier (FREE is reached by cancelling, in the billing
    /// portal), billed monthly unless `interval` says otherwise, and offered that way.
    pub fn price<'s>(&self, settings: &'s BillingSettings) -> Result<&'s crate::config::PriceConfig, crate::ApiError> {
        let tier: Tier =
            self.tier.parse().map_err(|e: UnknownTier| crate::ApiError::validation("tier", e.to_string()))?;
        if tier == Tier::Free {
            return Err(crate::ApiError::validation(
                "tier",
                "FREE needs no payment; cancel in the billing portal instead",
            ));
        }
        let interval = self.interval.unwrap_or(Interval::Month);
        settings.price_for(tier, interval).ok_or_else(|| {
            let name = if interval == Interval::Month { "monthly" } else { "yearly" };
            crate::ApiError::validation("interval", format!("{tier} is not offered {name}"))
        })
    }
}
