//! Server-side sessions. The cookie holds a 256-bit random token; both stores key the session by
//! the token's SHA-256, so neither holds a usable credential.
//!
//! Redis is the hot path: the entry slides by `idle` on every use and never outlives `absolute`.
//! DynamoDB is the durable copy: on a Redis miss or outage it validates (and touches) the session
//! in one conditional write, and Redis is refilled. A session served from Redis is re-checked
//! against DynamoDB every `durable_recheck`, which bounds how long an entry that Redis kept
//! through a logout it missed can outlive that logout.
//!
//! Redis is not trusted with identity: every entry carries an HMAC-SHA256 (key from SSM, fetched
//! once per cold start) over its fields and the token hash it is stored under. An entry that
//! fails the MAC, or claims a check or use in the future, is a miss: DynamoDB decides and the
//! entry is replaced. A logout's `revoked` tombstone always wins: every write of an entry (and
//! every removal) is one Lua script that leaves a tombstone in place.

use std::sync::Arc;

use anyhow::Context;
use aws_sdk_dynamodb::{Client, types::ReturnValue};
use hmac::{Hmac, Mac};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::{
    config::{Secret, SessionPolicy},
    domain::{
        ids::{UserId, hex},
        session::{ClientInfo, Session, SessionToken},
    },
    store::{
        dynamo::{self, Item, n, s},
        redis::Redis,
        secrets::{self, Wanted},
    },
    telemetry::metrics,
};

/// What Redis holds for an ended session: the tombstone no write may replace.
const REVOKED: &str = "revoked";

/// How far in the future a cached time may be (clock skew between functions) before the entry is
/// treated as forged.
const SKEW_SECS: i64 = 5;

/// Stores an entry unless the key holds the tombstone: KEYS[1], ARGV[1] value, ARGV[2] TTL (s).
const STORE_UNLESS_REVOKED: &str = r"
if redis.call('GET', KEYS[1]) == 'revoked' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
";

/// Removes an entry unless it is the tombstone.
const DELETE_UNLESS_REVOKED: &str = r"
if redis.call('GET', KEYS[1]) == 'revoked' then return 0 end
return redis.call('DEL', KEYS[1])
";

/// The key that signs session entries, fetched from SSM on first use (once per cold start).
#[derive(Clone)]
pub struct MacKey {
    ssm: aws_sdk_ssm::Client,
    parameter: Option<String>,
    key: Arc<OnceCell<Secret<String>>>,
}

impl MacKey {
    pub fn from_ssm(ssm: aws_sdk_ssm::Client, parameter: Option<String>) -> Self {
        Self { ssm, parameter, key: Arc::new(OnceCell::new()) }
    }

    async fn key(&self) -> anyhow::Result<&Secret<String>> {
        self.key
            .get_or_try_init(|| async {
                let parameter = self.parameter.as_deref();
                let [key] =
                    secrets::fetch(&self.ssm, [Wanted { variable: "SESSION_MAC_KEY_PARAM", parameter }]).await?;
                Ok(key)
            })
            .await
    }
}

/// The Redis value of a live session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedSession {
    user_id: String,
    created_at: i64,
    absolute_expires_at: i64,
    last_seen_at: i64,
    /// When DynamoDB last confirmed (and touched) this session.
    checked_at: i64,
    /// HMAC-SHA256 (hex) over the fields above and the key the entry is stored under.
    #[serde(default)]
    mac: String,
}

impl CachedSession {
    fn mac(&self, key: &str, secret: &Secret<String>) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
        let fields = format!(
            "session-v1|{key}|{}|{}|{}|{}|{}",
            self.user_id, self.created_at, self.absolute_expires_at, self.last_seen_at, self.checked_at
        );
        mac.update(fields.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn sign(&mut self, key: &str, secret: &Secret<String>) {
        self.mac = hex(&self.mac(key, secret));
    }

    /// Written by us for this key, and not claiming a future use or check.
    fn genuine(&self, key: &str, secret: &Secret<String>, now: i64) -> bool {
        let expected = hex(&self.mac(key, secret));
        let signed = bool::from(expected.as_bytes().ct_eq(self.mac.as_bytes()));
        signed && self.checked_at <= now + SKEW_SECS && self.last_seen_at <= now + SKEW_SECS
    }
}

#[derive(Clone)]
pub struct Sessions {
    redis: Redis,
    dynamodb: Client,
    table: String,
    policy: SessionPolicy,
    mac_key: MacKey,
}

impl Sessions {
    pub fn new(redis: Redis, dynamodb: Client, table: String, policy: SessionPolicy, mac_key: MacKey) -> Self {
        Self { redis, dynamodb, table, policy, mac_key }
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Opens a session under a fresh token (a new id at every sign-in: no fixation). DynamoDB must
    /// take it; Redis is filled on a best-effort basis.
    #[tracing::instrument(skip_all, fields(user_id = %user_id), err)]
    pub async fn open(
        &self,
        user_id: &UserId,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> anyhow::Result<(SessionToken, Session)> {
        let token = SessionToken::generate();
        let now = now.unix_timestamp();
        let absolute_expires_at = now + self.policy.absolute.as_secs() as i64;
        let key = token.key();

        let mut put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("sessionId", s(&key))
            .item("userId", s(user_id.as_str()))
            .item("createdAt", n(now))
            .item("lastSeenAt", n(now))
            .item("expiresAt", n(absolute_expires_at))
            .condition_expression("attribute_not_exists(sessionId)");
        if let Some(ip) = &client.ip_address {
            put = put.item("ipAddress", s(ip));
        }
        if let Some(agent) = &client.user_agent {
            put = put.item("userAgent", s(agent.chars().take(512).collect::<String>()));
        }
        put.send().await.context("storing the session")?;

        let cached = CachedSession {
            user_id: user_id.to_string(),
            created_at: now,
            absolute_expires_at,
            last_seen_at: now,
            checked_at: now,
            mac: String::new(),
        };
        self.cache(&key, &cached, now).await;
        let session = self.session(key, &cached, &token)?;
        Ok((token, session))
    }

    /// The session behind a token, if it is valid at `now`; refreshes its sliding window.
    /// Errors only when neither store can answer.
    #[tracing::instrument(skip_all, err)]
    pub async fn validate(&self, token: &SessionToken, now: OffsetDateTime) -> anyhow::Result<Option<Session>> {
        let now = now.unix_timestamp();
        let key = token.key();

        let mut cached = match self.cached(&key, now).await {
            Ok(Some(Cached::Revoked)) => return Ok(None),
            Ok(Some(Cached::Live(entry))) => Some(entry),
            Ok(None) => {
                metrics::count("SessionFallbacks", ("Reason", "miss"));
                None
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "redis unavailable; validating the session from DynamoDB");
                metrics::count("SessionFallbacks", ("Reason", "unavailable"));
                None
            }
        };

        if let Some(entry) = &cached
            && !self.alive(entry, now)
        {
            self.forget(&key).await;
            return Ok(None);
        }

        let recheck_due =
            cached.as_ref().is_none_or(|entry| now - entry.checked_at >= self.policy.durable_recheck.as_secs() as i64);
        if recheck_due {
            // Redis' entry already proves recent use; without one, DynamoDB's lastSeenAt must.
            let idle_cutoff = cached.is_none().then(|| now - self.policy.idle.as_secs() as i64);
            match self.touch_durable(&key, now, idle_cutoff).await {
                Ok(Some(durable)) => cached = Some(durable),
                Ok(None) => {
                    if cached.is_some() {
                        self.forget(&key).await;
                    }
                    return Ok(None);
                }
                // DynamoDB is down but Redis vouches for the session: serve it, re-check later.
                Err(error) if cached.is_some() => {
                    tracing::warn!(error = format!("{error:#}"), "session re-check against DynamoDB failed");
                }
                Err(error) => return Err(error),
            }
        }

        let mut entry = cached.expect("either Redis or DynamoDB produced the session");
        entry.last_seen_at = now;
        self.cache(&key, &entry, now).await;
        self.session(key, &entry, token).map(Some)
    }

    /// Ends the session in both stores. Succeeds when either store took the change: DynamoDB's
    /// delete stops every fallback, Redis' tombstone stops every hot-path read.
    #[tracing::instrument(skip_all, fields(user_id = %session.user_id), err)]
    pub async fn end(&self, session: &Session, now: OffsetDateTime) -> anyhow::Result<()> {
        let durable = self
            .dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("sessionId", s(&session.key))
            .send()
            .await
            .map(drop)
            .context("deleting the session from DynamoDB");
        let remaining = (session.absolute_expires_at - now.unix_timestamp()).max(1) as u64;
        let cached: anyhow::Result<()> = async {
            let mut conn = self.redis.conn().await?;
            let () = conn.set_ex(redis_key(&session.key), REVOKED, remaining).await?;
            anyhow::Ok(())
        }
        .await
        .context("revoking the session in Redis");

        match (durable, cached) {
            (Err(d), Err(c)) => Err(d.context(format!("{c:#}"))),
            (Err(error), Ok(())) | (Ok(()), Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "session ended in one store only");
                Ok(())
            }
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    fn alive(&self, entry: &CachedSession, now: i64) -> bool {
        now < entry.absolute_expires_at && now < entry.last_seen_at + self.policy.idle.as_secs() as i64
    }

    fn session(&self, key: String, entry: &CachedSession, token: &SessionToken) -> anyhow::Result<Session> {
        Ok(Session {
            key,
            user_id: UserId::parse(entry.user_id.as_str()).context("stored session user id")?,
            created_at: entry.created_at,
            absolute_expires_at: entry.absolute_expires_at,
            csrf_token: token.csrf_token(),
        })
    }

    /// The entry Redis holds for `key`; an entry that is not genuine (forged, corrupted, or from
    /// another key) is dropped and reported as a miss, so DynamoDB decides.
    async fn cached(&self, key: &str, now: i64) -> anyhow::Result<Option<Cached>> {
        let secret = self.mac_key.key().await?;
        let mut conn = self.redis.conn().await?;
        let raw: Option<String> = conn.get(redis_key(key)).await.context("reading the session from Redis")?;
        let entry: CachedSession = match raw.as_deref() {
            None => return Ok(None),
            Some(REVOKED) => return Ok(Some(Cached::Revoked)),
            Some(json) => match serde_json::from_str(json) {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::warn!(%error, "unreadable session in Redis; asking DynamoDB");
                    return Ok(None);
                }
            },
        };
        if !entry.genuine(key, secret, now) {
            tracing::warn!("a session entry in Redis failed its MAC or claims a future time; asking DynamoDB");
            self.forget(key).await;
            return Ok(None);
        }
        Ok(Some(Cached::Live(entry)))
    }

    /// Stores the entry, signed, for the rest of its idle window, capped by its absolute expiry;
    /// never over a tombstone.
    async fn cache(&self, key: &str, entry: &CachedSession, now: i64) {
        let ttl = (self.policy.idle.as_secs() as i64).min(entry.absolute_expires_at - now).max(1) as u64;
        let stored: anyhow::Result<i32> = async {
            let mut signed = entry.clone();
            signed.sign(key, self.mac_key.key().await?);
            let value = serde_json::to_string(&signed).expect("session entries serialize");
            let mut conn = self.redis.conn().await?;
            let script = redis::Script::new(STORE_UNLESS_REVOKED);
            Ok(script.key(redis_key(key)).arg(value).arg(ttl).invoke_async(&mut conn).await?)
        }
        .await;
        match stored {
            Ok(0) => tracing::info!("the session was ended meanwhile; its tombstone stays"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "could not cache the session in Redis"),
        }
    }

    /// Drops a live entry (never a tombstone).
    async fn forget(&self, key: &str) {
        let dropped: anyhow::Result<i32> = async {
            let mut conn = self.redis.conn().await?;
            Ok(redis::Script::new(DELETE_UNLESS_REVOKED).key(redis_key(key)).invoke_async(&mut conn).await?)
        }
        .await;
        if let Err(error) = dropped {
            tracing::warn!(error = format!("{error:#}"), "could not drop the session from Redis");
        }
    }

    /// Validates and touches the durable copy in one conditional write. None: the session does
    /// not exist, was ended, has passed its absolute limit, or was last seen before `idle_cutoff`.
    async fn touch_durable(
        &self,
        key: &str,
        now: i64,
        idle_cutoff: Option<i64>,
    ) -> anyhow::Result<Option<CachedSession>> {
        let mut update = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("sessionId", s(key))
            .update_expression("SET lastSeenAt = :now")
            .condition_expression("attribute_exists(sessionId) AND expiresAt > :now")
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew);
        if let Some(cutoff) = idle_cutoff {
            update = update
                .condition_expression("attribute_exists(sessionId) AND expiresAt > :now AND lastSeenAt > :idle_cutoff")
                .expression_attribute_values(":idle_cutoff", n(cutoff));
        }
        match dynamo::conditional_update(update).await.context("validating the session in DynamoDB")? {
            Some(output) => {
                durable_entry(&output.attributes.context("DynamoDB returned no attributes")?, now).map(Some)
            }
            None => Ok(None),
        }
    }
}

enum Cached {
    Live(CachedSession),
    Revoked,
}

fn durable_entry(item: &Item, now: i64) -> anyhow::Result<CachedSession> {
    Ok(CachedSession {
        user_id: dynamo::str(item, "userId")?.to_owned(),
        created_at: dynamo::num(item, "createdAt")?,
        absolute_expires_at: dynamo::num(item, "expiresAt")?,
        last_seen_at: now,
        checked_at: now,
        mac: String::new(),
    })
}

impl Sessions {
    /// Ends every session of `user` in both stores (the account is being erased).
    pub async fn end_all(&self, user: &UserId) -> anyhow::Result<usize> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .index_name("user-index")
                .key_condition_expression("userId = :user")
                .expression_attribute_values(":user", s(user.as_str()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("listing the user's sessions")?;
            keys.extend(
                page.items.unwrap_or_default().iter().filter_map(|i| dynamo::opt_str(i, "sessionId").map(String::from)),
            );
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let tombstone_ttl = self.policy.absolute.as_secs().max(1);
        let mut conn = self.redis.conn().await?;
        for key in &keys {
            // The tombstone first: a Redis entry must never outlive the durable copy.
            let () =
                conn.set_ex(redis_key(key), REVOKED, tombstone_ttl).await.context("revoking a session in Redis")?;
            self.dynamodb
                .delete_item()
                .table_name(&self.table)
                .key("sessionId", s(key))
                .send()
                .await
                .context("deleting a session")?;
        }
        Ok(keys.len())
    }

    /// Drops a session's Redis entry (DynamoDB's TTL removed its durable copy).
    pub async fn drop_cached(&self, key: &str) -> anyhow::Result<()> {
        let mut conn = self.redis.conn().await?;
        let () = conn.del(redis_key(key)).await.context("dropping the session from Redis")?;
        Ok(())
    }
}

/// The Redis key of a session, by its hash.
pub fn redis_key(key: &str) -> String {
    format!("session:{key}")
}
