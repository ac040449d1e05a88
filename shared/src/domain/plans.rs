//! `GET /billing/plans`: the tier table joined with the configured Stripe prices.

use serde::Serialize;

use crate::{
    config::{BillingSettings, Interval},
    domain::tiers::{Features, Tier},
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
