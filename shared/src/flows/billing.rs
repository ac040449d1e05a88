//! Keeping users on the right tier. Every subscription-related event is handled the same way:
//! fetch the subscription as Stripe holds it NOW and write that, conditioned on when it was read,
//! so events applied in any order, more than once, or concurrently end in Stripe's latest state.
//! What each status grants is [`crate::domain::subscription`]'s rule; which of a user's
//! subscriptions is current (the highest live tier) is decided here.
//!
//! Permanent refusals (Stripe does not know the object, or its customer is no user of ours) are
//! acknowledged as `ignored`: retrying them can never succeed. Only temporary failures are errors.

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    clock::unix_ms,
    config::BillingSettings,
    domain::{ids::UserId, subscription::SubscriptionStatus, tiers::Tier},
    store::{
        subscriptions::{StoredSubscription, SubscriptionRecord, Subscriptions},
        users::{SubscriptionMirror, Users},
    },
    upstream::stripe::{
        Stripe, StripeError,
        types::{Event, Subscription},
    },
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Applied {
    /// The user now mirrors this subscription.
    /// `changed`: the user's tier, status or current subscription differs from before.
    Synced { user_id: String, subscription_id: String, tier: Tier, status: SubscriptionStatus, changed: bool },
    /// A state read from Stripe before the one already stored: nothing to change.
    Stale { subscription_id: String },
    /// Known, but only logged (e.g. `customer.subscription.trial_will_end`).
    Logged,
    /// Not acted on, and never worth a retry: why.
    Ignored { reason: String },
}

impl Applied {
    fn ignored(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        tracing::info!(outcome = "ignored", reason, "event not applied");
        Self::Ignored { reason }
    }

    /// One word for logs and the event's record.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Synced { .. } => "synced",
            Self::Stale { .. } => "stale",
            Self::Logged => "logged",
            Self::Ignored { .. } => "ignored",
        }
    }
}

/// A subscription as Stripe held it at `read_at_ms`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub subscription: Subscription,
    pub read_at_ms: i64,
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
            return Ok(Applied::ignored(format!("{} is not an event this backend acts on", event.kind)));
        }
        let Some(subscription_id) = event.subscription_id() else {
            // e.g. a one-off invoice, or a checkout session in another mode.
            return Ok(Applied::ignored("the event names no subscription"));
        };
        self.sync_subscription(subscription_id, now).await
    }

    /// Mirrors the subscription's current state onto the subscriptions table and its user.
    #[tracing::instrument(skip(self), err)]
    pub async fn sync_subscription(&self, subscription_id: &str, now: OffsetDateTime) -> anyhow::Result<Applied> {
        match self.read(subscription_id).await? {
            Some(snapshot) => self.write(&snapshot, now).await,
            None => Ok(Applied::ignored(format!("Stripe does not know subscription {subscription_id}"))),
        }
    }

    /// The subscription as Stripe holds it now; None when Stripe refuses (it does not exist, or
    /// the request can never succeed).
    pub async fn read(&self, subscription_id: &str) -> anyhow::Result<Option<Snapshot>> {
        match self.stripe.subscription(subscription_id).await {
            Ok(subscription) => Ok(Some(Snapshot { subscription, read_at_ms: unix_ms(OffsetDateTime::now_utc()) })),
            Err(StripeError::Refused(message)) => {
                tracing::warn!(subscription_id, message, "Stripe refused the subscription");
                Ok(None)
            }
            Err(error) => Err(error).context("fetching the subscription from Stripe"),
        }
    }

    /// Writes a snapshot unless a fresher one is stored, then mirrors the user's current
    /// subscription (their highest live tier) onto the user.
    pub async fn write(&self, snapshot: &Snapshot, now: OffsetDateTime) -> anyhow::Result<Applied> {
        let subscription = &snapshot.subscription;
        let Some(user_id) = self.owner(subscription).await? else {
            return Ok(Applied::ignored(format!("customer {} is no user of ours", subscription.customer)));
        };
        let price_tier = subscription.price_id().and_then(|price| self.settings.tier_of(price));
        if price_tier.is_none() {
            tracing::warn!(price = ?subscription.price_id(), "subscription on a price that is not configured: no tier");
        }
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
        if !self.subscriptions.record(&user_id, &record, snapshot.read_at_ms, now).await? {
            tracing::info!(subscription_id = subscription.id, "a fresher read is already stored");
            return Ok(Applied::Stale { subscription_id: subscription.id.clone() });
        }

        let all = self.subscriptions.for_user(&user_id).await?;
        let current = current_subscription(&all, &subscription.id)
            .with_context(|| format!("subscription {} vanished from the table", subscription.id))?;
        let tier = current.granted_tier();
        let mirror = SubscriptionMirror {
            subscription_id: &current.subscription_id,
            status: &current.status,
            tier,
            cancel_at_period_end: current.cancel_at_period_end,
            period_end: current.period_end,
            read_at_ms: all.iter().map(|s| s.read_at_ms).max().unwrap_or(snapshot.read_at_ms),
        };
        let Some(before) = self.users.mirror_subscription(&user_id, &mirror).await? else {
            return Ok(Applied::Stale { subscription_id: subscription.id.clone() });
        };
        let changed = before.tier != tier
            || before.status.as_ref() != Some(&current.status)
            || before.subscription_id.as_deref() != Some(current.subscription_id.as_str());
        if changed {
            tracing::info!(
                user_id = %user_id,
                from_tier = %before.tier,
                to_tier = %tier,
                from_status = ?before.status.as_ref().map(SubscriptionStatus::as_str),
                to_status = current.status.as_str(),
                subscription_id = current.subscription_id,
                "the user's subscription changed"
            );
        }
        Ok(Applied::Synced {
            user_id: user_id.to_string(),
            subscription_id: current.subscription_id.clone(),
            tier,
            status: current.status.clone(),
            changed,
        })
    }

    /// The user a subscription belongs to: its `userId` metadata (set at checkout), else the
    /// customer's user; None when that user does not exist.
    async fn owner(&self, subscription: &Subscription) -> anyhow::Result<Option<UserId>> {
        let claimed = subscription.metadata.get("userId").and_then(|id| UserId::parse(id.as_str()).ok());
        let id = match claimed {
            Some(id) => id,
            None => match self.users.by_stripe_customer(&subscription.customer).await? {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        Ok(self.users.get(&id).await?.map(|_| id))
    }
}

/// Which of a user's subscriptions is current: the live one with the highest tier (several live
/// ones happen only through the Stripe dashboard; logged for support), else the one just synced.
pub fn current_subscription<'a>(all: &'a [StoredSubscription], synced: &str) -> Option<&'a StoredSubscription> {
    let mut live: Vec<&StoredSubscription> = all.iter().filter(|s| s.granted_tier() != Tier::Free).collect();
    live.sort_by_key(|s| std::cmp::Reverse(s.granted_tier()));
    if live.len() > 1 {
        let ids: Vec<&str> = live.iter().map(|s| s.subscription_id.as_str()).collect();
        tracing::warn!(support = true, subscriptions = ?ids, "a customer holds several live subscriptions; the highest tier applies");
    }
    live.first().copied().or_else(|| all.iter().find(|s| s.subscription_id == synced))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, tier: Option<Tier>, status: SubscriptionStatus) -> StoredSubscription {
        StoredSubscription {
            subscription_id: id.into(),
            tier,
            status,
            period_end: None,
            cancel_at_period_end: false,
            read_at_ms: 1,
        }
    }

    #[test]
    fn the_highest_live_tier_is_current() {
        // GIVEN a customer with a live BASIC, a live PREMIUM and an ended PREMIUM subscription
        let all = [
            row("sub_basic", Some(Tier::Basic), SubscriptionStatus::Active),
            row("sub_premium", Some(Tier::Premium), SubscriptionStatus::PastDue),
            row("sub_old", Some(Tier::Premium), SubscriptionStatus::Canceled),
        ];
        // WHEN any of them is synced THEN the live PREMIUM one is current
        for synced in ["sub_basic", "sub_premium", "sub_old"] {
            assert_eq!(current_subscription(&all, synced).unwrap().subscription_id, "sub_premium", "{synced}");
        }
    }

    #[test]
    fn with_nothing_live_the_synced_one_is_current() {
        let all = [
            row("sub_a", Some(Tier::Basic), SubscriptionStatus::Canceled),
            row("sub_rogue", None, SubscriptionStatus::Active),
        ];
        assert_eq!(current_subscription(&all, "sub_a").unwrap().subscription_id, "sub_a");
        assert_eq!(current_subscription(&all, "sub_rogue").unwrap().subscription_id, "sub_rogue");
        assert!(current_subscription(&all, "sub_missing").is_none());
    }
}
