//! Login attempts in progress: state, nonce, PKCE verifier and returnTo, kept in Redis under the
//! state's hash for ten minutes and taken exactly once.

use anyhow::Context;
use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::redis::Redis;

/// How long a login may take between /auth/login and /auth/callback.
pub const LOGIN_TTL_SECS: u64 = 600;

#[derive(Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    /// Asked the IdP for the credentials again (`prompt=login`, `max_age=0`), since `started_at`
    /// (unix seconds): the ID token's `auth_time` must show it did.
    #[serde(default)]
    pub reauthenticate: bool,
    #[serde(default)]
    pub started_at: i64,
}

#[derive(Clone)]
pub struct LoginAttempts {
    redis: Redis,
}

fn key(state: &str) -> String {
    format!("login:{}", BASE64_URL_SAFE_NO_PAD.encode(Sha256::digest(state.as_bytes())))
}

impl LoginAttempts {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    pub async fn begin(&self, state: &str, pending: &PendingLogin) -> anyhow::Result<()> {
        let value = serde_json::to_string(pending).expect("pending logins serialize");
        let mut redis = self.redis.conn().await?;
        let () = redis.set_ex(key(state), value, LOGIN_TTL_SECS).await.context("storing the login attempt")?;
        Ok(())
    }

    /// Takes the attempt for `state` (GETDEL: a second take finds nothing).
    pub async fn take(&self, state: &str) -> anyhow::Result<Option<PendingLogin>> {
        let mut redis = self.redis.conn().await?;
        let pending: Option<String> = redis.get_del(key(state)).await.context("taking the login state")?;
        pending.map(|json| serde_json::from_str(&json).context("stored login state")).transpose()
    }
}
