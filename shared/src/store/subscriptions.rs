//! The subscriptions table (PK userId, SK subscriptionId): every Stripe subscription a user has
//! held, as last synced. Each row carries `readAt`, when (ms) its state was read from Stripe; a
//! write conditioned on it never replaces a newer read with an older one.

use anyhow::Context;
use aws_sdk_dynamodb::{Client, types::AttributeValue};
use time::OffsetDateTime;

use crate::{
    clock::timestamp,
    domain::{
        ids::UserId,
        subscription::{SubscriptionStatus, tier_for},
        tiers::Tier,
    },
    store::dynamo::{self, number, string},
};

/// A subscription row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub subscription_id: String,
    /// None: a price that is not configured.
    pub tier: Option<Tier>,
    pub status: SubscriptionStatus,
    pub period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub read_at_ms: i64,
}

impl StoredSubscription {
    /// The tier it grants (FREE when it is not live or its price is not configured).
    pub fn granted_tier(&self) -> Tier {
        tier_for(&self.status, self.tier)
    }
}

/// One subscription as Stripe holds it.
pub struct SubscriptionRecord<'a> {
    pub subscription_id: &'a str,
    pub price_id: Option<&'a str>,
    /// None: a price that is not configured.
    pub tier: Option<Tier>,
    pub status: &'a SubscriptionStatus,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub cancel_at_period_end: bool,
}

#[derive(Clone)]
pub struct Subscriptions {
    client: Client,
    table: String,
}

impl Subscriptions {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Writes the subscription as read from Stripe at `read_at_ms`; false (nothing written) when
    /// the row already holds a read at least as fresh.
    pub async fn record(
        &self,
        user: &UserId,
        record: &SubscriptionRecord<'_>,
        read_at_ms: i64,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let optional_number = |value: Option<i64>| value.map(number).unwrap_or(AttributeValue::Null(true));
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("subscriptionId", string(record.subscription_id))
            .update_expression(
                "SET price = :price, tier = :tier, #status = :status, currentPeriodStart = :start, \
                 currentPeriodEnd = :end, cancelAtPeriodEnd = :cancel, updatedAt = :now, readAt = :read, \
                 createdAt = if_not_exists(createdAt, :now)",
            )
            .condition_expression("attribute_not_exists(readAt) OR readAt < :read")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":price", string(record.price_id.unwrap_or("")))
            .expression_attribute_values(":tier", string(record.tier.map(Tier::as_str).unwrap_or("NONE")))
            .expression_attribute_values(":status", string(record.status.as_str()))
            .expression_attribute_values(":start", optional_number(record.period_start))
            .expression_attribute_values(":end", optional_number(record.period_end))
            .expression_attribute_values(":cancel", AttributeValue::Bool(record.cancel_at_period_end))
            .expression_attribute_values(":read", number(read_at_ms))
            .expression_attribute_values(":now", string(timestamp(now)));
        Ok(dynamo::conditional_update(update).await.context("writing the subscription")?.is_some())
    }

    /// Deletes every subscription row of the user.
    pub async fn delete_all(&self, user: &UserId) -> anyhow::Result<usize> {
        dynamo::delete_partition(&self.client, &self.table, ("userId", user.as_str()), "subscriptionId").await
    }

    /// Every subscription the user has held, as last synced.
    pub async fn for_user(&self, user: &UserId) -> anyhow::Result<Vec<StoredSubscription>> {
        let output = dynamo::user_query(&self.client, &self.table, None, user)
            .consistent_read(true)
            .send()
            .await
            .context("reading the user's subscriptions")?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(StoredSubscription {
                    subscription_id: dynamo::str(item, "subscriptionId")?.to_owned(),
                    tier: dynamo::str(item, "tier")?.parse().ok(),
                    status: dynamo::str(item, "status")?.parse().unwrap_or_else(|never| match never {}),
                    period_end: dynamo::opt_num(item, "currentPeriodEnd")?,
                    cancel_at_period_end: dynamo::flag(item, "cancelAtPeriodEnd"),
                    read_at_ms: dynamo::opt_num(item, "readAt")?.unwrap_or_default(),
                })
            })
            .collect()
    }
}

impl Subscriptions {
    /// The price id of every subscription that still grants access (active, trialing, past_due),
    /// in one projected scan (admin statistics only).
    pub async fn live_prices(&self) -> anyhow::Result<Vec<String>> {
        let mut prices = Vec::new();
        let mut rows = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("price, #status")
            .expression_attribute_names("#status", "status")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = rows.next().await {
            let item = item.context("scanning subscriptions for statistics")?;
            let status: SubscriptionStatus =
                dynamo::str(&item, "status")?.parse().unwrap_or_else(|never| match never {});
            if let (true, Some(price)) = (status.grants_access(), dynamo::opt_str(&item, "price")) {
                prices.push(price.to_owned());
            }
        }
        Ok(prices)
    }
}
