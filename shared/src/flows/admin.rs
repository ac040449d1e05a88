//! The admin area's use cases. Every action is written to the audit log BEFORE it is carried out
//! (who, what, whom, when, why, in which request), so nothing an admin does goes unrecorded; a
//! failed audit write stops the action. Permissions are checked by the router (one table in
//! `domain::roles`); these functions assume the caller was allowed.

use serde::Serialize;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    config::BillingSettings,
    domain::{
        ids::{Email, Ulid, UserId},
        plans::monthly_revenue_cents,
        roles::Role,
        subscription::SubscriptionStatus,
        tiers::Tier,
        usage::{Usage, UsagePeriod},
        user::{Allowances, BillingAlert, SubscriptionSummary, Suspension, User},
    },
    error::ApiError,
    flows::push::Push,
    store::{
        audit::{AuditEntry, AuditLog},
        sessions::Sessions,
        subscriptions::Subscriptions,
        users::{UserTally, Users},
    },
};

/// The most recordings one top-up may add.
pub const MAX_GRANT: u32 = 1_000;

/// What an admin sees of an account: never secrets, tokens or audio.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    pub user_id: UserId,
    pub email: Email,
    pub name: Option<String>,
    pub role: Role,
    pub tier: Tier,
    pub subscription_status: Option<SubscriptionStatus>,
    pub subscription: Option<SubscriptionSummary>,
    pub stripe_customer_id: Option<String>,
    pub billing_alert: Option<BillingAlert>,
    pub usage: Usage,
    pub allowances: Allowances,
    pub voice_clones: u32,
    pub suspension: Option<Suspension>,
    pub created_at: String,
    pub last_login: Option<String>,
}

impl AccountSummary {
    fn of(user: User, now: OffsetDateTime) -> Self {
        Self {
            usage: user.usage(now),
            allowances: user.allowances(now),
            user_id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            tier: user.tier,
            subscription_status: user.subscription_status,
            subscription: user.subscription,
            stripe_customer_id: user.stripe_customer_id,
            billing_alert: user.billing_alert,
            voice_clones: user.voice_clones,
            suspension: user.suspension,
            created_at: user.created_at,
            last_login: user.last_login,
        }
    }
}

/// `GET /admin/stats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    #[serde(flatten)]
    pub users: UserTally,
    /// From the configured prices of live subscriptions, in cents.
    pub mrr_cents: u64,
    /// Live subscriptions on prices not in the configuration (counted in no revenue).
    pub unpriced_subscriptions: u64,
    pub period: String,
}

/// Who is acting, in which request.
pub struct Actor<'a> {
    pub user: &'a User,
    pub request_id: &'a str,
}

/// How to find users: by email or by id.
pub enum Lookup {
    Email(Email),
    Id(UserId),
}

pub struct Admin<'a> {
    pub users: &'a Users,
    pub sessions: &'a Sessions,
    pub subscriptions: &'a Subscriptions,
    pub audit: &'a AuditLog,
    pub billing: &'a BillingSettings,
    /// Live updates: a suspended person's open pages are disconnected with their sessions.
    pub push: Option<Push<'a>>,
}

/// A reason an admin gives for an action: 3 to 500 characters.
pub fn reason(raw: &str) -> Result<String, ApiError> {
    crate::domain::text::printable("reason", raw, 3, 500)
}

impl Admin<'_> {
    async fn record(
        &self,
        actor: &Actor<'_>,
        action: &str,
        target: Option<&UserId>,
        reason: Option<&str>,
        detail: Value,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let entry = AuditEntry {
            audit_id: Ulid::generate(now),
            at: now.format(&Rfc3339).map_err(anyhow::Error::new)?,
            actor_id: actor.user.id.to_string(),
            actor_role: actor.user.role.to_string(),
            action: action.to_owned(),
            target_user_id: target.map(UserId::to_string),
            reason: reason.map(String::from),
            request_id: actor.request_id.to_owned(),
            detail,
        };
        self.audit.append(&entry).await?;
        tracing::info!(action, actor = %actor.user.id, target = ?entry.target_user_id, "admin action");
        Ok(())
    }

    pub async fn lookup(
        &self,
        actor: &Actor<'_>,
        by: Lookup,
        now: OffsetDateTime,
    ) -> Result<Vec<AccountSummary>, ApiError> {
        let (detail, ids) = match by {
            Lookup::Email(email) => (json!({ "email": email.as_str() }), self.users.by_email(&email).await?),
            Lookup::Id(id) => (json!({ "userId": id.as_str() }), vec![id]),
        };
        self.record(actor, "lookup", None, None, detail, now).await?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.users.get(&id).await? {
                found.push(AccountSummary::of(user, now));
            }
        }
        Ok(found)
    }

    pub async fn account(
        &self,
        actor: &Actor<'_>,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<AccountSummary, ApiError> {
        self.record(actor, "view", Some(id), None, Value::Null, now).await?;
        let user = self.users.get(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
        Ok(AccountSummary::of(user, now))
    }

    /// Suspends the account and ends all its sessions at once; API keys stop working because
    /// every keyed request reads the (now suspended) user row.
    pub async fn suspend(
        &self,
        actor: &Actor<'_>,
        id: &UserId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<AccountSummary, ApiError> {
        if *id == actor.user.id {
            return Err(ApiError::Conflict("you cannot suspend your own account".into()));
        }
        self.record(actor, "suspend", Some(id), Some(reason), Value::Null, now).await?;
        let suspension = Suspension {
            since: now.format(&Rfc3339).map_err(anyhow::Error::new)?,
            reason: reason.to_owned(),
            by: actor.user.id.to_string(),
        };
        let user = self.users.suspend(id, &suspension).await?.ok_or_else(|| ApiError::not_found("user"))?;
        let ended = self.sessions.end_all(id).await?;
        if let Some(push) = &self.push
            && let Err(error) = push.close_all(id, now.unix_timestamp()).await
        {
            tracing::warn!(error = format!("{error:#}"), "could not close the suspended person's connections");
        }
        tracing::info!(target = %id, sessions = ended, "account suspended");
        Ok(AccountSummary::of(user, now))
    }

    pub async fn unsuspend(
        &self,
        actor: &Actor<'_>,
        id: &UserId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<AccountSummary, ApiError> {
        self.record(actor, "unsuspend", Some(id), Some(reason), Value::Null, now).await?;
        let user = self.users.unsuspend(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
        Ok(AccountSummary::of(user, now))
    }

    /// Adds `recordings` to this month's limit (a one-off top-up for a support case).
    pub async fn grant_usage(
        &self,
        actor: &Actor<'_>,
        id: &UserId,
        recordings: u32,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<AccountSummary, ApiError> {
        if !(1..=MAX_GRANT).contains(&recordings) {
            return Err(ApiError::validation("recordings", format!("must be a whole number from 1 to {MAX_GRANT}")));
        }
        let period = UsagePeriod::containing(now);
        let detail = json!({ "recordings": recordings, "period": period.to_string() });
        self.record(actor, "grant-usage", Some(id), Some(reason), detail, now).await?;
        let user =
            self.users.grant_recordings(id, period, recordings).await?.ok_or_else(|| ApiError::not_found("user"))?;
        Ok(AccountSummary::of(user, now))
    }

    pub async fn stats(&self, actor: &Actor<'_>, now: OffsetDateTime) -> Result<Stats, ApiError> {
        self.record(actor, "stats", None, None, Value::Null, now).await?;
        let period = UsagePeriod::containing(now);
        let (users, prices) = tokio::try_join!(self.users.tally(period), self.subscriptions.live_prices())?;
        let (mrr_cents, unpriced_subscriptions) =
            monthly_revenue_cents(self.billing, prices.iter().map(String::as_str));
        Ok(Stats { users, mrr_cents, unpriced_subscriptions, period: period.to_string() })
    }
}

/// The operator's role grant (`make admin-grant`; never reachable through the API): sets `role`
/// on the account(s) signed in with `email`, audited with the operator as the actor. The ids
/// changed; an error when nobody signed in with that address yet.
pub async fn grant_role(
    users: &Users,
    audit: &AuditLog,
    email: &Email,
    role: Role,
    operator: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<UserId>> {
    let ids = users.by_email(email).await?;
    anyhow::ensure!(!ids.is_empty(), "nobody has signed in with {} yet: sign in once, then grant", email.as_str());
    for id in &ids {
        audit
            .append(&AuditEntry {
                audit_id: Ulid::generate(now),
                at: now.format(&Rfc3339)?,
                actor_id: format!("operator:{operator}"),
                actor_role: "operator".into(),
                action: "role-grant".into(),
                target_user_id: Some(id.to_string()),
                reason: None,
                request_id: "operator".into(),
                detail: json!({ "role": role }),
            })
            .await?;
        anyhow::ensure!(users.set_role(id, role).await?, "user {id} disappeared");
    }
    Ok(ids)
}
