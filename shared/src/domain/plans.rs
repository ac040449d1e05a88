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

/// Monthly recurring revenue in cents from the price ids of live subscriptions: a monthly price
/// counts its amount, a yearly one a twelfth of it. Prices not in the configuration grant
/// nothing and count nothing; how many there were is the second value.
pub fn monthly_revenue_cents<'a>(billing: &BillingSettings, prices: impl IntoIterator<Item = &'a str>) -> (u64, u64) {
    let (mut cents, mut unknown) = (0u64, 0u64);
    for price in prices {
        match billing.prices.iter().find(|p| p.id == price) {
            Some(config) => {
                let rules = config.tier.rules();
                cents += match config.interval {
                    Interval::Month => u64::from(rules.monthly_price_cents),
                    Interval::Year => u64::from(rules.yearly_price_cents) / 12,
                };
            }
            None => unknown += 1,
        }
    }
    (cents, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PriceConfig;

    fn billing() -> BillingSettings {
        let url: url::Url = "https://app.example.com/".parse().unwrap();
        let price = |id: &str, tier, interval| PriceConfig { id: id.into(), tier, interval };
        BillingSettings {
            prices: vec![
                price("basic_m", Tier::Basic, Interval::Month),
                price("premium_m", Tier::Premium, Interval::Month),
                price("premium_y", Tier::Premium, Interval::Year),
            ],
            checkout_success_url: url.clone(),
            checkout_cancel_url: url.clone(),
            portal_return_url: url,
            webhook_lease: std::time::Duration::from_secs(12),
            email: None,
            overage: None,
            team_price: None,
        }
    }

    #[test]
    fn given_live_prices_then_mrr_counts_monthly_amounts_and_a_twelfth_of_yearly_ones() {
        let (cents, unknown) = monthly_revenue_cents(&billing(), ["basic_m", "basic_m", "premium_m", "premium_y"]);
        assert_eq!(cents, 999 + 999 + 2_999 + 29_990 / 12);
        assert_eq!(unknown, 0);
    }

    #[test]
    fn given_an_unconfigured_price_then_it_counts_nothing_and_is_reported() {
        assert_eq!(monthly_revenue_cents(&billing(), ["price_from_the_dashboard"]), (0, 1));
    }
}
