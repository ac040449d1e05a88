//! Live updates over WebSocket: opening a connection (`$connect` with a ticket and an allowed
//! `Origin`), forgetting it (`$disconnect`), pushing an event to every connection of a person,
//! and closing a session's or a person's connections when they sign out or are erased.
//!
//! A push never fails the request that caused it: it is best effort, logged when it does not
//! arrive, and the client reads the state itself whenever it (re)connects. Connections found gone
//! (410) are forgotten on the spot.

use futures_util::future::join_all;

use crate::{
    domain::{ids::UserId, push::Event},
    store::{
        connections::{Connection, Connections, Holder},
        users::Users,
    },
    telemetry::metrics,
    upstream::push::{Gateway, Reached},
};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No `Origin`, or one that is not ours: 403.
    Origin,
    /// No ticket, an unknown, used or expired one, or a person who is gone: 401.
    Ticket,
}

impl Refused {
    /// The handshake's answer.
    pub fn status(self) -> u16 {
        match self {
            Self::Origin => 403,
            Self::Ticket => 401,
        }
    }
}

/// A WebSocket handshake, as `$connect` sees it.
pub struct Opening<'r> {
    pub connection_id: &'r str,
    pub origin: Option<&'r str>,
    pub ticket: Option<&'r str>,
}

#[derive(Clone, Copy)]
pub struct Push<'a> {
    pub connections: &'a Connections,
    pub gateway: &'a Gateway,
}

impl Push<'_> {
    /// `$connect`: the connection is kept when its origin is allowed and its ticket is good.
    pub async fn connect(
        &self,
        users: &Users,
        allowed_origins: &[String],
        opening: &Opening<'_>,
        now: i64,
    ) -> anyhow::Result<Result<Holder, Refused>> {
        if !crate::domain::push::origin_allowed(opening.origin, allowed_origins) {
            return Ok(Err(Refused::Origin));
        }
        let Some(ticket) = opening.ticket else { return Ok(Err(Refused::Ticket)) };
        let Some(holder) = self.connections.redeem_ticket(ticket).await? else { return Ok(Err(Refused::Ticket)) };
        // A ticket outlives neither its person nor the start of their erasure.
        match users.get(&holder.user_id).await? {
            Some(user) if !user.erasing => {}
            _ => return Ok(Err(Refused::Ticket)),
        }
        let connection = Connection {
            connection_id: opening.connection_id.to_owned(),
            user_id: holder.user_id.clone(),
            session: holder.session.clone(),
        };
        self.connections.add(&connection, now).await?;
        Ok(Ok(holder))
    }

    /// `$disconnect`.
    pub async fn disconnect(&self, connection_id: &str) -> anyhow::Result<()> {
        self.connections.remove(connection_id).await
    }

    /// Sends `event` to each of the person's open connections.
    pub async fn notify(&self, user: &UserId, event: &Event, now: i64) {
        let gateway = self.gateway;
        let connections = match self.connections.of_user(user, now).await {
            Ok(connections) => connections,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    event = event.name(),
                    "could not list connections to push to"
                );
                return;
            }
        };
        let sent =
            join_all(connections.iter().map(|c| async move { (c, gateway.post(&c.connection_id, event).await) }));
        for (connection, reached) in sent.await {
            self.settle(connection, reached, event.name()).await;
        }
    }

    /// Sends `event` to each of several people's open connections, all at once.
    pub async fn notify_all(&self, people: &[UserId], event: &Event, now: i64) {
        join_all(people.iter().map(|person| self.notify(person, event, now))).await;
    }

    /// Closes the connections a session opened (sign-out); best effort.
    pub async fn close_session(&self, user: &UserId, session: &str, now: i64) {
        if let Err(error) = self.close_where(user, now, |c| c.session == session).await {
            tracing::warn!(error = format!("{error:#}"), "could not close the session's connections");
        }
    }

    /// Closes all of a person's connections and forgets them (erasure): an error when one may
    /// be left, so the erasure resumes later.
    pub async fn close_all(&self, user: &UserId, now: i64) -> anyhow::Result<()> {
        self.close_where(user, now, |_| true).await
    }

    async fn close_where(&self, user: &UserId, now: i64, which: impl Fn(&Connection) -> bool) -> anyhow::Result<()> {
        let connections = self.connections.of_user(user, now).await?;
        let closing: Vec<_> = connections.iter().filter(|c| which(c)).collect();
        let closed = join_all(closing.iter().map(|c| async move { (*c, self.gateway.close(&c.connection_id).await) }));
        for (connection, reached) in closed.await {
            if let Err(error) = reached {
                tracing::warn!(error = format!("{error:#}"), "could not close a connection; forgetting it anyway");
            }
            // Closed, gone or not, the row goes: nothing is pushed to it again (its `$disconnect`
            // removes it too, and twice is no harm).
            self.connections.remove(&connection.connection_id).await?;
        }
        Ok(())
    }

    async fn settle(&self, connection: &Connection, reached: anyhow::Result<Reached>, what: &'static str) {
        match reached {
            Ok(Reached::Delivered) => metrics::count("PushesDelivered", ("Event", what)),
            Ok(Reached::Gone) => {
                if let Err(error) = self.connections.remove(&connection.connection_id).await {
                    tracing::warn!(error = format!("{error:#}"), "could not forget a gone connection");
                }
            }
            Err(error) => {
                metrics::count("PushFailures", ("Event", what));
                tracing::warn!(error = format!("{error:#}"), event = what, "a push did not arrive");
            }
        }
    }
}
