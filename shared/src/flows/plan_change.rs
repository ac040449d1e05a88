//! Changing the plan of a live subscription in place (never a second subscription).
//!
//! Policy: a move UP (a higher tier, or the same tier billed yearly instead of monthly) happens
//! now, with proration: Stripe credits the unused time of the old price and charges the new one
//! for the rest of the period. A move DOWN happens at the end of the paid period, through a
//! subscription schedule, so the customer keeps what they paid for. Asking for the current plan
//! while a move down is planned cancels that move. The tier always follows Stripe's webhook.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    config::{BillingSettings, Interval, PriceConfig},
    domain::{tiers::Tier, user::User},
    error::ApiError,
    upstream::stripe::{Stripe, StripeError},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "change")]
pub enum PlanChange {
    /// Applied now, prorated.
    Upgraded { tier: Tier, interval: Interval },
    /// Applies when the current period ends (unix seconds).
    Scheduled { tier: Tier, interval: Interval, effective_at: i64 },
    /// A planned move down was cancelled; the plan stays as it is.
    Kept { tier: Tier, interval: Interval },
}

/// Orders plans: tier first, then yearly above monthly.
fn rank(price: &PriceConfig) -> (Tier, bool) {
    (price.tier, price.interval == Interval::Year)
}

pub struct PlanChanges<'a> {
    pub stripe: &'a Stripe,
    pub settings: &'a BillingSettings,
}

impl PlanChanges<'_> {
    pub async fn change(&self, user: &User, target: &PriceConfig, now: OffsetDateTime) -> Result<PlanChange, ApiError> {
        let no_subscription =
            || ApiError::Conflict("you have no subscription to change; subscribe with POST /billing/checkout".into());
        let id = match &user.subscription {
            Some(summary) if user.has_live_subscription() => summary.subscription_id.clone(),
            _ => return Err(no_subscription()),
        };
        let subscription = match self.stripe.subscription(&id).await {
            Ok(subscription) if subscription.status.grants_access() => subscription,
            Ok(_) | Err(StripeError::Refused(_)) => return Err(no_subscription()),
            Err(error) => return Err(error.into()),
        };
        let item = subscription.items.data.first().ok_or_else(no_subscription)?;
        let current = item.price_id().and_then(|price| self.settings.prices.iter().find(|p| p.id == price));

        if current.is_some_and(|c| c.id == target.id) {
            let Some(schedule) = &subscription.schedule else {
                return Err(ApiError::Conflict(format!(
                    "you are already on {} billed {}ly",
                    target.tier,
                    interval_name(target)
                )));
            };
            self.stripe.release_schedule(schedule).await?;
            return Ok(PlanChange::Kept { tier: target.tier, interval: target.interval });
        }

        // A plan we do not sell any more counts as below every plan we do.
        if current.is_none_or(|c| rank(target) > rank(c)) {
            if let Some(schedule) = &subscription.schedule {
                self.stripe.release_schedule(schedule).await?;
            }
            // A double click within ten minutes makes one change.
            let key = format!("plan-{}-{}-{}", subscription.id, target.id, now.unix_timestamp() / 600);
            self.stripe.change_price(&subscription.id, &item.id, &target.id, true, &key).await?;
            return Ok(PlanChange::Upgraded { tier: target.tier, interval: target.interval });
        }

        let (_, period_end) = subscription.current_period();
        let at = period_end.ok_or_else(|| anyhow::anyhow!("subscription {} has no period end", subscription.id))?;
        self.stripe.schedule_price(&subscription, at, &target.id).await?;
        Ok(PlanChange::Scheduled { tier: target.tier, interval: target.interval, effective_at: at })
    }
}

fn interval_name(price: &PriceConfig) -> &'static str {
    match price.interval {
        Interval::Month => "month",
        Interval::Year => "year",
    }
}
