//! Keeping users on the right tier. Every subscription-related event is handled the same way:
//! fetch the subscription as Stripe holds it NOW and write that, so events applied in any order,
//! or more than once, end in Stripe's state. What each status grants is
//! [`crate::domain::subscription`]'s rule.

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    config::BillingSettings,
    domain::{
        ids::UserId,
        subscription::{SubscriptionStatus, tier_for},
        tiers::Tier,
    },
    store::{
        subscriptions::{SubscriptionRecord, Subscriptions},
        users::{SubscriptionMirror, Users},
    },
    upstream::stripe::{
        Stripe,
        types::{Event, Subscription},
    },
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Applied {
    /// The user now mirrors this subscription.
    Synced { user_id: String, subscription_id: String, tier: Tier, status: SubscriptionStatus },
    /// An ended subscription that is no longer the user's current one: nothing to change.
    Superseded { subscription_id: String },
    /// Known, but only logged (e.g. `customer.subscription.trial_will_end`).
    Logged,
    /// Not an event this backend acts on.
    Ignored,
}

const SUBSCRIPTION_EVENTS: [&str; 7] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
];

/// What syncing a subscription reads and writes.
pub struct Billing<'a> {
    pub stripe: &'a Stripe,
    pub users: &'a Users,
    pub subscriptions: &'a Subscriptions,
    pub settings: &'a BillingSettings,
}

impl Billing<'_> {
    pub async fn apply_event(&self, event: &Event, now: OffsetDateTime) -> anyhow::Result<Applied> {
        if event.kind == "customer.subscription.trial_will_end" {
            tracing::info!(event_id = event.id, subscription = ?event.subscription_id(), "trial ends in three days");
            return Ok(Applied::Logged);
        }
        if !SUBSCRIPTION_EVENTS.contains(&event.kind.as_str()) {
            tracing::info!(event_id = event.id, kind = event.kind, "event type not handled");
            return Ok(Applied::Ignored);
        }
        let Some(subscription_id) = event.subscription_id() else {
            // e.g. a one-off invoice, or a checkout session in another mode.
            tracing::info!(event_id = event.id, kind = event.kind, "event names no subscription");
            return Ok(Applied::Ignored);
        };
        self.sync_subscription(subscription_id, now).await
    }

    /// Mirrors the subscription's current state onto the subscriptions table and its user.
    #[tracing::instrument(skip(self), err)]
    pub async fn sync_subscription(&self, subscription_id: &str, now: OffsetDateTime) -> anyhow::Result<Applied> {
        let subscription =
            self.stripe.subscription(subscription_id).await.context("fetching the subscription from Stripe")?;
        let user_id = self.owner(&subscription).await?;
        let price_tier = subscription.price_id().and_then(|price| self.settings.tier_of(price));
        if price_tier.is_none() {
            tracing::warn!(price = ?subscription.price_id(), "subscription on a price that is not configured: no tier");
        }
        let tier = tier_for(&subscription.status, price_tier);
        let (period_start, period_end) = subscription.current_period();
        let record = SubscriptionRecord {
            subscription_id: &subscription.id,
            price_id: subscription.price_id(),
            tier: price_tier,
            status: &subscription.status,
            period_start,
            period_end,
            cancel_at_period_end: subscription.cancel_at_period_end,
        };
        self.subscriptions.record(&user_id, &record, now).await?;

        let mirror = SubscriptionMirror {
            subscription_id: &subscription.id,
            status: &subscription.status,
            tier,
            cancel_at_period_end: subscription.cancel_at_period_end,
            period_end,
        };
        if self.users.mirror_subscription(&user_id, &mirror).await? {
            Ok(Applied::Synced {
                user_id: user_id.to_string(),
                subscription_id: subscription.id,
                tier,
                status: subscription.status,
            })
        } else {
            Ok(Applied::Superseded { subscription_id: subscription.id })
        }
    }

    /// The user a subscription belongs to: its `userId` metadata (set at checkout), else the
    /// customer's user.
    async fn owner(&self, subscription: &Subscription) -> anyhow::Result<UserId> {
        if let Some(id) = subscription.metadata.get("userId") {
            return UserId::parse(id.as_str()).context("subscription metadata userId");
        }
        self.users
            .by_stripe_customer(&subscription.customer)
            .await?
            .with_context(|| format!("no user has Stripe customer {}", subscription.customer))
    }
}
