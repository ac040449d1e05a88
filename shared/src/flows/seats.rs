//! TEAM: a workspace's seats, billed per member to the workspace's own Stripe customer (never a
//! member's personal one).
//!
//! The OWNER sets a seat limit, the most seats they agree to pay for, and subscribes through
//! Checkout at one seat per member. From then on the subscription's quantity follows the member
//! count, prorated, and nobody joins past the limit: the accept transaction itself checks
//! `members < seats`. Without a live TEAM a workspace holds the free seats.
//!
//! A quantity update after a join or a departure is best effort; the billing sync
//! (`flows::billing`) mirrors the subscription onto the workspace and sets the quantity to the
//! member count whenever the two differ, so a failed update, or two joins racing, converge at
//! the next webhook or the nightly reconciliation.

use anyhow::Context;
use serde_json::json;
use time::OffsetDateTime;

use crate::{
    config::BillingSettings,
    domain::workspaces::{SeatLimit, WorkspaceId, WorkspaceRole, seats},
    error::ApiError,
    flows::{
        checkout::open_session,
        workspaces::{Actor, record},
    },
    store::{
        audit::AuditLog,
        workspaces::{Member, Workspace, Workspaces},
    },
    upstream::stripe::{Stripe, client::Purchase, types::Subscription},
};

pub struct Seats<'a> {
    pub stripe: &'a Stripe,
    pub workspaces: &'a Workspaces,
    pub settings: &'a BillingSettings,
    pub audit: &'a AuditLog,
}

fn gone() -> ApiError {
    ApiError::not_found("workspace")
}

impl Seats<'_> {
    async fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, ApiError> {
        self.workspaces.get(id).await?.ok_or_else(gone)
    }

    /// A Checkout Session for TEAM at one seat per member now, with `limit` as the seat limit;
    /// its URL. `caller` may manage the workspace's billing.
    pub async fn checkout(
        &self,
        actor: Actor<'_>,
        caller: &Member,
        limit: &SeatLimit,
        now: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let price = self.settings.team_price.as_deref().ok_or_else(|| {
            ApiError::locked(
                "TEAM is not sold here (no per-seat price is configured); workspaces keep their free seats",
            )
        })?;
        let workspace = self.set_limit(actor, caller, limit, now).await?;
        let customer = self.customer(&workspace, actor.user.email.as_str()).await?;
        let live_in_stripe = self.stripe.open_subscriptions(&customer).await?.iter().any(|s| s.status.may_bill());
        if workspace.team_live() || live_in_stripe {
            return Err(ApiError::Conflict(
                "the workspace has TEAM already: change its seat limit with PATCH /workspaces/{id}/seats".into(),
            ));
        }
        let id = workspace.workspace_id.as_str();
        // Back to the workspace's page, which waits for TEAM to arrive (`?team=subscribed`).
        let mut back = self.settings.checkout_success_url.join("/teams").map_err(anyhow::Error::new)?;
        let cancel_url = back.to_string();
        back.set_query(Some("team=subscribed"));
        let purchase = Purchase {
            price,
            quantity: workspace.members,
            metered_price: None,
            owner: ("workspaceId", id),
            tier: "TEAM",
            success_url: back.as_str(),
            cancel_url: &cancel_url,
        };
        let url = open_session(self.stripe, &customer, &purchase, now).await?;
        let detail = json!({ "workspaceId": id, "seats": workspace.members, "seatLimit": workspace.seat_limit });
        record(self.audit, actor, Some(caller), "workspace-checkout", None, detail, now).await?;
        Ok(url)
    }

    /// The workspace's own Stripe customer, made on first need (its email: the OWNER who pays).
    async fn customer(&self, workspace: &Workspace, email: &str) -> Result<String, ApiError> {
        if let Some(customer) = &workspace.stripe_customer_id {
            return Ok(customer.clone());
        }
        let id = workspace.workspace_id.as_str();
        let made = self.stripe.create_customer(("workspaceId", id), email, &format!("customer-workspace-{id}")).await?;
        Ok(self.workspaces.set_stripe_customer(&workspace.workspace_id, &made.id).await?)
    }

    /// Sets the seat limit (never below the members); with TEAM live it is the seats at once.
    pub async fn set_limit(
        &self,
        actor: Actor<'_>,
        caller: &Member,
        asked: &SeatLimit,
        now: OffsetDateTime,
    ) -> Result<Workspace, ApiError> {
        // A join or a subscription change in between: read again (three tries).
        for _ in 0..3 {
            let workspace = self.workspace(&caller.workspace_id).await?;
            let limit = asked.check(workspace.members)?;
            if limit == workspace.seat_limit {
                return Ok(workspace);
            }
            let seats = seats(limit, workspace.team_live());
            if self.workspaces.set_seat_limit(&workspace, limit, seats).await? {
                let detail =
                    json!({ "workspaceId": workspace.workspace_id, "from": workspace.seat_limit, "to": limit });
                record(self.audit, actor, Some(caller), "workspace-seat-limit", None, detail, now).await?;
                return Ok(Workspace { seat_limit: limit, seats, ..workspace });
            }
        }
        Err(ApiError::Conflict("the workspace changed meanwhile; read it again and retry".into()))
    }

    /// Bills one seat per member now, when TEAM is live (after a join or a departure;
    /// `workspace` as read after it). Errors are logged: the membership change stands, and the
    /// billing sync corrects the quantity.
    pub async fn follow_members(&self, workspace: &Workspace) {
        let Some(team) = workspace.team.as_ref().filter(|_| workspace.team_live()) else { return };
        let followed = async {
            let subscription = self.stripe.subscription(&team.subscription_id).await?;
            bill_members(self.stripe, workspace, &subscription).await
        };
        let id = &workspace.workspace_id;
        match followed.await {
            Ok(Some(quantity)) => tracing::info!(workspace_id = %id, quantity, "TEAM now bills the members"),
            Ok(None) => {}
            Err(error) => tracing::warn!(
                workspace_id = %id,
                error = format!("{error:#}"),
                "the seats billed could not follow the members now; the billing sync will"
            ),
        }
    }

    /// Before a workspace is deleted: see [`end_billing`].
    pub async fn end(&self, workspace: &WorkspaceId) -> Result<u32, ApiError> {
        Ok(end_billing(self.stripe, self.workspaces, workspace).await?)
    }
}

/// Before a workspace is deleted (by its OWNER, or with its only member's erasure): its
/// customer's open Checkout Sessions can no longer be paid, its live subscriptions end now, and
/// the customer is deleted. How many subscriptions ended.
pub async fn end_billing(stripe: &Stripe, workspaces: &Workspaces, workspace: &WorkspaceId) -> anyhow::Result<u32> {
    let Some(customer) = workspaces.get(workspace).await?.and_then(|w| w.stripe_customer_id) else {
        return Ok(0);
    };
    for session in stripe.open_checkout_sessions(&customer).await? {
        stripe.expire_checkout_session(&session.id).await?;
    }
    let mut ended = 0;
    for subscription in stripe.open_subscriptions(&customer).await? {
        if subscription.status.may_bill() {
            stripe.cancel_if_live(&subscription.id).await?;
            ended += 1;
        }
    }
    stripe.delete_customer(&customer).await?;
    Ok(ended)
}

/// The workspace's customer has an OWNER's email as its billing contact: when its email is no
/// OWNER's any more (ownership moved, the contact left or was erased), the longest-standing
/// OWNER's. Nothing when the workspace has no customer.
pub async fn keep_billing_contact(
    stripe: &Stripe,
    workspaces: &Workspaces,
    workspace: &Workspace,
) -> anyhow::Result<()> {
    let Some(customer) = &workspace.stripe_customer_id else { return Ok(()) };
    let workspace = &workspace.workspace_id;
    let mut owners: Vec<_> =
        workspaces.members(workspace).await?.into_iter().filter(|m| m.role == WorkspaceRole::Owner).collect();
    owners.sort_by(|a, b| a.joined_at.cmp(&b.joined_at));
    let contact = stripe.customer(customer).await.context("reading the workspace's customer")?.email;
    let is_owner = |email: &str| owners.iter().any(|o| o.email.eq_ignore_ascii_case(email));
    if contact.as_deref().is_some_and(is_owner) {
        return Ok(());
    }
    if let Some(owner) = owners.first() {
        stripe.set_customer_email(customer, &owner.email).await.context("setting the billing contact")?;
        tracing::info!(workspace_id = %workspace, "the billing contact is now an OWNER of the workspace");
    }
    Ok(())
}

/// Sets a live TEAM subscription's quantity to the workspace's members when they differ (at
/// least one seat); the quantity set, or None when it was right.
pub(crate) async fn bill_members(
    stripe: &Stripe,
    workspace: &Workspace,
    subscription: &Subscription,
) -> anyhow::Result<Option<u32>> {
    let live = subscription.status.grants_access();
    let item = subscription.plan_item().context("a TEAM subscription without its seat item")?;
    let members = workspace.members.max(1);
    if !live || item.quantity == Some(members) {
        return Ok(None);
    }
    stripe.set_quantity(&subscription.id, &item.id, members).await.context("setting the seats billed")?;
    Ok(Some(members))
}
