//! API keys for programmatic access (table PK `keyHash`). A key is `vk_{prefix}_{secret}`: the
//! prefix (8 characters) identifies it in lists, the secret is 256 random bits. Only the SHA-256
//! of the whole key is stored, so one strongly consistent read authenticates a request and a
//! scan of the table finds no usable key; a revoked key's row is gone at once. A workspace's key
//! carries `workspaceId` (and is listed under the workspace: `store::workspaces`): it speaks in
//! that workspace as the member who made it, and is none of that person's own keys.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    domain::{
        allowance::Allowance,
        ids::{Ulid, UserId, hex, random_token},
        usage::UsagePeriod,
        workspaces::WorkspaceId,
    },
    store::{
        dynamo::{self, Item, number, string},
        users::{Removed, Units},
    },
};

const PREFIX_CHARS: usize = 8;

/// Characters of a key's monthly budget taken for work under way: [`KeyCharacters::commit`]
/// them when it is done, or [`KeyCharacters::give_back`] when it failed (once: both consume it).
#[must_use = "a key's characters are committed or given back"]
pub struct KeyCharacters {
    keys: ApiKeys,
    key_hash: String,
    characters: u64,
    month: String,
    settled: bool,
}

impl Drop for KeyCharacters {
    fn drop(&mut self) {
        if !self.settled {
            tracing::error!(characters = self.characters, "a key's characters were dropped without being settled");
        }
    }
}

impl KeyCharacters {
    /// The work is done: the characters stay counted.
    pub fn commit(mut self) {
        self.settled = true;
    }

    /// The work failed: the characters are given back to the month they were taken in (a month
    /// that has ended since, or a key revoked, keeps them: nothing to give back to).
    pub async fn give_back(mut self) -> anyhow::Result<()> {
        self.settled = true;
        let held = &self;
        let update = held
            .keys
            .client
            .update_item()
            .table_name(&held.keys.table)
            .key("keyHash", string(&held.key_hash))
            .update_expression("SET characters = characters - :n")
            .condition_expression("charactersPeriod = :period AND characters >= :n")
            .expression_attribute_values(":n", number(held.characters))
            .expression_attribute_values(":period", string(&held.month));
        dynamo::conditional_update(update).await.context("giving the key's characters back")?;
        Ok(())
    }
}

/// The largest monthly character budget a key may carry.
pub const MAX_CHARACTER_BUDGET: u64 = 10_000_000;

/// A new key, shown to its owner once.
pub struct NewKey {
    pub key: String,
    pub meta: KeyMeta,
}

/// What is kept and listed about a key (never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyMeta {
    pub key_id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<i64>,
    /// Calls in `calls_period`.
    pub calls_this_month: u64,
    #[serde(skip)]
    pub calls_period: Option<String>,
    /// The most characters it may have spoken in a month (None: only the plan limits it).
    pub monthly_character_limit: Option<u64>,
    /// Characters spoken with it in `characters_period`.
    pub characters_this_month: u64,
    #[serde(skip)]
    pub characters_period: Option<String>,
    #[serde(skip)]
    pub user_id: Option<UserId>,
    /// A workspace's key: the workspace it speaks in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<WorkspaceId>,
    #[serde(skip)]
    key_hash: String,
}

impl KeyMeta {
    /// The stored hash of the key (what a workspace's listing points at).
    pub(in crate::store) fn key_hash(&self) -> &str {
        &self.key_hash
    }

    /// The key as of `period`: counts of an earlier month are this month's zero.
    pub fn as_of(mut self, period: UsagePeriod) -> Self {
        let month = period.to_string();
        if self.calls_period.as_deref() != Some(month.as_str()) {
            self.calls_this_month = 0;
        }
        if self.characters_period.as_deref() != Some(month.as_str()) {
            self.characters_this_month = 0;
        }
        self
    }
}

fn hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn meta_from(item: &Item) -> anyhow::Result<KeyMeta> {
    Ok(KeyMeta {
        key_id: dynamo::str(item, "keyId")?.to_owned(),
        name: dynamo::str(item, "name")?.to_owned(),
        prefix: dynamo::str(item, "prefix")?.to_owned(),
        created_at: dynamo::str(item, "createdAt")?.to_owned(),
        last_used_at: dynamo::opt_num(item, "lastUsedAt")?,
        calls_this_month: dynamo::opt_num(item, "calls")?.unwrap_or(0),
        calls_period: dynamo::opt_str(item, "callsPeriod").map(String::from),
        monthly_character_limit: dynamo::opt_num(item, "monthlyCharacterLimit")?,
        characters_this_month: dynamo::opt_num(item, "characters")?.unwrap_or(0),
        characters_period: dynamo::opt_str(item, "charactersPeriod").map(String::from),
        user_id: Some(UserId::parse(dynamo::str(item, "userId")?).context("stored userId")?),
        workspace_id: dynamo::opt_str(item, "workspaceId")
            .map(|id| Ulid::parse(id).context("stored workspaceId"))
            .transpose()?,
        key_hash: dynamo::str(item, "keyHash")?.to_owned(),
    })
}

#[derive(Clone)]
pub struct ApiKeys {
    client: Client,
    table: String,
}

impl ApiKeys {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Makes and stores a key for `user` (in `workspace`, for a workspace's key); the key itself
    /// is in the answer only.
    pub async fn create(
        &self,
        user: &UserId,
        workspace: Option<&WorkspaceId>,
        name: &str,
        monthly_character_limit: Option<u64>,
        created_at: String,
        id: Ulid,
    ) -> anyhow::Result<NewKey> {
        let secret = random_token();
        let prefix: String = random_token().chars().filter(char::is_ascii_alphanumeric).take(PREFIX_CHARS).collect();
        let key = format!("vk_{prefix}_{secret}");
        let meta = KeyMeta {
            key_id: id.to_string(),
            name: name.to_owned(),
            prefix: format!("vk_{prefix}"),
            created_at,
            last_used_at: None,
            calls_this_month: 0,
            calls_period: None,
            monthly_character_limit,
            characters_this_month: 0,
            characters_period: None,
            user_id: Some(user.clone()),
            workspace_id: workspace.cloned(),
            key_hash: hash(&key),
        };
        let mut item = HashMap::from([
            ("keyHash".to_owned(), string(&meta.key_hash)),
            ("userId".to_owned(), string(user.as_str())),
            ("keyId".to_owned(), string(&meta.key_id)),
            ("name".to_owned(), string(&meta.name)),
            ("prefix".to_owned(), string(&meta.prefix)),
            ("createdAt".to_owned(), string(&meta.created_at)),
        ]);
        if let Some(limit) = monthly_character_limit {
            item.insert("monthlyCharacterLimit".to_owned(), number(limit));
        }
        if let Some(workspace) = workspace {
            item.insert("workspaceId".to_owned(), string(workspace.as_str()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(keyHash)")
            .send()
            .await
            .context("storing the API key")?;
        Ok(NewKey { key, meta })
    }

    /// The key's owner and metadata, if the key exists (strongly consistent: a revoked key fails
    /// at once).
    pub async fn authenticate(&self, key: &str) -> anyhow::Result<Option<KeyMeta>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("keyHash", string(hash(key)))
            .consistent_read(true)
            .send()
            .await
            .context("reading the API key")?;
        output.item.as_ref().map(meta_from).transpose()
    }

    /// Counts a call: last used, and calls this month.
    pub async fn record_use(&self, meta: &KeyMeta, now: i64, period: UsagePeriod) -> anyhow::Result<()> {
        let same_month = meta.calls_period.as_deref() == Some(period.to_string().as_str());
        let expression = if same_month {
            "SET lastUsedAt = :now, calls = if_not_exists(calls, :zero) + :one"
        } else {
            "SET lastUsedAt = :now, calls = :one, callsPeriod = :period"
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("keyHash", string(&meta.key_hash))
            .update_expression(expression)
            .condition_expression("attribute_exists(keyHash)")
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":one", number(1));
        update = if same_month {
            update.expression_attribute_values(":zero", number(0))
        } else {
            update.expression_attribute_values(":period", string(period.to_string()))
        };
        dynamo::conditional_update(update).await.context("counting the key's use")?;
        Ok(())
    }

    /// Sets (or, with None, removes) the monthly character budget of the user's key `key_id`;
    /// the key as it is then, None when the user has no such key.
    pub async fn set_character_limit(
        &self,
        user: &UserId,
        key_id: &str,
        limit: Option<u64>,
    ) -> anyhow::Result<Option<KeyMeta>> {
        let Some(meta) = self.list(user).await?.into_iter().find(|k| k.key_id == key_id) else {
            return Ok(None);
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("keyHash", string(&meta.key_hash))
            .condition_expression("attribute_exists(keyHash) AND userId = :user")
            .expression_attribute_values(":user", string(user.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let update = match limit {
            Some(limit) => update
                .update_expression("SET monthlyCharacterLimit = :limit")
                .expression_attribute_values(":limit", number(limit)),
            None => update.update_expression("REMOVE monthlyCharacterLimit"),
        };
        let updated = dynamo::conditional_update(update).await.context("setting the key's budget")?;
        updated.and_then(|output| output.attributes).as_ref().map(meta_from).transpose()
    }

    /// Takes `characters` of the key's monthly budget `limit` for `period`: held until the work
    /// commits or gives them back; None when the budget has not that many left (or the key is
    /// gone). One conditional write each way, so concurrent requests never overspend it.
    pub async fn take_characters(
        &self,
        meta: &KeyMeta,
        limit: u64,
        characters: u64,
        period: UsagePeriod,
    ) -> anyhow::Result<Option<KeyCharacters>> {
        let Some(room) = limit.checked_sub(characters) else { return Ok(None) };
        let month = period.to_string();
        // Within the month counted already, only while the rest fits; else the month's first
        // count. A concurrent first count makes the first try fail once more, then fit or not.
        for same_month in [true, false, true] {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("keyHash", string(&meta.key_hash))
                .expression_attribute_values(":n", number(characters))
                .expression_attribute_values(":period", string(&month));
            let update = if same_month {
                update
                    .update_expression("SET characters = characters + :n")
                    .condition_expression("charactersPeriod = :period AND characters <= :room")
                    .expression_attribute_values(":room", number(room))
            } else {
                update.update_expression("SET characters = :n, charactersPeriod = :period").condition_expression(
                    "attribute_exists(keyHash) AND (attribute_not_exists(charactersPeriod) OR charactersPeriod <> :period)",
                )
            };
            if dynamo::conditional_update(update).await.context("taking the key's characters")?.is_some() {
                let keys = self.clone();
                return Ok(Some(KeyCharacters {
                    keys,
                    key_hash: meta.key_hash.clone(),
                    characters,
                    month,
                    settled: false,
                }));
            }
        }
        Ok(None)
    }

    /// The user's keys, oldest first.
    /// The user's own keys (not the workspaces' keys they made).
    pub async fn list(&self, user: &UserId) -> anyhow::Result<Vec<KeyMeta>> {
        Ok(self.list_all(user).await?.into_iter().filter(|k| k.workspace_id.is_none()).collect())
    }

    /// Every key the user made, their own and workspaces'.
    async fn list_all(&self, user: &UserId) -> anyhow::Result<Vec<KeyMeta>> {
        let output = dynamo::user_query(&self.client, &self.table, Some("user-index"), user)
            .send()
            .await
            .context("listing API keys")?;
        output.items.unwrap_or_default().iter().map(meta_from).collect()
    }

    /// Deletes a key just made that could not be put to use.
    pub async fn discard(&self, key: &KeyMeta) -> anyhow::Result<()> {
        self.delete_by_hash(&key.key_hash).await
    }

    /// Deletes the key whose hash is `key_hash` (a workspace's key, found in the workspace's
    /// listing); deleting one already gone is no error.
    pub(in crate::store) async fn delete_by_hash(&self, key_hash: &str) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("keyHash", string(key_hash))
            .send()
            .await
            .context("revoking an API key")?;
        Ok(())
    }

    /// Revokes the user's key `key_id`: the key and the place it held, for the one caller whose
    /// delete removed it (None for every other, and when the user has no such key).
    pub async fn revoke(&self, user: &UserId, key_id: &str) -> anyhow::Result<Option<Removed<KeyMeta>>> {
        let Some(meta) = self.list(user).await?.into_iter().find(|k| k.key_id == key_id) else {
            return Ok(None);
        };
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("keyHash", string(&meta.key_hash))
            .condition_expression("attribute_exists(keyHash) AND userId = :user")
            .expression_attribute_values(":user", string(user.as_str()));
        let Some(old) = dynamo::conditional_delete(delete).await.context("revoking the API key")? else {
            return Ok(None);
        };
        Ok(Some(Removed::new(meta_from(&old)?, user.clone(), vec![Units::one(Allowance::ApiKeys)], None)))
    }

    /// Revokes every key the user made (account erasure), workspaces' keys too.
    pub async fn revoke_all(&self, user: &UserId) -> anyhow::Result<usize> {
        let keys = self.list_all(user).await?;
        for key in &keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("keyHash", string(&key.key_hash))
                .send()
                .await
                .context("revoking an API key")?;
        }
        Ok(keys.len())
    }
}
