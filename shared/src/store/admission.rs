//! The admission gate in front of ElevenLabs. An ElevenLabs account takes a fixed number of
//! requests at once (its plan's concurrency) and answers 429 `too_many_concurrent_requests` past
//! it, whoever sent them; Lambda fans out without bound. So every function instance asks one gate
//! per account, in Redis, before it calls: at most `concurrency` places are held at once, and the
//! requests waiting for one are let in by rank.
//!
//! A request's rank is when it arrived (the request, not its turn at the gate), brought forward by its tier's head start (PREMIUM 8 s,
//! BASIC 4 s, FREE none): within a burst PREMIUM goes first, then BASIC, then FREE, and a FREE
//! request that has waited longer than a newer one's head start goes before it, so FREE is
//! delayed, never starved. Nobody waits past what their deadline leaves for the work itself.
//!
//! Everything a dead Lambda held frees itself: a place is leased until its holder's deadline
//! (Lambda has ended the invocation by then), and a waiter that stops asking leaves the queue
//! after [`WAITER_LEASE`]. Waiting is polling, every 5 ms for a request next in line and up to
//! every 100 ms for one far back. Redis keeps three sorted sets per account under one hash tag (one
//! slot, so the script that admits touches them atomically): `held` (ticket → lease end, ms),
//! `waiting` (ticket → rank) and `alive` (ticket → when the waiter counts as gone).
//!
//! The queue holds no more requests than the places can serve before their deadlines, at one
//! [`TURN`] a place: a request beyond that is answered 503 at once rather than at its deadline
//! (unless it ranks before the last one queued), which also bounds the polling on the
//! account's one Redis slot.
//!
//! If Redis cannot answer, the request goes ahead ungated (logged and counted as
//! `AdmissionFallbacks`): the quota was reserved durably already, and a 429 from ElevenLabs is
//! retried within the deadline by the caller.

use std::{sync::LazyLock, time::Duration};

use time::OffsetDateTime;

use crate::{
    clock::{Clock, Deadline, unix_ms},
    domain::{ids::random_hex, tiers::Priority},
    error::ApiError,
    store::redis::Redis,
    telemetry::metrics,
};

/// How often a waiting request asks again: soon when it is next in line (a place freed is
/// taken within a few milliseconds), less often the further back it stands.
const NEXT_IN_LINE: Duration = Duration::from_millis(5);
const FURTHEST_BACK: Duration = Duration::from_millis(100);
/// A waiter that has not asked for this long is taken for gone (its Lambda died).
const WAITER_LEASE: Duration = Duration::from_secs(2);
/// A place outlives its holder's deadline by this much (Lambda stops the invocation at the deadline).
const PLACE_MARGIN: Duration = Duration::from_secs(1);
/// The shortest time a place is held (a short generation): the queue never holds more than the
/// places can turn over before a request's deadline at this pace.
const TURN: Duration = Duration::from_secs(1);
/// The keys go when an account's traffic stops for this long.
const IDLE_KEYS: Duration = Duration::from_secs(3600);

/// How far a tier's requests are moved up the queue.
pub fn head_start(priority: Priority) -> Duration {
    match priority {
        Priority::Standard => Duration::ZERO,
        Priority::Priority => Duration::from_secs(4),
        Priority::Fastest => Duration::from_secs(8),
    }
}

/// Where a request that arrived at `arrived_ms` stands in the queue: the lower, the sooner.
fn rank(arrived_ms: i64, priority: Priority) -> i64 {
    arrived_ms - head_start(priority).as_millis() as i64
}

fn label(priority: Priority) -> &'static str {
    match priority {
        Priority::Standard => "standard",
        Priority::Priority => "priority",
        Priority::Fastest => "fastest",
    }
}

/// Frees places whose lease ended and drops waiters gone quiet; then queues (or re-queues) this
/// ticket, and admits it if it ranks within the free places. A new ticket finding the queue
/// at `most waiting` is turned away unless it ranks before the last one queued.
/// KEYS: held, waiting, alive. ARGV: now, ticket, rank, concurrency, place lease end, waiter
/// lease end, key lifetime (ms), most waiting. Returns {1, 0} admitted, {0, how many rank
/// ahead} waiting, or {-1, how many wait} turned away.
const ENTER: &str = r"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, ticket in ipairs(gone) do
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[3], ticket)
end
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  local queued = redis.call('ZCARD', KEYS[2])
  if queued >= tonumber(ARGV[8]) then
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    if tonumber(ARGV[3]) >= tonumber(last[2]) then
      return {-1, queued}
    end
  end
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
local free = tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[1])
local ahead = redis.call('ZRANK', KEYS[2], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
if ahead < free then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2])
  return {1, 0}
end
return {0, ahead}
";

/// Every configured account's gate, by the account's name.
#[derive(Clone)]
pub struct Gates {
    /// In the configuration's order; the first is the primary account's.
    all: Vec<(String, Gate)>,
}

impl Gates {
    /// One gate per `(name, concurrency)`; nothing is fetched.
    pub fn new<'a>(redis: &Redis, clock: Clock, accounts: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let all = accounts
            .into_iter()
            .map(|(name, concurrency)| (name.to_owned(), Gate::new(redis.clone(), clock, name, concurrency)))
            .collect();
        Self { all }
    }

    /// The gate of the account called `name` (the primary's when there is no such account).
    ///
    /// # Panics
    /// When there are no gates at all (the configuration always holds the primary account).
    pub fn of(&self, name: &str) -> &Gate {
        let found = self.all.iter().find(|(n, _)| n == name).or(self.all.first());
        &found.expect("at least one ElevenLabs account").1
    }
}

/// One ElevenLabs account's gate.
#[derive(Clone)]
pub struct Gate {
    redis: Redis,
    clock: Clock,
    /// The prefix of the account's keys, `gate:{account}` (the account is their hash tag).
    tag: String,
    concurrency: u32,
}

impl Gate {
    pub fn new(redis: Redis, clock: Clock, account: &str, concurrency: u32) -> Self {
        Self { redis, clock, tag: format!("gate:{{{account}}}"), concurrency: concurrency.max(1) }
    }

    fn keys(&self) -> [String; 3] {
        ["held", "waiting", "alive"].map(|set| format!("{}:{set}", self.tag))
    }

    /// A place at ElevenLabs for a request of `priority` that arrived at `arrived`, waiting for
    /// one as long as the deadline leaves `keep` for the work after. Past that: 503 with
    /// Retry-After.
    pub async fn enter(
        &self,
        priority: Priority,
        arrived: OffsetDateTime,
        deadline: Deadline,
        keep: Duration,
    ) -> Result<Place, ApiError> {
        let ticket = random_hex::<12>();
        let rank = rank(unix_ms(arrived), priority);
        let started = tokio::time::Instant::now();
        let mut pause;
        loop {
            match self.try_enter(&ticket, rank, deadline, keep).await {
                Ok(Entry::Admitted) => {
                    let waited = started.elapsed();
                    if waited > NEXT_IN_LINE {
                        let waited_ms = waited.as_millis() as u64;
                        tracing::info!(waited_ms, priority = label(priority), "admitted to ElevenLabs after waiting");
                    }
                    return Ok(Place { held: Some((self.redis.clone(), self.keys()[0].clone())), ticket });
                }
                Ok(Entry::Waiting { ahead }) => {
                    // Every `concurrency` ahead is about one more round of places freeing.
                    let rounds = u32::try_from(ahead / u64::from(self.concurrency)).unwrap_or(u32::MAX);
                    pause = NEXT_IN_LINE.saturating_mul(rounds.saturating_add(1)).min(FURTHEST_BACK);
                    if deadline.leaving(keep) <= pause {
                        self.leave(&ticket).await;
                        metrics::count("AdmissionTimeouts", ("Priority", label(priority)));
                        return Err(self.busy(ahead));
                    }
                }
                Ok(Entry::TurnedAway { waiting }) => {
                    metrics::count("AdmissionTimeouts", ("Priority", label(priority)));
                    return Err(self.busy(waiting));
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "the admission gate is unreachable; calling ungated");
                    metrics::count("AdmissionFallbacks", ("Store", "redis"));
                    return Ok(Place { held: None, ticket });
                }
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// 503 with Retry-After, about when `ahead` requests will have had their turn.
    fn busy(&self, ahead: u64) -> ApiError {
        let retry_after_secs = 1 + ahead * TURN.as_secs() / u64::from(self.concurrency);
        ApiError::Busy { service: "ElevenLabs", retry_after_secs: retry_after_secs.min(30) }
    }

    async fn try_enter(&self, ticket: &str, rank: i64, deadline: Deadline, keep: Duration) -> anyhow::Result<Entry> {
        let now = unix_ms(self.clock.now());
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.redis.conn().await?;
        let [held, waiting, alive] = self.keys();
        // Places turn over no faster than once a [`TURN`]: more waiting than that is hopeless.
        let turns = (deadline.leaving(keep).as_millis() / TURN.as_millis()).max(1) as u64;
        // Hashed once per process, not per try (the script is sent by its SHA).
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ENTER));
        let (entry, count): (i64, u64) = SCRIPT
            .key(held)
            .key(waiting)
            .key(alive)
            .arg(now)
            .arg(ticket)
            .arg(rank)
            .arg(self.concurrency)
            .arg(now + ms(deadline.remaining() + PLACE_MARGIN))
            .arg(now + ms(WAITER_LEASE))
            .arg(ms(IDLE_KEYS))
            .arg(u64::from(self.concurrency) * turns)
            .invoke_async(&mut conn)
            .await?;
        Ok(match entry {
            1 => Entry::Admitted,
            0 => Entry::Waiting { ahead: count },
            _ => Entry::TurnedAway { waiting: count },
        })
    }

    /// Leaves the queue (a waiter giving up).
    async fn leave(&self, ticket: &str) {
        let [_, waiting, alive] = self.keys();
        let left: anyhow::Result<()> = async {
            let mut conn = self.redis.conn().await?;
            redis::pipe().zrem(waiting, ticket).zrem(alive, ticket).query_async::<()>(&mut conn).await?;
            Ok(())
        }
        .await;
        if let Err(error) = left {
            tracing::info!(
                error = format!("{error:#}"),
                "leaving the admission queue failed; the waiter's lease ends it"
            );
        }
    }

    /// Places free now less the requests waiting for one (negative with a queue): how busy the
    /// account is, for choosing among several. One round trip.
    pub async fn free_places(&self) -> anyhow::Result<i64> {
        let mut conn = self.redis.conn().await?;
        let now = unix_ms(self.clock.now());
        let [held, waiting, _] = self.keys();
        let (held, waiting): (i64, i64) =
            redis::pipe().zcount(held, now, "+inf").zcard(waiting).query_async(&mut conn).await?;
        Ok(i64::from(self.concurrency) - held - waiting)
    }

    /// How many places are held now (for tests and the benchmark).
    pub async fn held(&self) -> anyhow::Result<u64> {
        let mut conn = self.redis.conn().await?;
        let now = unix_ms(self.clock.now());
        Ok(redis::cmd("ZCOUNT").arg(&self.keys()[0]).arg(now).arg("+inf").query_async(&mut conn).await?)
    }

    /// How many requests wait now.
    pub async fn waiting(&self) -> anyhow::Result<u64> {
        let mut conn = self.redis.conn().await?;
        Ok(redis::cmd("ZCARD").arg(&self.keys()[1]).query_async(&mut conn).await?)
    }
}

enum Entry {
    Admitted,
    Waiting {
        ahead: u64,
    },
    /// The queue already holds more than can be served before this request's deadline.
    TurnedAway {
        waiting: u64,
    },
}

/// A place held at ElevenLabs until [`Place::release`]; one dropped unreleased is released in
/// the background (and its lease ends it if that never runs).
#[must_use = "a place is held until released"]
pub struct Place {
    /// The held set, or None when the gate could not be reached.
    held: Option<(Redis, String)>,
    ticket: String,
}

impl Place {
    pub async fn release(mut self) {
        if let Some((redis, held)) = self.held.take() {
            release(redis, held, std::mem::take(&mut self.ticket)).await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((redis, held)) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(release(redis, held, std::mem::take(&mut self.ticket)));
        }
    }
}

async fn release(redis: Redis, held: String, ticket: String) {
    let released: anyhow::Result<()> = async {
        let mut conn = redis.conn().await?;
        redis::cmd("ZREM").arg(held).arg(ticket).query_async::<()>(&mut conn).await?;
        Ok(())
    }
    .await;
    if let Err(error) = released {
        tracing::warn!(error = format!("{error:#}"), "releasing an ElevenLabs place failed; its lease ends it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_by_tier_and_a_long_wait_outranks_any_tier() {
        let now = 1_800_000_000_000;
        // Arriving together (within the head starts): PREMIUM, then BASIC, then FREE.
        let mut burst = [(now + 5, Priority::Standard), (now + 9, Priority::Priority), (now + 40, Priority::Fastest)]
            .map(|(at, priority)| (rank(at, priority), priority));
        burst.sort_by_key(|(rank, _)| *rank);
        assert_eq!(burst.map(|(_, p)| p), [Priority::Fastest, Priority::Priority, Priority::Standard]);
        // FREE that has waited longer than PREMIUM's head start goes before a PREMIUM arriving now:
        // delayed, never starved.
        assert!(rank(now - 8_001, Priority::Standard) < rank(now, Priority::Fastest));
        assert!(rank(now - 4_001, Priority::Standard) < rank(now, Priority::Priority));
    }
}
