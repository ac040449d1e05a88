//! The subscriptions table (PK userId, SK subscriptionId): every Stripe subscription a user has
//! held, as last synced.

use anyhow::Context;
use aws_sdk_dynamodb::{Client, types::AttributeValue};
use time::OffsetDateTime;

use crate::{
    clock::timestamp,
    domain::{ids::UserId, subscription::SubscriptionStatus, tiers::Tier},
    store::dynamo::{n, s},
};

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

    pub async fn record(
        &self,
        user: &UserId,
        record: &SubscriptionRecord<'_>,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let optional_number = |value: Option<i64>| value.map(n).unwrap_or(AttributeValue::Null(true));
        self.client
            .update_item()
            .table_name(&self.table)
            .key("userId", s(user.as_str()))
            .key("subscriptionId", s(record.subscription_id))
            .update_expression(
                "SET price = :price, tier = :tier, #status = :status, currentPeriodStart = :start, \
                 currentPeriodEnd = :end, cancelAtPeriodEnd = :cancel, updatedAt = :now, \
                 createdAt = if_not_exists(createdAt, :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":price", s(record.price_id.unwrap_or("")))
            .expression_attribute_values(":tier", s(record.tier.map(Tier::as_str).unwrap_or("NONE")))
            .expression_attribute_values(":status", s(record.status.as_str()))
            .expression_attribute_values(":start", optional_number(record.period_start))
            .expression_attribute_values(":end", optional_number(record.period_end))
            .expression_attribute_values(":cancel", AttributeValue::Bool(record.cancel_at_period_end))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await
            .context("writing the subscription")?;
        Ok(())
    }
}
