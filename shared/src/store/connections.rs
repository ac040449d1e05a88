//! Open WebSocket connections and the tickets that open them.
//!
//! A ticket lives in Redis under its hash for [`TICKET_TTL_SECONDS`] and is taken exactly once
//! (GETDEL). A connection is a row of its own (PK `connectionId`) naming its person and the
//! session that opened it; the `user-index` finds a person's connections when something is
//! pushed. `expiresAt` is the table's TTL: a row whose `$disconnect` never came goes after API
//! Gateway's two-hour limit.

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    domain::{
        ids::{UserId, hex, random_token},
        push::{CONNECTION_TTL_SECONDS, TICKET_TTL_SECONDS},
        session::Session,
    },
    store::{
        dynamo::{self, Item, number, string},
        redis::Redis,
    },
};

const USER_INDEX: &str = "user-index";

/// Who a ticket opens a connection for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub user_id: UserId,
    /// The session that asked for it ([`session_tag`]), so signing out closes its connections.
    pub session: String,
}

/// One open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub user_id: UserId,
    pub session: String,
}

/// A session's short tag: its key hashed once more, so no table but the sessions' own holds the
/// key a session is found by.
pub fn session_tag(session: &Session) -> String {
    hex(&Sha256::digest(session.key.as_bytes())[..16])
}

/// A ticket's value in Redis.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Held {
    user_id: String,
    session: String,
}

fn ticket_key(ticket: &str) -> String {
    format!("push:ticket:{}", hex(&Sha256::digest(ticket.as_bytes())))
}

#[derive(Clone)]
pub struct Connections {
    redis: Redis,
    dynamodb: Client,
    table: String,
}

impl Connections {
    pub fn new(redis: Redis, dynamodb: Client, table: String) -> Self {
        Self { redis, dynamodb, table }
    }

    /// A new single-use ticket for `holder`.
    pub async fn issue_ticket(&self, holder: &Holder) -> anyhow::Result<String> {
        let ticket = random_token();
        let held = Held { user_id: holder.user_id.to_string(), session: holder.session.clone() };
        let value = serde_json::to_string(&held).expect("a ticket serializes");
        let mut redis = self.redis.conn().await?;
        let () = redis.set_ex(ticket_key(&ticket), value, TICKET_TTL_SECONDS).await.context("storing the ticket")?;
        Ok(ticket)
    }

    /// Takes a ticket: its holder the first time, None after (or once it has expired).
    pub async fn redeem_ticket(&self, ticket: &str) -> anyhow::Result<Option<Holder>> {
        let mut redis = self.redis.conn().await?;
        let held: Option<String> = redis.get_del(ticket_key(ticket)).await.context("taking the ticket")?;
        let Some(json) = held else { return Ok(None) };
        let held: Held = serde_json::from_str(&json).context("a stored ticket")?;
        let user_id = UserId::parse(held.user_id).context("a stored ticket's person")?;
        Ok(Some(Holder { user_id, session: held.session }))
    }

    pub async fn add(&self, connection: &Connection, now: i64) -> anyhow::Result<()> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item("connectionId", string(&connection.connection_id))
            .item("userId", string(connection.user_id.as_str()))
            .item("session", string(&connection.session))
            .item("connectedAt", number(now))
            .item("expiresAt", number(now + CONNECTION_TTL_SECONDS))
            .send()
            .await
            .context("storing the connection")?;
        Ok(())
    }

    /// Forgets a connection (closed, or found gone); forgetting one twice is no error.
    pub async fn remove(&self, connection_id: &str) -> anyhow::Result<()> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("connectionId", string(connection_id))
            .send()
            .await
            .context("removing the connection")?;
        Ok(())
    }

    /// The person's open connections (the index is eventually consistent: one opened a moment
    /// ago may be missing, and the client reads the state itself when it connects).
    pub async fn of_user(&self, user: &UserId, now: i64) -> anyhow::Result<Vec<Connection>> {
        let query = dynamo::user_query(&self.dynamodb, &self.table, Some(USER_INDEX), user);
        let items = dynamo::all_pages(query, "the person's connections").await?;
        let rows = items.iter().filter(|item| !expired(item, now)).map(connection);
        rows.collect()
    }
}

fn expired(item: &Item, now: i64) -> bool {
    dynamo::opt_num::<i64>(item, "expiresAt").ok().flatten().is_some_and(|at| at <= now)
}

fn connection(item: &Item) -> anyhow::Result<Connection> {
    Ok(Connection {
        connection_id: dynamo::str(item, "connectionId")?.to_owned(),
        user_id: UserId::parse(dynamo::str(item, "userId")?).context("a connection's userId")?,
        session: dynamo::str(item, "session")?.to_owned(),
    })
}
