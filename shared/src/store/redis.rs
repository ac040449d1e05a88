//! The Redis (ElastiCache) connection: the hot copy of sessions, login attempts and rate-limit
//! counters.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Secret;

/// A lazily connected, self-reconnecting Redis connection with short timeouts, so that a Redis
/// outage costs a request at most a fraction of a second before it falls back to DynamoDB.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
}

const TIMEOUT: Duration = Duration::from_millis(500);

impl Redis {
    /// Does not touch the network: a cold start succeeds while Redis is down. `rediss://` is TLS.
    pub fn connect_lazy(url: &Secret<String>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose().as_str()).context("REDIS_URL is not a usable Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client, config).context("creating the Redis connection")?;
        Ok(Self { conn })
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
