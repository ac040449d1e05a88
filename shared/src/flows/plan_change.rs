//! Changing the plan of a live subscription in place (never a second subscription).
//!
//! Policy: a move UP (a higher tier, or the same tier billed yearly instead of monthly) happens
//! now and only once paid: Stripe invoices the difference for the rest of the period at once
//! (the unused time of the old price credited) and applies the change only if that invoice is
//! paid; a card that fails leaves the old plan (409 CONFLICT with the billing portal's link). A
//! move DOWN happens at the end of the paid period, through a subscription schedule, so the
//! customer keeps what they paid for. Asking for the current plan while a move down is planned
//! cancels that move. No change is made while a payment is owed (past due, unpaid, incomplete):
//! 409 with the portal's link, where the card is updated. The tier always follows Stripe's
//! webhook.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    config::{BillingSettings, Interval, PriceConfig},
    domain::{subscription::SubscriptionStatus, tiers::Tier, user::User},
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
    /// CONFLICT with a billing portal session for the customer, where a payment is settled.
    async fn payment_needed(&self, customer: &str, message: &str) -> ApiError {
        match self.stripe.create_portal_session(customer, self.settings.portal_return_url.as_str()).await {
            Ok(portal) => ApiError::PaymentNeeded { message: message.to_owned(), portal_url: portal.url },
            Err(error) => error.into(),
        }
    }
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
            Ok(subscription) if subscription.status.may_bill() => subscription,
            Ok(_) | Err(StripeError::Refused(_)) => return Err(no_subscription()),
            Err(error) => return Err(error.into()),
        };
        if !matches!(subscription.status, SubscriptionStatus::Active | SubscriptionStatus::Trialing) {
            let owed = format!(
                "your subscription is {}: settle the payment in the billing portal before changing plan",
                subscription.status
            );
            return Err(self.payment_needed(&subscription.customer, &owed).await);
        }
        let item = subscription.plan_item().ok_or_else(no_subscription)?;
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
            let changed = self.stripe.upgrade_price(&subscription.id, &item.id, &target.id, &key).await?;
            if changed.pending_update.is_some() {
                let unpaid = "the payment for the new plan did not go through, so your plan is unchanged; update \
                              your card in the billing portal and try again";
                return Err(self.payment_needed(&subscription.customer, unpaid).await);
            }
            return Ok(PlanChange::Upgraded { tier: target.tier, interval: target.interval });
        }

        let (_, period_end) = subscription.current_period();
        let at = period_end.ok_or_else(|| anyhow::anyhow!("subscription {} has no period end", subscription.id))?;
        // The metered item stays (what it counted this period is billed at its end); a move down
        // to a plan with overage brings it if the subscription has none yet.
        let metered = match subscription.metered_item() {
            Some(item) => item.price_id(),
            None => self.settings.metered_price_for(target.tier),
        };
        self.stripe.schedule_price(&subscription, at, &target.id, metered).await?;
        Ok(PlanChange::Scheduled { tier: target.tier, interval: target.interval, effective_at: at })
    }
}

fn interval_name(price: &PriceConfig) -> &'static str {
    match price.interval {
        Interval::Month => "month",
        Interval::Year => "year",
    }
}
