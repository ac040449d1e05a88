//! Rate limits in Redis: a counter per subject (a user, or an IP address) and scope per fixed
//! one-minute window.

use crate::{error::ApiError, store::redis::Redis};

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

/// Counts this request against every `(scope, per_minute)` at once (one round trip);
/// RATE_LIMITED (with the seconds to the next window) past any of them. If Redis is unreachable
/// the request is let through: the monthly quotas still bound what it can cost.
pub async fn check(redis: &Redis, subject: &str, limits: &[(&str, u32)], now_unix: i64) -> Result<(), ApiError> {
    let counted: anyhow::Result<Vec<u32>> = async {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (scope, _) in limits {
            let key = key(scope, subject, now_unix);
            pipe.incr(&key, 1).expire(&key, COUNTER_TTL_SECS).ignore();
        }
        let mut conn = redis.conn().await?;
        Ok(pipe.query_async(&mut conn).await?)
    }
    .await;
    match counted {
        Ok(counts) => judge(&counts, limits, now_unix),
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "rate limiter unavailable; letting the request through");
            Ok(())
        }
    }
}

/// The metric's scope: per-IP scopes carry their route (`ip:GET /auth/login`); the rest are names.
fn scope_name(scope: &str) -> &str {
    if scope.starts_with("ip:") { "ip" } else { scope }
}
