//! Consent records (PK userId, SK consentId): who attested what, when, from where, for which
//! sample bytes. Written once when a clone is made, never changed but for their expiry, which is
//! set when the voice is deleted (the documented retention) and enforced by DynamoDB's TTL.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::Client;

use crate::{
    domain::ids::{Ulid, UserId, VoiceId},
    store::dynamo::{self, number, string},
};

#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub consent_id: Ulid,
    pub user_id: UserId,
    pub voice_id: VoiceId,
    /// The workspace whose shared library the voice went to; None: the person's own clone.
    pub workspace_id: Option<Ulid>,
    pub statement_version: String,
    pub accepted_at: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// Hex SHA-256 of every sample the clone was made from, in order.
    pub sample_sha256: Vec<String>,
}

#[derive(Clone)]
pub struct ConsentRecords {
    client: Client,
    table: String,
}

impl ConsentRecords {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub async fn put(&self, record: &ConsentRecord) -> anyhow::Result<()> {
        let mut item = HashMap::from([
            ("userId".to_owned(), string(record.user_id.as_str())),
            ("consentId".to_owned(), string(record.consent_id.as_str())),
            ("voiceId".to_owned(), string(record.voice_id.as_str())),
            ("statementVersion".to_owned(), string(&record.statement_version)),
            ("acceptedAt".to_owned(), string(&record.accepted_at)),
            (
                "sampleSha256".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::L(record.sample_sha256.iter().map(string).collect()),
            ),
        ]);
        if let Some(workspace) = &record.workspace_id {
            item.insert("workspaceId".to_owned(), string(workspace.as_str()));
        }
        if let Some(ip) = &record.ip_address {
            item.insert("ipAddress".to_owned(), string(ip));
        }
        if let Some(agent) = &record.user_agent {
            item.insert("userAgent".to_owned(), string(agent.chars().take(512).collect::<String>()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(consentId)")
            .send()
            .await
            .context("storing the consent record")?;
        Ok(())
    }

    /// Every consent record of the user, as JSON (for the user's own data export).
    pub async fn for_user(&self, user: &UserId) -> anyhow::Result<Vec<serde_json::Value>> {
        let output = dynamo::user_query(&self.client, &self.table, None, user)
            .send()
            .await
            .context("listing the consent records")?;
        let text = |item: &dynamo::Item, name: &str| dynamo::opt_str(item, name).map(String::from);
        Ok(output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let hashes: Vec<String> = item
                    .get("sampleSha256")
                    .and_then(|v| v.as_l().ok())
                    .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                    .unwrap_or_default();
                serde_json::json!({
                    "consentId": text(item, "consentId"),
                    "voiceId": text(item, "voiceId"),
                    "workspaceId": text(item, "workspaceId"),
                    "statementVersion": text(item, "statementVersion"),
                    "acceptedAt": text(item, "acceptedAt"),
                    "ipAddress": text(item, "ipAddress"),
                    "userAgent": text(item, "userAgent"),
                    "sampleSha256": hashes,
                })
            })
            .collect())
    }

    /// Starts the retention of every consent record of `user` that has none yet (the account is
    /// being erased: records are kept, hashes and all, only for the documented retention).
    /// The voices `user`'s samples made in workspaces' shared libraries: (workspace, voice).
    pub async fn library_voices(&self, user: &UserId) -> anyhow::Result<Vec<(Ulid, VoiceId)>> {
        let query = dynamo::user_query(&self.client, &self.table, None, user)
            .filter_expression("attribute_exists(workspaceId)")
            .projection_expression("workspaceId, voiceId");
        let items = dynamo::all_pages(query, "the consent records").await?;
        items
            .iter()
            .map(|item| {
                let id =
                    |name| dynamo::str(item, name).ok().and_then(Ulid::parse).with_context(|| format!("stored {name}"));
                Ok((id("workspaceId")?, id("voiceId")?))
            })
            .collect()
    }

    pub async fn retain_all(&self, user: &UserId, expires_at: i64) -> anyhow::Result<()> {
        let mut start = None;
        loop {
            let page = dynamo::user_query(&self.client, &self.table, None, user)
                .projection_expression("consentId, expiresAt")
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("listing the consent records")?;
            for item in page.items.unwrap_or_default() {
                if item.contains_key("expiresAt") {
                    continue;
                }
                let id = dynamo::str(&item, "consentId")?;
                let id = Ulid::parse(id).context("stored consent id")?;
                self.retain_until(user, &id, expires_at).await?;
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(());
            }
        }
    }

    pub async fn retain_until(&self, user: &UserId, consent_id: &Ulid, expires_at: i64) -> anyhow::Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("consentId", string(consent_id.as_str()))
            .update_expression("SET expiresAt = :at")
            .condition_expression("attribute_exists(consentId)")
            .expression_attribute_values(":at", number(expires_at))
            .send()
            .await
            .context("setting the consent record's retention")?;
        Ok(())
    }
}
