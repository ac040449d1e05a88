//! The audit log of admin actions: one row per action, partitioned by month (PK `month`,
//! `YYYY-MM`; SK `auditId`, a ULID, so a month reads newest first). Rows are only ever put, with
//! a condition that the id is new; nothing here (and no IAM policy) updates or deletes them.

use anyhow::Context;
use aws_sdk_dynamodb::{Client, types::AttributeValue};
use serde::Serialize;

use crate::{
    domain::{ids::Ulid, usage::UsagePeriod},
    store::dynamo::{self, Item, string},
};

mod attr {
    pub const MONTH: &str = "month";
    pub const AUDIT_ID: &str = "auditId";
    pub const AT: &str = "at";
    pub const ACTOR: &str = "actorId";
    pub const ACTOR_ROLE: &str = "actorRole";
    pub const ACTION: &str = "action";
    pub const TARGET: &str = "targetUserId";
    pub const REASON: &str = "reason";
    pub const REQUEST_ID: &str = "requestId";
    /// JSON: what the action asked for (the query, the amount granted).
    pub const DETAIL: &str = "detail";
}

/// Who did what, to whom, when, why, in which request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub audit_id: Ulid,
    /// RFC 3339.
    pub at: String,
    pub actor_id: String,
    pub actor_role: String,
    /// `lookup`, `view`, `stats`, `suspend`, `unsuspend`, `grant-usage`, `role-grant`.
    pub action: String,
    pub target_user_id: Option<String>,
    pub reason: Option<String>,
    pub request_id: String,
    pub detail: serde_json::Value,
}

#[derive(Clone)]
pub struct AuditLog {
    client: Client,
    table: String,
}

impl AuditLog {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Appends one entry (never replaces one).
    #[tracing::instrument(skip(self, entry), fields(action = %entry.action), err)]
    pub async fn append(&self, entry: &AuditEntry) -> anyhow::Result<()> {
        let month = month_of(&entry.audit_id)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(attr::MONTH, string(month))
            .item(attr::AUDIT_ID, string(entry.audit_id.as_str()))
            .item(attr::AT, string(&entry.at))
            .item(attr::ACTOR, string(&entry.actor_id))
            .item(attr::ACTOR_ROLE, string(&entry.actor_role))
            .item(attr::ACTION, string(&entry.action))
            .item(attr::REQUEST_ID, string(&entry.request_id))
            .item(attr::DETAIL, string(entry.detail.to_string()))
            .condition_expression("attribute_not_exists(auditId)");
        if let Some(target) = &entry.target_user_id {
            put = put.item(attr::TARGET, string(target));
        }
        if let Some(reason) = &entry.reason {
            put = put.item(attr::REASON, string(reason));
        }
        put.send().await.context("writing the audit entry")?;
        Ok(())
    }

    /// One month's entries, newest first, `limit` at a time after `cursor` (an audit id).
    pub async fn list(
        &self,
        month: UsagePeriod,
        limit: u32,
        cursor: Option<&Ulid>,
    ) -> anyhow::Result<(Vec<AuditEntry>, Option<Ulid>)> {
        let month = month.to_string();
        let start = cursor.map(|id| {
            Item::from([(attr::MONTH.to_owned(), string(&month)), (attr::AUDIT_ID.to_owned(), string(id.as_str()))])
        });
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#month = :month")
            .expression_attribute_names("#month", attr::MONTH)
            .expression_attribute_values(":month", string(&month))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("reading the audit log")?;
        let entries = page.items.unwrap_or_default().iter().map(entry_from_item).collect::<anyhow::Result<_>>()?;
        let next = page
            .last_evaluated_key
            .as_ref()
            .and_then(|key| key.get(attr::AUDIT_ID))
            .and_then(|v| v.as_s().ok())
            .and_then(|id| Ulid::parse(id));
        Ok((entries, next))
    }
}

/// The month an entry is filed under: its id's own time, so the key is derived, never chosen.
fn month_of(id: &Ulid) -> anyhow::Result<String> {
    let at = id.timestamp().context("an audit id carries its time")?;
    Ok(UsagePeriod::containing(at).to_string())
}

fn entry_from_item(item: &Item) -> anyhow::Result<AuditEntry> {
    let text = |name| dynamo::str(item, name).map(String::from);
    let optional = |name| dynamo::opt_str(item, name).map(String::from);
    Ok(AuditEntry {
        audit_id: Ulid::parse(dynamo::str(item, attr::AUDIT_ID)?).context("stored audit id")?,
        at: text(attr::AT)?,
        actor_id: text(attr::ACTOR)?,
        actor_role: text(attr::ACTOR_ROLE)?,
        action: text(attr::ACTION)?,
        target_user_id: optional(attr::TARGET),
        reason: optional(attr::REASON),
        request_id: text(attr::REQUEST_ID)?,
        detail: match item.get(attr::DETAIL) {
            Some(AttributeValue::S(json)) => serde_json::from_str(json).context("stored audit detail")?,
            _ => serde_json::Value::Null,
        },
    })
}
