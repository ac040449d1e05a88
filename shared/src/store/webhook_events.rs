//! The webhook-idempotency table: one row per processed Stripe event id, kept for 30 days.

use anyhow::Context;
use aws_sdk_dynamodb::Client;

use crate::store::dynamo::{self, n, s};

const EVENT_RETENTION_SECS: i64 = 30 * 24 * 3600;

#[derive(Clone)]
pub struct WebhookEvents {
    client: Client,
    table: String,
}

impl WebhookEvents {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Claims the event; false if it was already claimed (a duplicate delivery).
    pub async fn claim(&self, event_id: &str, kind: &str, now: i64) -> anyhow::Result<bool> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("eventId", s(event_id))
            .update_expression("SET #type = :type, receivedAt = :now, expiresAt = :expires")
            .condition_expression("attribute_not_exists(eventId)")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", s(kind))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(now + EVENT_RETENTION_SECS));
        Ok(dynamo::conditional_update(update).await.context("recording the event")?.is_some())
    }

    /// Releases a claim whose processing failed, so Stripe's retry is processed.
    pub async fn release(&self, event_id: &str) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("eventId", s(event_id))
            .send()
            .await
            .context("releasing the event")?;
        Ok(())
    }
}
