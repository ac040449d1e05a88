//! API keys for programmatic access (table PK `keyHash`). A key is `vk_{prefix}_{secret}`: the
//! prefix (8 characters) identifies it in lists, the secret is 256 random bits. Only the SHA-256
//! of the whole key is stored, so one strongly consistent read authenticates a request and a
//! scan of the table finds no usable key; a revoked key's row is gone at once.

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
    },
    store::{
        dynamo::{self, Item, number, string},
        users::{Removed, Units},
    },
};

const PREFIX_CHARS: usize = 8;

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
    #[serde(skip)]
    pub user_id: Option<UserId>,
    #[serde(skip)]
    key_hash: String,
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
        user_id: Some(UserId::parse(dynamo::str(item, "userId")?).context("stored userId")?),
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

    /// Makes and stores a key for `user`; the key itself is in the answer only.
    pub async fn create(&self, user: &UserId, name: &str, created_at: String, id: Ulid) -> anyhow::Result<NewKey> {
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
            user_id: Some(user.clone()),
            key_hash: hash(&key),
        };
        let item = HashMap::from([
            ("keyHash".to_owned(), string(&meta.key_hash)),
            ("userId".to_owned(), string(user.as_str())),
            ("keyId".to_owned(), string(&meta.key_id)),
            ("name".to_owned(), string(&meta.name)),
            ("prefix".to_owned(), string(&meta.prefix)),
            ("createdAt".to_owned(), string(&meta.created_at)),
        ]);
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

    /// The user's keys, oldest first.
    pub async fn list(&self, user: &UserId) -> anyhow::Result<Vec<KeyMeta>> {
        let output = dynamo::user_query(&self.client, &self.table, Some("user-index"), user)
            .send()
            .await
            .context("listing API keys")?;
        output.items.unwrap_or_default().iter().map(meta_from).collect()
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

    /// Revokes every key of the user (account erasure).
    pub async fn revoke_all(&self, user: &UserId) -> anyhow::Result<usize> {
        let keys = self.list(user).await?;
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
