//! The Redis (ElastiCache) connection: the hot copy of sessions, login attempts and rate-limit
//! counters.
//!
//! In AWS the cache requires authentication (an ElastiCache RBAC user whose password lives in
//! Secrets Manager) and TLS; locally redis-server runs with the same kind of ACL user. The
//! password is fetched on first use, not at cold start, so a cold start never waits on it.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::{
    config::Secret,
    store::secrets::{self, Wanted},
};

/// Where the cache's password comes from: an SSM parameter (in AWS, the Secrets Manager
/// reference path, whose value is the secret's JSON with a `password` field).
#[derive(Clone)]
pub struct RedisAuth {
    pub username: String,
    pub ssm: aws_sdk_ssm::Client,
    pub password_parameter: String,
}

/// A lazily connected, self-reconnecting Redis connection with short timeouts, so that a Redis
/// outage costs a request at most a fraction of a second before it falls back to DynamoDB.
#[derive(Clone)]
pub struct Redis {
    url: Secret<String>,
    auth: Option<RedisAuth>,
    conn: Arc<OnceCell<ConnectionManager>>,
}

const TIMEOUT: Duration = Duration::from_millis(500);

impl Redis {
    /// Does not touch the network: a cold start succeeds while Redis is down. `rediss://` is TLS.
    pub fn connect_lazy(url: &Secret<String>, auth: Option<RedisAuth>) -> anyhow::Result<Self> {
        redis::Client::open(url.expose().as_str()).context("REDIS_URL is not a usable Redis URL")?;
        Ok(Self { url: url.clone(), auth, conn: Arc::new(OnceCell::new()) })
    }

    /// Whether the cache answers, without signing in to it (the health check reads no secret):
    /// a PING answered, or refused for want of authentication, proves it up.
    pub async fn reachable(&self) -> anyhow::Result<()> {
        let mut info: redis::ConnectionInfo =
            self.url.expose().as_str().parse().context("REDIS_URL is not a usable Redis URL")?;
        let anonymous =
            redis::RedisConnectionInfo::default().set_db(info.redis_settings().db()).set_skip_set_lib_name();
        info = info.set_redis_settings(anonymous);
        let client = redis::Client::open(info).context("the Redis connection settings")?;
        let mut conn = tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .context("connecting to Redis timed out")?
            .context("connecting to Redis")?;
        match tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn)).await {
            Err(_) => anyhow::bail!("Redis did not answer PING in time"),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error))
                if error.kind() == redis::ErrorKind::AuthenticationFailed || error.code() == Some("NOAUTH") =>
            {
                Ok(())
            }
            Ok(Err(error)) => Err(anyhow::Error::new(error).context("PING")),
        }
    }

    /// One round trip (PING).
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.context("PING")?;
        Ok(())
    }

    /// The shared connection (made on first use, reconnecting by itself after that).
    pub async fn conn(&self) -> anyhow::Result<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let mut info: redis::ConnectionInfo =
                    self.url.expose().as_str().parse().context("REDIS_URL is not a usable Redis URL")?;
                if let Some(auth) = &self.auth {
                    let parameter = Some(auth.password_parameter.as_str());
                    let [secret] =
                        secrets::fetch(&auth.ssm, [Wanted { variable: "REDIS_PASSWORD_PARAM", parameter }]).await?;
                    let redis = info
                        .redis_settings()
                        .clone()
                        .set_username(&auth.username)
                        .set_password(password_of(secret.expose()));
                    info = info.set_redis_settings(redis);
                }
                let client = redis::Client::open(info).context("the Redis connection settings")?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(100));
                ConnectionManager::new_lazy_with_config(client, config).context("creating the Redis connection")
            })
            .await?;
        Ok(conn.clone())
    }
}

/// The password in a parameter's value: the value itself, or the `password` field of a Secrets
/// Manager secret's JSON.
fn password_of(value: &str) -> String {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|v| v.get("password").and_then(|p| p.as_str()).map(String::from))
        .unwrap_or_else(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::password_of;

    #[test]
    fn a_password_is_plain_or_the_field_of_a_secrets_manager_secret() {
        assert_eq!(password_of("s3cret"), "s3cret");
        assert_eq!(password_of(r#"{"username":"voice-app","password":"p4ss"}"#), "p4ss");
        assert_eq!(password_of(r#"{"other":1}"#), r#"{"other":1}"#);
    }
}
