//! The webhook-idempotency table: one row per Stripe event id, kept for 30 days.
//!
//! A delivery claims its event with a lease (`status = processing`, `leaseUntil` in ms, shorter
//! than the function's timeout) and marks it `done` only after the event was applied. A
//! delivery that finds a live lease is told to come back later; one that finds an expired lease
//! (its holder crashed or timed out) takes it over; one that finds `done` is a duplicate.

use anyhow::Context;
use aws_sdk_dynamodb::Client;

use crate::store::dynamo::{self, number, string};

const EVENT_RETENTION_SECS: i64 = 30 * 24 * 3600;
const PROCESSING: &str = "processing";
const DONE: &str = "done";

/// What a delivery found when it tried to claim its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to apply, until the lease (ms) runs out.
    Leased { until_ms: i64 },
    /// Another delivery is applying it right now.
    InProgress,
    /// Already applied.
    Done,
}

#[derive(Clone)]
pub struct WebhookEvents {
    client: Client,
    table: String,
}

impl WebhookEvents {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Adds one to the durable counter `key` (kept until `expires_at`, unix seconds); its new
    /// value. The rate limits count here while Redis cannot.
    pub async fn count(&self, key: &str, expires_at: i64) -> anyhow::Result<u32> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("eventId", string(key))
            .update_expression("SET #type = :type, expiresAt = :expires, hits = if_not_exists(hits, :zero) + :one")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":type", string("rate-limit"))
            .expression_attribute_values(":expires", number(expires_at))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .context("counting in DynamoDB")?;
        dynamo::num(&output.attributes.unwrap_or_default(), "hits")
    }

    /// Claims the event for `lease_ms` from `now_ms`: a new event, or one whose lease expired.
    pub async fn claim(&self, event_id: &str, kind: &str, now_ms: i64, lease_ms: i64) -> anyhow::Result<Claim> {
        let until_ms = now_ms.saturating_add(lease_ms);
        let now = now_ms.div_euclid(1000);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("eventId", string(event_id))
            .update_expression(
                "SET #type = :type, #status = :processing, leaseUntil = :until, expiresAt = :expires, \
                 receivedAt = if_not_exists(receivedAt, :now), attempts = if_not_exists(attempts, :zero) + :one",
            )
            .condition_expression("attribute_not_exists(eventId) OR (#status = :processing AND leaseUntil < :now_ms)")
            .expression_attribute_names("#type", "type")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":type", string(kind))
            .expression_attribute_values(":processing", string(PROCESSING))
            .expression_attribute_values(":until", number(until_ms))
            .expression_attribute_values(":now_ms", number(now_ms))
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":expires", number(now + EVENT_RETENTION_SECS))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1));
        if dynamo::conditional_update(update).await.context("claiming the event")?.is_some() {
            return Ok(Claim::Leased { until_ms });
        }
        let row = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("eventId", string(event_id))
            .consistent_read(true)
            .send()
            .await
            .context("reading the event's claim")?;
        // Rows written before leases existed have no status: they were applied.
        let processing = row.item.as_ref().and_then(|item| dynamo::opt_str(item, "status")) == Some(PROCESSING);
        Ok(if processing { Claim::InProgress } else { Claim::Done })
    }

    /// Marks the event applied, with what applying it did.
    pub async fn complete(&self, event_id: &str, outcome: &str, now_ms: i64) -> anyhow::Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("eventId", string(event_id))
            .update_expression("SET #status = :done, outcome = :outcome, completedAt = :now REMOVE leaseUntil")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", string(DONE))
            .expression_attribute_values(":outcome", string(outcome))
            .expression_attribute_values(":now", number(now_ms.div_euclid(1000)))
            .send()
            .await
            .context("marking the event applied")?;
        Ok(())
    }

    /// Gives up a lease whose apply failed, so Stripe's retry is processed at once. Only our own
    /// lease is removed (a delivery that took over an expired one keeps it).
    pub async fn release(&self, event_id: &str, until_ms: i64) -> anyhow::Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("eventId", string(event_id))
            .condition_expression("#status = :processing AND leaseUntil = :until")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processing", string(PROCESSING))
            .expression_attribute_values(":until", number(until_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(error) => Err(anyhow::Error::new(error).context("releasing the event")),
        }
    }
}
