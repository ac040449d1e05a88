//! Server-side sessions. The cookie holds a 256-bit random token; both stores key the session by
//! the token's SHA-256, so neither holds a usable credential.
//!
//! Redis is the hot path: one script ([`HOT_READ`]) reads the session entry, slides its TTL by
//! `idle` (never past `absolute`), reads the user's snapshot and counts the rate limits, all in
//! one round trip; the entry's idle window is its TTL, so a read writes nothing back. Every key
//! of it carries the user's slot as a hash tag (`{slot}`, from the cookie), so the script stays
//! in one hash slot of a clustered cache (ElastiCache Serverless).
//! DynamoDB is the durable copy: on a Redis miss or outage it validates (and touches) the session
//! in one conditional write, and Redis is refilled. A session served from Redis is re-checked
//! against DynamoDB every `durable_recheck`, which bounds how long an entry that Redis kept
//! through a logout it missed can outlive that logout; DynamoDB's `lastSeenAt` is touched then.
//!
//! Redis is not trusted with identity: every entry carries an HMAC-SHA256 (key from SSM, fetched
//! once per cold start) over its fields and the token hash it is stored under. An entry that
//! fails the MAC, or claims a check or use in the future, is a miss: DynamoDB decides and the
//! entry is replaced. A logout's `revoked` tombstone always wins: every write of an entry (and
//! every removal) is one Lua script that leaves a tombstone in place.

use std::sync::LazyLock;

use anyhow::Context;
use aws_sdk_dynamodb::{Client, types::ReturnValue};
use hmac::{Hmac, Mac};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::{
    config::{Secret, SessionPolicy},
    domain::{
        ids::{UserId, hex},
        session::{ClientInfo, Session, SessionToken, user_slot},
    },
    store::{
        dynamo::{self, Item, number, string},
        rate_limit,
        redis::Redis,
        secrets::MacKey,
        users::snapshot::{self, Seen},
    },
    telemetry::metrics,
};

/// What Redis holds for an ended session: the tombstone no write may replace.
const REVOKED: &str = "revoked";

/// The sessions ended while DynamoDB was away, whose durable copies the sweep still deletes.
const PENDING_ENDS: &str = "session:pending-ends";

/// How far in the future a cached time may be (clock skew between functions) before the entry is
/// treated as forged.
const SKEW_SECS: i64 = 5;

/// Stores an entry unless the key holds the tombstone: KEYS[1], ARGV[1] value, ARGV[2] TTL (s).
const STORE_UNLESS_REVOKED: &str = r"
if redis.call('GET', KEYS[1]) == 'revoked' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
";

/// The hot path's one round trip. KEYS[1] the session entry, KEYS[2] the user's snapshot,
/// KEYS[3..] rate-limit counters; ARGV[1] the idle window (s), ARGV[2] now, ARGV[3] the counters'
/// TTL (s). A live entry's TTL slides (capped by its absolute expiry) and the counters count only
/// for a key that holds a live entry, so nobody without a token moves anyone's counters. Returns
/// the entry ('' when none), the snapshot's generation and row ('' when none), and the counts.
const HOT_READ: &str = r"
local entry = redis.call('GET', KEYS[1])
local counts = {}
if entry and entry ~= 'revoked' then
  local ok, decoded = pcall(cjson.decode, entry)
  local absolute = ok and type(decoded) == 'table' and tonumber(decoded['absoluteExpiresAt'])
  if absolute then
    local ttl = math.min(tonumber(ARGV[1]), absolute - tonumber(ARGV[2]))
    if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
  end
  for i = 3, #KEYS do
    counts[#counts + 1] = redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[3])
  end
end
local user = redis.call('HMGET', KEYS[2], 'gen', 'item')
return {entry or '', user[1] or '', user[2] or '', counts}
";

/// Removes an entry unless it is the tombstone.
const DELETE_UNLESS_REVOKED: &str = r"
if redis.call('GET', KEYS[1]) == 'revoked' then return 0 end
return redis.call('DEL', KEYS[1])
";

/// The Redis value of a live session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedSession {
    user_id: String,
    created_at: i64,
    absolute_expires_at: i64,
    /// When DynamoDB last confirmed (and touched) this session.
    checked_at: i64,
    /// When the person last gave their credentials to the IdP.
    #[serde(default)]
    authenticated_at: Option<i64>,
    /// HMAC-SHA256 (hex) over the fields above and the key the entry is stored under.
    #[serde(default)]
    mac: String,
}

impl CachedSession {
    fn mac(&self, key: &str, secret: &Secret<String>) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
        let fields = format!(
            "session-v3|{key}|{}|{}|{}|{}|{}",
            self.user_id,
            self.created_at,
            self.absolute_expires_at,
            self.checked_at,
            self.authenticated_at.map(|at| at.to_string()).unwrap_or_default()
        );
        mac.update(fields.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn sign(&mut self, key: &str, secret: &Secret<String>) {
        self.mac = hex(&self.mac(key, secret));
    }

    /// Written by us for this key, and not claiming a future check.
    fn genuine(&self, key: &str, secret: &Secret<String>, now: i64) -> bool {
        let expected = hex(&self.mac(key, secret));
        let signed = bool::from(expected.as_bytes().ct_eq(self.mac.as_bytes()));
        signed && self.checked_at <= now + SKEW_SECS
    }
}

/// A valid session, with what the same round trip read besides.
#[derive(Debug, Clone)]
pub struct Validated {
    pub session: Session,
    /// The user's snapshot as read ([`crate::store::users::snapshot`]).
    pub seen: Seen,
    /// The counters' new values, in the order asked, when Redis counted them with the read.
    pub counts: Option<Vec<u32>>,
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
        authenticated_at: Option<i64>,
        now: OffsetDateTime,
    ) -> anyhow::Result<(SessionToken, Session)> {
        let token = SessionToken::generate(user_id);
        let now = now.unix_timestamp();
        let absolute_expires_at = now + self.policy.absolute.as_secs() as i64;
        let key = token.key();

        let mut put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("sessionId", string(&key))
            .item("userId", string(user_id.as_str()))
            .item("createdAt", number(now))
            .item("lastSeenAt", number(now))
            .item("expiresAt", number(absolute_expires_at))
            .condition_expression("attribute_not_exists(sessionId)");
        if let Some(ip) = &client.ip_address {
            put = put.item("ipAddress", string(ip));
        }
        if let Some(agent) = &client.user_agent {
            put = put.item("userAgent", string(agent.chars().take(512).collect::<String>()));
        }
        if let Some(at) = authenticated_at {
            put = put.item("authTime", number(at));
        }
        put.send().await.context("storing the session")?;

        let cached = CachedSession {
            user_id: user_id.to_string(),
            created_at: now,
            absolute_expires_at,
            checked_at: now,
            authenticated_at,
            mac: String::new(),
        };
        self.cache(&redis_key(token.slot(), &key), &cached, now).await;
        let session = self.session(key, &cached, &token)?;
        Ok((token, session))
    }

    /// The session behind a token, if it is valid at `now`; refreshes its sliding window. In the
    /// same Redis round trip, reads the user's snapshot and counts `counters` (rate-limit keys in
    /// the token's slot). Errors only when neither store can answer.
    #[tracing::instrument(skip_all, err)]
    pub async fn validate(
        &self,
        token: &SessionToken,
        now: OffsetDateTime,
        counters: &[String],
    ) -> anyhow::Result<Option<Validated>> {
        let now = now.unix_timestamp();
        let key = token.key();
        let cache_key = redis_key(token.slot(), &key);

        let (mut cached, seen, counts) = match self.hot_read(&cache_key, token.slot(), counters, now).await {
            Ok(HotRead { entry: Some(Cached::Revoked), .. }) => return Ok(None),
            Ok(HotRead { entry, seen, counts }) => {
                let entry = match entry {
                    Some(Cached::Live(entry)) => Some(entry),
                    _ => {
                        metrics::count("SessionFallbacks", ("Reason", "miss"));
                        None
                    }
                };
                (entry, seen, counts)
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "redis unavailable; validating the session from DynamoDB");
                metrics::count("SessionFallbacks", ("Reason", "unavailable"));
                (None, Seen::default(), None)
            }
        };

        if let Some(entry) = &cached
            && now >= entry.absolute_expires_at
        {
            self.forget(&cache_key).await;
            return Ok(None);
        }

        let recheck_due =
            cached.as_ref().is_none_or(|entry| now - entry.checked_at >= self.policy.durable_recheck.as_secs() as i64);
        if recheck_due {
            // DynamoDB's lastSeenAt must show recent use. Redis' entry proves use within its TTL
            // (the idle window), and lastSeenAt is touched at least every re-check, so with an
            // entry the window is wider by one re-check.
            let idle = self.policy.idle.as_secs() as i64;
            let recheck = self.policy.durable_recheck.as_secs() as i64;
            let idle_cutoff = now - if cached.is_some() { idle + recheck } else { idle };
            match self.touch_durable(&key, now, idle_cutoff).await {
                Ok(Some(durable)) => {
                    self.cache(&cache_key, &durable, now).await;
                    cached = Some(durable);
                }
                Ok(None) => {
                    if cached.is_some() {
                        self.forget(&cache_key).await;
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

        let entry = cached.expect("either Redis or DynamoDB produced the session");
        let session = self.session(key, &entry, token)?;
        if user_slot(&session.user_id) != token.slot() {
            // Only a token we did not issue can get here (its slot is hashed into its key).
            return Ok(None);
        }
        Ok(Some(Validated { session, seen, counts }))
    }

    /// Ends the session in both stores. Succeeds when either store took the change: DynamoDB's
    /// delete stops every fallback, Redis' tombstone stops every hot-path read. With DynamoDB
    /// away, the delete waits in Redis (beside the tombstone) until the sweep applies it
    /// ([`Sessions::apply_pending_ends`]), so a later Redis outage cannot revive the session
    /// from its durable copy. With Redis away, an entry Redis still holds when it returns is
    /// refused at its next durable re-check (`SESSION_RECHECK_SECONDS`, 60 s).
    #[tracing::instrument(skip_all, fields(user_id = %session.user_id), err)]
    pub async fn end(&self, session: &Session, now: OffsetDateTime) -> anyhow::Result<()> {
        let durable = self.delete_durable(&session.key).await;
        let remaining = (session.absolute_expires_at - now.unix_timestamp()).max(1) as u64;
        let pending = durable.is_err();
        let cached: anyhow::Result<()> = async {
            let mut conn = self.redis.conn().await?;
            let key = redis_key(&user_slot(&session.user_id), &session.key);
            let mut pipe = redis::pipe();
            pipe.atomic().set_ex(&key, REVOKED, remaining).ignore();
            if pending {
                pipe.sadd(PENDING_ENDS, &session.key).ignore();
            }
            let () = pipe.query_async(&mut conn).await?;
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

    async fn delete_durable(&self, key: &str) -> anyhow::Result<()> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("sessionId", string(key))
            .send()
            .await
            .map(drop)
            .context("deleting the session from DynamoDB")
    }

    /// Applies the durable deletes that sign-outs could not make while DynamoDB was away (the
    /// sweep, every 15 minutes); how many.
    pub async fn apply_pending_ends(&self) -> anyhow::Result<usize> {
        let mut conn = self.redis.conn().await?;
        let pending: Vec<String> = conn.smembers(PENDING_ENDS).await.context("reading the pending sign-outs")?;
        for key in &pending {
            self.delete_durable(key).await?;
            let _: i32 = conn.srem(PENDING_ENDS, key).await.context("settling a pending sign-out")?;
        }
        Ok(pending.len())
    }

    fn session(&self, key: String, entry: &CachedSession, token: &SessionToken) -> anyhow::Result<Session> {
        Ok(Session {
            key,
            user_id: UserId::parse(entry.user_id.as_str()).context("stored session user id")?,
            created_at: entry.created_at,
            absolute_expires_at: entry.absolute_expires_at,
            authenticated_at: entry.authenticated_at,
            csrf_token: token.csrf_token(),
        })
    }

    /// The hot path's one round trip ([`HOT_READ`]). An entry that is not genuine (forged,
    /// corrupted, or from another key) is dropped and reported as a miss, so DynamoDB decides.
    async fn hot_read(&self, key: &str, slot: &str, counters: &[String], now: i64) -> anyhow::Result<HotRead> {
        let secret = self.mac_key.key().await?;
        let mut conn = self.redis.conn().await?;
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(HOT_READ));
        let mut script = SCRIPT.prepare_invoke();
        script.key(key).key(snapshot::key_in_slot(slot));
        for counter in counters {
            script.key(counter);
        }
        script.arg(self.policy.idle.as_secs()).arg(now).arg(rate_limit::COUNTER_TTL_SECS);
        let (raw, generation, row, counts): (String, String, String, Vec<u32>) =
            script.invoke_async(&mut conn).await.context("reading the session from Redis")?;
        let seen = Seen { generation, row: (!row.is_empty()).then_some(row) };
        let counted = (counts.len() == counters.len() && !counters.is_empty()).then_some(counts);
        let entry = match raw.as_str() {
            "" => None,
            REVOKED => Some(Cached::Revoked),
            json => match serde_json::from_str::<CachedSession>(json) {
                Ok(entry) if entry.genuine(key, secret, now) => Some(Cached::Live(entry)),
                Ok(_) => {
                    tracing::warn!("a session entry in Redis failed its MAC or claims a future time; asking DynamoDB");
                    self.forget(key).await;
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "unreadable session in Redis; asking DynamoDB");
                    None
                }
            },
        };
        Ok(HotRead { entry, seen, counts: counted })
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
            Ok(script.key(key).arg(value).arg(ttl).invoke_async(&mut conn).await?)
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
            Ok(redis::Script::new(DELETE_UNLESS_REVOKED).key(key).invoke_async(&mut conn).await?)
        }
        .await;
        if let Err(error) = dropped {
            tracing::warn!(error = format!("{error:#}"), "could not drop the session from Redis");
        }
    }

    /// Validates and touches the durable copy in one conditional write. None: the session does
    /// not exist, was ended, has passed its absolute limit, or was last seen before `idle_cutoff`.
    async fn touch_durable(&self, key: &str, now: i64, idle_cutoff: i64) -> anyhow::Result<Option<CachedSession>> {
        let update = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("sessionId", string(key))
            .update_expression("SET lastSeenAt = :now")
            .condition_expression("attribute_exists(sessionId) AND expiresAt > :now AND lastSeenAt > :idle_cutoff")
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":idle_cutoff", number(idle_cutoff))
            .return_values(ReturnValue::AllNew);
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

struct HotRead {
    entry: Option<Cached>,
    seen: Seen,
    counts: Option<Vec<u32>>,
}

fn durable_entry(item: &Item, now: i64) -> anyhow::Result<CachedSession> {
    Ok(CachedSession {
        user_id: dynamo::str(item, "userId")?.to_owned(),
        created_at: dynamo::num(item, "createdAt")?,
        absolute_expires_at: dynamo::num(item, "expiresAt")?,
        checked_at: now,
        authenticated_at: dynamo::opt_num(item, "authTime")?,
        mac: String::new(),
    })
}

impl Sessions {
    /// Ends every session of `user` in both stores (the account is being erased).
    pub async fn end_all(&self, user: &UserId) -> anyhow::Result<usize> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let page = dynamo::user_query(&self.dynamodb, &self.table, Some("user-index"), user)
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
        let slot = user_slot(user);
        for key in &keys {
            // The tombstone first: a Redis entry must never outlive the durable copy.
            let () = conn
                .set_ex(redis_key(&slot, key), REVOKED, tombstone_ttl)
                .await
                .context("revoking a session in Redis")?;
            self.delete_durable(key).await?;
        }
        Ok(keys.len())
    }

    /// Drops a session's Redis entry (DynamoDB's TTL removed its durable copy).
    pub async fn drop_cached(&self, user: &UserId, key: &str) -> anyhow::Result<()> {
        let mut conn = self.redis.conn().await?;
        let () = conn.del(redis_key(&user_slot(user), key)).await.context("dropping the session from Redis")?;
        Ok(())
    }
}

/// The Redis key of a session: the user's slot as its hash tag, then the token's hash.
pub fn redis_key(slot: &str, key: &str) -> String {
    format!("session:{{{slot}}}:{key}")
}
