//! Per-user rate limits in Redis: a counter per fixed one-minute window.

use crate::{error::ApiError, store::redis::Redis};

const WINDOW_SECS: i64 = 60;

pub fn key(scope: &str, user_id: &str, now_unix: i64) -> String {
    format!("rate:{scope}:{user_id}:{}", now_unix / WINDOW_SECS)
}

/// Counts this request; RATE_LIMITED (with the seconds to the next window) past `per_minute`.
/// If Redis is unreachable the request is let through: the monthly quota still bounds usage.
pub async fn check(redis: &Redis, scope: &str, user_id: &str, per_minute: u32, now_unix: i64) -> Result<(), ApiError> {
    let key = key(scope, user_id, now_unix);
    let counted: anyhow::Result<(u32, ())> = async {
        let mut conn = redis.conn().await?;
        Ok(redis::pipe().atomic().incr(&key, 1).expire(&key, WINDOW_SECS * 2).query_async(&mut conn).await?)
    }
    .await;
    match counted {
        Ok((count, ())) if count > per_minute => {
            let retry_after_secs = (WINDOW_SECS - now_unix.rem_euclid(WINDOW_SECS)).max(1) as u64;
            Err(ApiError::RateLimited { retry_after_secs })
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "rate limiter unavailable; letting the request through");
            Ok(())
        }
    }
}
