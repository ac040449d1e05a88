//! Rate limits in Redis: a counter per subject (a user, or an IP address) and scope per fixed
//! one-minute window.

use crate::{
    domain::tiers::Uncounted,
    error::ApiError,
    store::{redis::Redis, webhook_events::WebhookEvents},
};

const WINDOW_SECS: i64 = 60;
/// How long a window's counter is kept.
pub const COUNTER_TTL_SECS: i64 = WINDOW_SECS * 2;

pub fn key(scope: &str, subject: &str, now_unix: i64) -> String {
    format!("rate:{scope}:{subject}:{}", now_unix / WINDOW_SECS)
}

/// A user's counter: the subject is the user's slot as a hash tag, so every counter of the user
/// sits in the slot of the user's session and snapshot (one script can count them all).
pub fn user_key(scope: &str, slot: &str, now_unix: i64) -> String {
    key(scope, &format!("{{{slot}}}"), now_unix)
}

/// The per-minute limits that `counts` (the new values of the counters, in the same order)
/// went past; RATE_LIMITED with the seconds to the next window if any.
pub fn judge(counts: &[u32], limits: &[(&str, u32)], now_unix: i64) -> Result<(), ApiError> {
    let exceeded: Vec<&str> = counts
        .iter()
        .zip(limits)
        .filter(|(count, (_, per_minute))| *count > per_minute)
        .map(|(_, (scope, _))| *scope)
        .collect();
    if exceeded.is_empty() {
        return Ok(());
    }
    for scope in exceeded {
        crate::telemetry::metrics::count("RateLimitDenials", ("Scope", scope_name(scope)));
    }
    let retry_after_secs = (WINDOW_SECS - now_unix.rem_euclid(WINDOW_SECS)).max(1) as u64;
    Err(ApiError::RateLimited { retry_after_secs })
}

/// One limit to count: its scope, its size per minute, and what it does if Redis cannot count.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    pub scope: &'a str,
    pub per_minute: u32,
    pub uncounted: Uncounted,
}

/// Counts this request against every limit at once (one round trip); RATE_LIMITED (with the
/// seconds to the next window) past any of them. If Redis cannot count, each limit does what it
/// says ([`Uncounted`]): an open one lets the request through, a durable one counts in DynamoDB
/// instead (`durable`), a closed one refuses it (503).
pub async fn check(
    redis: &Redis,
    durable: &WebhookEvents,
    subject: &str,
    limits: &[Counted<'_>],
    now_unix: i64,
) -> Result<(), ApiError> {
    let counted: anyhow::Result<Vec<u32>> = async {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for limit in limits {
            let key = key(limit.scope, subject, now_unix);
            pipe.incr(&key, 1).expire(&key, COUNTER_TTL_SECS).ignore();
        }
        let mut conn = redis.conn().await?;
        Ok(pipe.query_async(&mut conn).await?)
    }
    .await;
    let sized: Vec<(&str, u32)> = limits.iter().map(|l| (l.scope, l.per_minute)).collect();
    let error = match counted {
        Ok(counts) => return judge(&counts, &sized, now_unix),
        Err(error) => error,
    };
    let mut counts = Vec::with_capacity(limits.len());
    for limit in limits {
        counts.push(match limit.uncounted {
            Uncounted::Open => 0,
            Uncounted::Closed => {
                return Err(ApiError::Upstream {
                    service: "rate limiter",
                    temporary: true,
                    source: error.context(format!("counting {}", limit.scope)),
                });
            }
            Uncounted::Durable => {
                let window_end = (now_unix.div_euclid(WINDOW_SECS) + 1) * WINDOW_SECS;
                let counter = key(limit.scope, subject, now_unix);
                durable.count(&counter, window_end + COUNTER_TTL_SECS).await.map_err(|source| ApiError::Upstream {
                    service: "rate limiter",
                    temporary: true,
                    source: source.context(format!("counting {} durably", limit.scope)),
                })?
            }
        });
    }
    tracing::warn!(
        error = format!("{error:#}"),
        "Redis could not count: open limits let through, money limits counted in DynamoDB"
    );
    crate::telemetry::metrics::count("RateLimiterFallbacks", ("Store", "redis"));
    judge(&counts, &sized, now_unix)
}

/// The metric's scope: per-IP scopes carry their route (`ip:GET /auth/login`); the rest are names.
fn scope_name(scope: &str) -> &str {
    if scope.starts_with("ip:") { "ip" } else { scope }
}
