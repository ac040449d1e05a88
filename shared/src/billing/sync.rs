//! Keeping users on the right tier. Every subscription-related event is handled the same way:
//! fetch the subscription as Stripe holds it NOW and write that, so events applied in any order,
//! or more than once, end in Stripe's state.
//!
//! Status → access:
//! - `active`, `trialing`: the price's tier;
//! - `past_due`: the price's tier is kept while Stripe retries the payment (grace); the status
//!   shows `past_due` so the app can ask for a new card. Stripe ends the grace by moving the
//!   subscription to `canceled` or `unpaid` (per the account's retry settings);
//! - `canceled`, `unpaid`, `incomplete`, `incomplete_expired`, `paused`: FREE;
//! - a price that is not configured grants nothing (FREE).

use anyhow::Context;
use aws_sdk_dynamodb::types::ReturnValue;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    App,
    billing::{
        Stripe,
        types::{Event, Subscription},
    },
    dynamo::{self, n, s},
    ids::UserId,
    tiers::Tier,
};

/// Subscription states that keep the paid tier.
pub fn grants_access(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due")
}

pub fn tier_for(status: &str, price_tier: Option<Tier>) -> Tier {
    match price_tier {
        Some(tier) if grants_access(status) => tier,
        _ => Tier::Free,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Applied {
    /// The user now mirrors this subscription.
    Synced { user_id: String, subscription_id: String, tier: Tier, status: String },
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

pub async fn apply_event(app: &App, stripe: &Stripe, event: &Event) -> anyhow::Result<Applied> {
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
    sync_subscription(app, stripe, subscription_id).await
}

/// Mirrors the subscription's current state onto the subscriptions table and its user.
#[tracing::instrument(skip(app, stripe), err)]
pub async fn sync_subscription(app: &App, stripe: &Stripe, subscription_id: &str) -> anyhow::Result<Applied> {
    let subscription = stripe.subscription(subscription_id).await.context("fetching the subscription from Stripe")?;
    let user_id = owner(app, &subscription).await?;
    let price_tier = subscription.price_id().and_then(|price| app.config.billing.tier_of(price));
    if price_tier.is_none() {
        tracing::warn!(price = ?subscription.price_id(), "subscription on a price that is not configured: no tier");
    }
    let tier = tier_for(&subscription.status, price_tier);
    record_subscription(app, &user_id, &subscription, price_tier).await?;

    let (_, period_end) = subscription.current_period();
    let mut update = app
        .dynamodb
        .update_item()
        .table_name(&app.config.tables.users)
        .key("userId", s(user_id.as_str()))
        .update_expression(
            "SET subscriptionTier = :tier, subscriptionStatus = :status, subscriptionId = :sub, \
             cancelAtPeriodEnd = :cancel, currentPeriodEnd = :end",
        )
        .expression_attribute_values(":tier", s(tier.as_str()))
        .expression_attribute_values(":status", s(&subscription.status))
        .expression_attribute_values(":sub", s(&subscription.id))
        .expression_attribute_values(
            ":cancel",
            aws_sdk_dynamodb::types::AttributeValue::Bool(subscription.cancel_at_period_end),
        )
        .expression_attribute_values(
            ":end",
            period_end.map(n).unwrap_or(aws_sdk_dynamodb::types::AttributeValue::Null(true)),
        )
        .return_values(ReturnValue::None);
    update = if grants_access(&subscription.status) {
        // A live subscription becomes the user's current one.
        update.condition_expression("attribute_exists(userId)")
    } else {
        // An ended one only downgrades the user if it is still their current subscription.
        update.condition_expression(
            "attribute_exists(userId) AND (attribute_not_exists(subscriptionId) OR subscriptionId = :sub)",
        )
    };
    match dynamo::conditional_update(update).await.context("writing the user's tier")? {
        Some(_) => Ok(Applied::Synced {
            user_id: user_id.to_string(),
            subscription_id: subscription.id,
            tier,
            status: subscription.status,
        }),
        None => Ok(Applied::Superseded { subscription_id: subscription.id }),
    }
}

/// The user a subscription belongs to: its `userId` metadata (set at checkout), else the
/// customer's user.
async fn owner(app: &App, subscription: &Subscription) -> anyhow::Result<UserId> {
    if let Some(id) = subscription.metadata.get("userId") {
        return UserId::parse(id.as_str()).context("subscription metadata userId");
    }
    app.users
        .by_stripe_customer(&subscription.customer)
        .await?
        .with_context(|| format!("no user has Stripe customer {}", subscription.customer))
}

async fn record_subscription(
    app: &App,
    user: &UserId,
    subscription: &Subscription,
    price_tier: Option<Tier>,
) -> anyhow::Result<()> {
    let (start, end) = subscription.current_period();
    let optional_number =
        |value: Option<i64>| value.map(n).unwrap_or(aws_sdk_dynamodb::types::AttributeValue::Null(true));
    app.dynamodb
        .update_item()
        .table_name(&app.config.tables.subscriptions)
        .key("userId", s(user.as_str()))
        .key("subscriptionId", s(&subscription.id))
        .update_expression(
            "SET price = :price, tier = :tier, #status = :status, currentPeriodStart = :start, \
             currentPeriodEnd = :end, cancelAtPeriodEnd = :cancel, updatedAt = :now, \
             createdAt = if_not_exists(createdAt, :now)",
        )
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":price", s(subscription.price_id().unwrap_or("")))
        .expression_attribute_values(":tier", s(price_tier.map(Tier::as_str).unwrap_or("NONE")))
        .expression_attribute_values(":status", s(&subscription.status))
        .expression_attribute_values(":start", optional_number(start))
        .expression_attribute_values(":end", optional_number(end))
        .expression_attribute_values(
            ":cancel",
            aws_sdk_dynamodb::types::AttributeValue::Bool(subscription.cancel_at_period_end),
        )
        .expression_attribute_values(":now", s(crate::recordings::timestamp(OffsetDateTime::now_utc())))
        .send()
        .await
        .context("writing the subscription")?;
    Ok(())
}

/// The webhook-idempotency table: one row per processed event id, kept for 30 days.
pub struct ProcessedEvents<'a> {
    pub client: &'a aws_sdk_dynamodb::Client,
    pub table: &'a str,
}

const EVENT_RETENTION_SECS: i64 = 30 * 24 * 3600;

impl ProcessedEvents<'_> {
    /// Claims the event; false if it was already claimed (a duplicate delivery).
    pub async fn claim(&self, event: &Event, now: i64) -> anyhow::Result<bool> {
        let update = self
            .client
            .update_item()
            .table_name(self.table)
            .key("eventId", s(&event.id))
            .update_expression("SET #type = :type, receivedAt = :now, expiresAt = :expires")
            .condition_expression("attribute_not_exists(eventId)")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s(&event.kind))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(now + EVENT_RETENTION_SECS));
        Ok(dynamo::conditional_update(update).await.context("recording the event")?.is_some())
    }

    /// Releases a claim whose processing failed, so Stripe's retry is processed.
    pub async fn release(&self, event: &Event) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(self.table)
            .key("eventId", s(&event.id))
            .send()
            .await
            .context("releasing the event")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_access() {
        for status in ["active", "trialing", "past_due"] {
            assert_eq!(tier_for(status, Some(Tier::Premium)), Tier::Premium, "{status}");
        }
        for status in ["canceled", "unpaid", "incomplete", "incomplete_expired", "paused"] {
            assert_eq!(tier_for(status, Some(Tier::Premium)), Tier::Free, "{status}");
        }
        assert_eq!(tier_for("active", None), Tier::Free, "an unknown price grants nothing");
    }
}
