//! The user's row as last read, kept in Redis beside the sessions so that an authenticated read
//! needs no DynamoDB call: one hash per user (`user:{slot}`) with the row (`item`) and a
//! generation (`gen`) that every write to the row bumps.
//!
//! Fresh: every write through [`Users`] forgets the row (bumps `gen`, drops `item`) after
//! DynamoDB took it, so the next request reads DynamoDB again and sees the new tier, counter or
//! suspension. A reader fills the row only if `gen` is still what it saw before its DynamoDB
//! read, so a read that raced a write never stores what the write replaced. If Redis misses the
//! forget (down at that moment), the row still ages out after [`TTL`].
//!
//! Not trusted: the row is signed (HMAC-SHA256, the session key) together with its Redis key and
//! when it was stored; a row that fails the MAC, belongs to another user, or is older than
//! [`TTL`] is not used.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::{primitives::Blob, types::AttributeValue};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{
    config::Secret,
    domain::{
        ids::{UserId, hex},
        session::user_slot,
        user::User,
    },
    store::{dynamo::Item, redis::Redis, secrets::MacKey},
};

/// How long a row may serve without a DynamoDB read, whatever happens to the forgets.
pub const TTL: Duration = Duration::from_secs(60);

/// How far in the future a stored time may be (clock skew between functions).
const SKEW_SECS: i64 = 5;

/// Stores the row unless `gen` moved since the reader saw it: KEYS[1]; ARGV[1] the generation
/// seen ('' for none), ARGV[2] the signed row, ARGV[3] TTL (s).
const FILL: &str = r"
local gen = redis.call('HGET', KEYS[1], 'gen') or ''
if gen ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'item', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Forgets the row and bumps the generation: KEYS[1]; ARGV[1] TTL (s).
const FORGET: &str = r"
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HDEL', KEYS[1], 'item')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
";

/// The Redis key of a user's snapshot.
pub fn key(user: &UserId) -> String {
    key_in_slot(&user_slot(user))
}

/// The same key, from the slot a session token carries.
pub fn key_in_slot(slot: &str) -> String {
    format!("user:{{{slot}}}")
}

/// What the hot path read of a user's snapshot: the generation to fill under, and the signed
/// row if there is one.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub generation: String,
    pub row: Option<String>,
}

#[derive(Clone)]
pub struct Snapshots {
    redis: Redis,
    mac_key: MacKey,
}

impl Snapshots {
    pub fn new(redis: Redis, mac_key: MacKey) -> Self {
        Self { redis, mac_key }
    }

    /// The user from a signed row, if it is genuine, this user's, and young enough at `now`.
    pub async fn user(&self, id: &UserId, row: &str, now: i64) -> Option<User> {
        let secret = match self.mac_key.key().await {
            Ok(secret) => secret,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "no MAC key for the user snapshot");
                return None;
            }
        };
        let read = open(&key(id), row, secret, now)
            .and_then(|item| super::user_from_item(&item).ok())
            .filter(|user| &user.id == id);
        if read.is_none() {
            tracing::warn!(user_id = %id, "a user snapshot in Redis failed its MAC, age or owner; reading DynamoDB");
        }
        read
    }

    /// Stores the row as read from DynamoDB, unless a write forgot the user since `seen`.
    pub async fn fill(&self, id: &UserId, item: &Item, seen: &Seen, now: i64) {
        let filled: anyhow::Result<i32> = async {
            let key = key(id);
            let row = seal(&key, item, self.mac_key.key().await?, now);
            let mut conn = self.redis.conn().await?;
            let script = redis::Script::new(FILL);
            Ok(script.key(key).arg(&seen.generation).arg(row).arg(TTL.as_secs()).invoke_async(&mut conn).await?)
        }
        .await;
        if let Err(error) = filled {
            tracing::warn!(error = format!("{error:#}"), "could not store the user snapshot");
        }
    }

    /// Makes the next request read the user from DynamoDB. Called after every write to the row.
    pub async fn forget(&self, id: &UserId) {
        let forgot: anyhow::Result<i32> = async {
            let mut conn = self.redis.conn().await?;
            Ok(redis::Script::new(FORGET).key(key(id)).arg(TTL.as_secs()).invoke_async(&mut conn).await?)
        }
        .await;
        if let Err(error) = forgot {
            crate::telemetry::metrics::count("SnapshotForgetFailures", ("Store", "redis"));
            tracing::warn!(
                error = format!("{error:#}"),
                user_id = %id,
                "could not forget the user snapshot; it ages out within a minute"
            );
        }
    }
}

fn mac(key: &str, payload: &str, secret: &Secret<String>) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("user-snapshot-v1|{key}|{payload}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `{mac}.{payload}`, the payload being `{"storedAt": now, "item": …}`.
fn seal(key: &str, item: &Item, secret: &Secret<String>, now: i64) -> String {
    let payload = json!({ "storedAt": now, "item": item_to_json(item) }).to_string();
    format!("{}.{payload}", hex(&mac(key, &payload, secret)))
}

fn open(key: &str, row: &str, secret: &Secret<String>, now: i64) -> Option<Item> {
    let (signature, payload) = row.split_once('.')?;
    let expected = hex(&mac(key, payload, secret));
    if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return None;
    }
    let payload: Value = serde_json::from_str(payload).ok()?;
    let stored_at = payload["storedAt"].as_i64()?;
    let fresh = stored_at <= now + SKEW_SECS && now - stored_at < TTL.as_secs() as i64;
    if !fresh {
        return None;
    }
    json_to_item(&payload["item"]).ok()
}

/// A DynamoDB item as DynamoDB's own JSON (`{"name": {"S": "…"}}`).
fn item_to_json(item: &Item) -> Value {
    Value::Object(item.iter().map(|(name, value)| (name.clone(), attribute_to_json(value))).collect())
}

fn attribute_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(list) => json!({ "SS": list }),
        AttributeValue::Ns(list) => json!({ "NS": list }),
        AttributeValue::L(list) => json!({ "L": list.iter().map(attribute_to_json).collect::<Vec<_>>() }),
        AttributeValue::M(map) => json!({ "M": item_to_json(map) }),
        AttributeValue::B(blob) => json!({ "B": hex(blob.as_ref()) }),
        // A kind this SDK does not know: unreadable back, so the snapshot is refused on read.
        _ => json!({ "?": null }),
    }
}

fn json_to_item(value: &Value) -> anyhow::Result<Item> {
    value
        .as_object()
        .context("an item is an object")?
        .iter()
        .map(|(name, value)| Ok((name.clone(), json_to_attribute(value)?)))
        .collect()
}

fn json_to_attribute(value: &Value) -> anyhow::Result<AttributeValue> {
    let (kind, inner) = value.as_object().and_then(single).context("an attribute is one typed value")?;
    let strings = |v: &Value| -> anyhow::Result<Vec<String>> {
        v.as_array()
            .context("a set is a list")?
            .iter()
            .map(|s| s.as_str().map(str::to_owned).context("a set holds strings"))
            .collect()
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str().context("S")?.to_owned()),
        "N" => AttributeValue::N(inner.as_str().context("N")?.to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().context("BOOL")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "L" => {
            AttributeValue::L(inner.as_array().context("L")?.iter().map(json_to_attribute).collect::<Result<_, _>>()?)
        }
        "M" => AttributeValue::M(json_to_item(inner)?),
        "B" => AttributeValue::B(Blob::new(unhex(inner.as_str().context("B")?)?)),
        other => anyhow::bail!("unknown attribute kind {other}"),
    })
}

fn single(map: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut entries = map.iter();
    let first = entries.next()?;
    entries.next().is_none().then_some(first)
}

fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(text.len().is_multiple_of(2), "odd hex");
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).context("hex")).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn secret() -> Secret<String> {
        Secret::new("k".repeat(32))
    }

    fn item() -> Item {
        HashMap::from([
            ("userId".to_owned(), AttributeValue::S("auth0|ada".into())),
            ("recordingsThisMonth".to_owned(), AttributeValue::N("3".into())),
            ("erasing".to_owned(), AttributeValue::Bool(false)),
            ("gone".to_owned(), AttributeValue::Null(true)),
            ("tags".to_owned(), AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("blob".to_owned(), AttributeValue::B(Blob::new(vec![0, 255]))),
            (
                "nested".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "list".to_owned(),
                    AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::S("x".into())]),
                )])),
            ),
        ])
    }

    #[test]
    fn a_sealed_row_opens_to_the_same_item() {
        let sealed = seal("user:{x}", &item(), &secret(), 1000);
        assert_eq!(open("user:{x}", &sealed, &secret(), 1010), Some(item()));
    }

    #[test]
    fn a_row_edited_moved_old_or_from_the_future_is_refused() {
        let sealed = seal("user:{x}", &item(), &secret(), 1000);
        let edited = sealed.replace("\"3\"", "\"0\"");
        assert_ne!(edited, sealed);
        assert_eq!(open("user:{x}", &edited, &secret(), 1010), None, "edited");
        assert_eq!(open("user:{y}", &sealed, &secret(), 1010), None, "under another key");
        assert_eq!(open("user:{x}", &sealed, &Secret::new("other".into()), 1010), None, "another secret");
        assert_eq!(open("user:{x}", &sealed, &secret(), 1000 + TTL.as_secs() as i64), None, "too old");
        assert_eq!(open("user:{x}", &sealed, &secret(), 1000 - SKEW_SECS - 1), None, "from the future");
        assert_eq!(open("user:{x}", "junk", &secret(), 1010), None);
    }
}
