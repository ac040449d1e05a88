//! Keeping users on the right tier. Every subscription-related event is handled the same way:
//! fetch the subscription as Stripe holds it NOW and write that, conditioned on when it was read,
//! so events applied in any order, more than once, or concurrently end in Stripe's latest state.
//! What each status grants is [`crate::domain::subscription`]'s rule; which of a user's
//! subscriptions is current (the highest live tier) is decided here.
//!
//! A customer has at most one live subscription, and nothing bills anyone who is not a user of
//! ours: a subscription that may bill (active, trialing, past due, unpaid, incomplete) is
//! cancelled at once and its payments refunded in full when its customer already holds an
//! earlier live one (the first made is kept; the customer gets an email) or when its customer
//! is no user of ours (an erased account's, or one we never made). Its owner is found through
//! our own customer mapping (the user row's `stripeCustomerId`), never through the
//! subscription's `metadata.userId` alone. The webhook and the nightly reconciliation both sync
//! through here, so both repair.
//!
//! Permanent refusals (Stripe does not know the object) are acknowledged as `ignored`: retrying
//! them can never succeed. Only temporary failures are errors.

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    clock::unix_ms,
    config::BillingSettings,
    domain::{
        ids::{Ulid, UserId},
        subscription::SubscriptionStatus,
        tiers::Tier,
        workspaces::seats,
    },
    flows::{
        billing_alerts::{Notices, amount},
        seats::bill_members,
    },
    store::{
        subscriptions::{StoredSubscription, SubscriptionRecord, Subscriptions},
        users::{SubscriptionMirror, Users},
        workspaces::{TeamSubscription, Workspace, Workspaces},
    },
    telemetry::metrics,
    upstream::{
        email::{Mailer, SubscriptionRefunded},
        stripe::{
            Stripe, StripeError,
            types::{Event, Subscription},
        },
    },
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Applied {
    /// The user now mirrors this subscription.
    /// `changed`: the user's tier, status or current subscription differs from before;
    /// `stopped`: the customer's other live subscriptions this sync cancelled and refunded.
    Synced {
        user_id: String,
        subscription_id: String,
        tier: Tier,
        status: SubscriptionStatus,
        changed: bool,
        #[serde(skip_serializing_if = "is_zero")]
        stopped: u32,
    },
    /// A state read from Stripe before the one already stored: nothing to change.
    Stale { subscription_id: String },
    /// Known, but only logged (e.g. `customer.subscription.trial_will_end`).
    Logged,
    /// Not acted on, and never worth a retry: why.
    Ignored { reason: String },
    /// A subscription that must not bill: cancelled now, its payments refunded.
    Stopped { subscription_id: String, why: Stopped, refunds: u32 },
    /// A workspace's TEAM subscription, mirrored onto the workspace: the members it may hold
    /// now, and the seats Stripe bills (set to the members when they differed).
    TeamSynced {
        workspace_id: String,
        subscription_id: String,
        status: SubscriptionStatus,
        seats: u32,
        billed_seats: u32,
    },
}

/// Why a subscription was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stopped {
    /// Its customer already held an earlier live subscription.
    Duplicate,
    /// Its customer is no user of ours.
    NoUser,
}

impl Stopped {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::NoUser => "noUser",
        }
    }
}

impl Applied {
    fn ignored(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        tracing::info!(outcome = "ignored", reason, "event not applied");
        Self::Ignored { reason }
    }

    /// One word for logs and the event's record.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Synced { .. } | Self::TeamSynced { .. } => "synced",
            Self::Stale { .. } => "stale",
            Self::Logged => "logged",
            Self::Ignored { .. } => "ignored",
            Self::Stopped { .. } => "stopped",
        }
    }
}

/// A subscription as Stripe held it at `read_at_ms`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub subscription: Subscription,
    pub read_at_ms: i64,
}

const SUBSCRIPTION_EVENTS: [&str; 7] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
];

/// What syncing a subscription reads and writes.
pub struct Billing<'a> {
    pub stripe: &'a Stripe,
    pub users: &'a Users,
    pub subscriptions: &'a Subscriptions,
    pub settings: &'a BillingSettings,
    /// The email telling a customer that a second subscription was refunded.
    pub notices: Notices<'a>,
    /// Workspaces, whose own customers pay for TEAM.
    pub workspaces: &'a Workspaces,
}

impl Billing<'_> {
    pub async fn apply_event(&self, event: &Event, now: OffsetDateTime) -> anyhow::Result<Applied> {
        if event.kind == "customer.subscription.trial_will_end" {
            tracing::info!(event_id = event.id, subscription = ?event.subscription_id(), "trial ends in three days");
            return Ok(Applied::Logged);
        }
        if !SUBSCRIPTION_EVENTS.contains(&event.kind.as_str()) {
            return Ok(Applied::ignored(format!("{} is not an event this backend acts on", event.kind)));
        }
        let Some(subscription_id) = event.subscription_id() else {
            // e.g. a one-off invoice, or a checkout session in another mode.
            return Ok(Applied::ignored("the event names no subscription"));
        };
        self.sync_subscription(subscription_id, now).await
    }

    /// Mirrors the subscription's current state onto the subscriptions table and its user.
    #[tracing::instrument(skip(self), err)]
    pub async fn sync_subscription(&self, subscription_id: &str, now: OffsetDateTime) -> anyhow::Result<Applied> {
        match self.read(subscription_id).await? {
            Some(snapshot) => self.write(&snapshot, now).await,
            None => Ok(Applied::ignored(format!("Stripe does not know subscription {subscription_id}"))),
        }
    }

    /// The subscription as Stripe holds it now; None when Stripe refuses (it does not exist, or
    /// the request can never succeed).
    pub async fn read(&self, subscription_id: &str) -> anyhow::Result<Option<Snapshot>> {
        match self.stripe.subscription(subscription_id).await {
            Ok(subscription) => Ok(Some(Snapshot { subscription, read_at_ms: unix_ms(OffsetDateTime::now_utc()) })),
            Err(StripeError::Refused(message)) => {
                tracing::warn!(subscription_id, message, "Stripe refused the subscription");
                Ok(None)
            }
            Err(error) => Err(error).context("fetching the subscription from Stripe"),
        }
    }

    /// Writes a snapshot unless a fresher one is stored, then mirrors the user's current
    /// subscription (their highest live tier) onto the user.
    pub async fn write(&self, snapshot: &Snapshot, now: OffsetDateTime) -> anyhow::Result<Applied> {
        let subscription = &snapshot.subscription;
        let Some(user_id) = self.owner(subscription).await? else {
            if let Some(workspace) = self.workspace_of(subscription).await? {
                return self.write_team(snapshot, workspace, now).await;
            }
            if subscription.status.may_bill() {
                return self.stop(subscription, Stopped::NoUser, None, now).await;
            }
            return Ok(Applied::ignored(format!("customer {} is no user of ours", subscription.customer)));
        };
        // Stripe's own list of the customer's subscriptions, so a purchase we have not heard of
        // yet counts.
        let open = match subscription.status.may_bill() {
            true => {
                Some(self.stripe.open_subscriptions(&subscription.customer).await.context("listing subscriptions")?)
            }
            false => None,
        };
        if let Some(open) = &open
            && let Some(kept) = kept(open, self.mirrored(&user_id).await?.as_deref(), &subscription.id)
            && kept != subscription.id
        {
            return self.stop(subscription, Stopped::Duplicate, Some(&user_id), now).await;
        }
        let price_tier = subscription.price_id().and_then(|price| self.settings.tier_of(price));
        if price_tier.is_none() {
            tracing::warn!(price = ?subscription.price_id(), "subscription on a price that is not configured: no tier");
        }
        let (period_start, period_end) = subscription.current_period();
        let record = SubscriptionRecord {
            subscription_id: &subscription.id,
            price_id: subscription.price_id(),
            tier: price_tier,
            status: &subscription.status,
            period_start,
            period_end,
            cancel_at_period_end: subscription.cancel_at_period_end,
        };
        if !self.subscriptions.record(&user_id, &record, snapshot.read_at_ms, now).await? {
            tracing::info!(subscription_id = subscription.id, "a fresher read is already stored");
            return Ok(Applied::Stale { subscription_id: subscription.id.clone() });
        }

        let all = self.subscriptions.for_user(&user_id).await?;
        let current = current_subscription(&all, &subscription.id)
            .with_context(|| format!("subscription {} vanished from the table", subscription.id))?;
        let tier = current.granted_tier();
        let mirror = SubscriptionMirror {
            subscription_id: &current.subscription_id,
            status: &current.status,
            tier,
            cancel_at_period_end: current.cancel_at_period_end,
            period_end: current.period_end,
            read_at_ms: all.iter().map(|s| s.read_at_ms).max().unwrap_or(snapshot.read_at_ms),
        };
        let Some(before) = self.users.mirror_subscription(&user_id, &mirror).await? else {
            return Ok(Applied::Stale { subscription_id: subscription.id.clone() });
        };
        let changed = before.tier != tier
            || before.status.as_ref() != Some(&current.status)
            || before.subscription_id.as_deref() != Some(current.subscription_id.as_str());
        if changed {
            tracing::info!(
                user_id = %user_id,
                from_tier = %before.tier,
                to_tier = %tier,
                from_status = ?before.status.as_ref().map(SubscriptionStatus::as_str),
                to_status = current.status.as_str(),
                subscription_id = current.subscription_id,
                "the user's subscription changed"
            );
        }
        if let Some(tier) = price_tier {
            self.carry_metered_price(subscription, tier).await?;
        }
        // Two first purchases synced at once may both have been kept above: whichever finishes
        // second sees what the row mirrors now, and the other one goes.
        let stopped = match &open {
            Some(open) => Box::pin(self.settle(open, &user_id, &subscription.id, now)).await?,
            None => 0,
        };
        Ok(Applied::Synced {
            user_id: user_id.to_string(),
            subscription_id: current.subscription_id.clone(),
            tier,
            status: current.status.clone(),
            changed,
            stopped,
        })
    }

    /// A live subscription to a plan with overage carries the metered price that bills it:
    /// Checkout and plan changes add it, and this adds it to one that lacks it (made before
    /// overage was offered, or changed in the billing portal).
    async fn carry_metered_price(&self, subscription: &Subscription, tier: Tier) -> anyhow::Result<()> {
        let Some(price) = self.settings.metered_price_for(tier) else { return Ok(()) };
        let live = matches!(subscription.status, SubscriptionStatus::Active | SubscriptionStatus::Trialing);
        if !live || subscription.metered_item().is_some() {
            return Ok(());
        }
        let key = format!("metered-item-{}-{price}", subscription.id);
        match self.stripe.add_metered_item(&subscription.id, price, &key).await {
            Ok(item) => {
                tracing::info!(subscription_id = subscription.id, item = item.id, "the metered price was added")
            }
            // Added meanwhile by another delivery: what was wanted.
            Err(StripeError::Refused(message)) => {
                tracing::warn!(subscription_id = subscription.id, message, "the metered price was not added")
            }
            Err(error) => return Err(error).context("adding the metered price"),
        }
        Ok(())
    }

    /// Stops every live subscription of the customer (`open`) but the one that stays; how many.
    async fn settle(
        &self,
        open: &[Subscription],
        user: &UserId,
        synced: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<u32> {
        let Some(kept) = kept(open, self.mirrored(user).await?.as_deref(), synced) else { return Ok(0) };
        let mut stopped = 0;
        for other in open.iter().filter(|s| s.status.may_bill() && s.id != kept) {
            self.stop(other, Stopped::Duplicate, Some(user), now).await?;
            stopped += 1;
        }
        Ok(stopped)
    }

    /// The user whose Stripe customer this subscription bills, by our own mapping: the user row
    /// holding that `stripeCustomerId`. The customer index answers first; the `userId` metadata
    /// set at checkout is only a hint, taken when that user's row (read strongly consistent)
    /// holds the same customer (an index that has not caught up yet). None: no user of ours.
    async fn owner(&self, subscription: &Subscription) -> anyhow::Result<Option<UserId>> {
        let customer = subscription.customer.as_str();
        if let Some(id) = self.users.by_stripe_customer(customer).await?
            && let Some(user) = self.users.get(&id).await?
            && user.stripe_customer_id.as_deref() == Some(customer)
        {
            return Ok(Some(id));
        }
        let Some(hint) = subscription.metadata.get("userId").and_then(|id| UserId::parse(id.as_str()).ok()) else {
            return Ok(None);
        };
        let user = self.users.get(&hint).await?;
        Ok(user.filter(|u| u.stripe_customer_id.as_deref() == Some(customer)).map(|_| hint))
    }

    /// The workspace whose own customer this subscription bills: the `workspaceId` on the
    /// subscription (set by its Checkout) or else on its customer, taken only when that
    /// workspace's row (read strongly consistent) holds the same customer.
    async fn workspace_of(&self, subscription: &Subscription) -> anyhow::Result<Option<Workspace>> {
        let hint = match subscription.metadata.get("workspaceId") {
            Some(id) => Some(id.clone()),
            None => match self.stripe.customer(&subscription.customer).await {
                Ok(customer) => customer.metadata.get("workspaceId").cloned(),
                Err(StripeError::Refused(_)) => None,
                Err(error) => return Err(error).context("reading the subscription's customer"),
            },
        };
        let Some(id) = hint.as_deref().and_then(Ulid::parse) else { return Ok(None) };
        let workspace = self.workspaces.get(&id).await?;
        Ok(workspace.filter(|w| w.stripe_customer_id.as_deref() == Some(subscription.customer.as_str())))
    }

    /// Mirrors a workspace's TEAM subscription onto it: one live subscription per workspace (a
    /// second is stopped and refunded, as a person's), the seats it gives, and the quantity
    /// billed set to the members when the two differ.
    async fn write_team(
        &self,
        snapshot: &Snapshot,
        workspace: Workspace,
        now: OffsetDateTime,
    ) -> anyhow::Result<Applied> {
        let subscription = &snapshot.subscription;
        if subscription.price_id().is_none() || subscription.price_id() != self.settings.team_price.as_deref() {
            tracing::warn!(support = true, price = ?subscription.price_id(), "a workspace's subscription is not on TEAM's price");
            return Ok(Applied::ignored(format!("subscription {} is not on TEAM's price", subscription.id)));
        }
        let mirrored = workspace.team.as_ref().map(|t| t.subscription_id.clone());
        if subscription.status.may_bill() {
            let open = self.stripe.open_subscriptions(&subscription.customer).await.context("listing subscriptions")?;
            if let Some(kept) = kept(&open, mirrored.as_deref(), &subscription.id)
                && kept != subscription.id
            {
                return self.stop(subscription, Stopped::Duplicate, None, now).await;
            }
        } else if workspace.team_live() && mirrored.as_deref() != Some(subscription.id.as_str()) {
            return Ok(Applied::ignored(format!("{} is over and not the workspace's TEAM", subscription.id)));
        }
        let team = TeamSubscription {
            subscription_id: subscription.id.clone(),
            status: subscription.status.clone(),
            billed_seats: subscription.plan_item().and_then(|item| item.quantity).unwrap_or(1),
            read_at_ms: snapshot.read_at_ms,
        };
        let mut workspace = workspace;
        // A seat limit changed in between: read again.
        let seats = loop {
            let seats = seats(workspace.seat_limit, team.status.grants_access());
            if self.workspaces.mirror_team(&workspace, &team, seats).await? {
                break seats;
            }
            let Some(fresh) = self.workspaces.get(&workspace.workspace_id).await? else {
                return Ok(Applied::ignored("the workspace was deleted meanwhile"));
            };
            if fresh.team.as_ref().is_some_and(|t| t.read_at_ms > team.read_at_ms) {
                return Ok(Applied::Stale { subscription_id: subscription.id.clone() });
            }
            workspace = fresh;
        };
        let billed_seats = bill_members(self.stripe, &workspace, subscription).await?.unwrap_or(team.billed_seats);
        tracing::info!(workspace_id = %workspace.workspace_id, seats, billed_seats, status = %team.status, "TEAM mirrored");
        Ok(Applied::TeamSynced {
            workspace_id: workspace.workspace_id.to_string(),
            subscription_id: subscription.id.clone(),
            status: team.status,
            seats,
            billed_seats,
        })
    }

    /// The subscription the user row mirrors now.
    async fn mirrored(&self, user: &UserId) -> anyhow::Result<Option<String>> {
        Ok(self.users.get(user).await?.and_then(|u| u.subscription.map(|s| s.subscription_id)))
    }

    /// Cancels a subscription that must not bill, refunds every payment it took, and (for a
    /// customer of ours) records the cancellation and emails them once. Each step is idempotent:
    /// cancelling what is over, refunding what was refunded (per PaymentIntent), the email
    /// claimed once per subscription.
    async fn stop(
        &self,
        subscription: &Subscription,
        why: Stopped,
        owner: Option<&UserId>,
        now: OffsetDateTime,
    ) -> anyhow::Result<Applied> {
        let id = subscription.id.as_str();
        let cancelled = self.stripe.cancel_if_live(id).await.context("cancelling the subscription")?;
        let (mut refunds, mut refunded_cents, mut currency) = (0, 0, String::new());
        for invoice in self.stripe.subscription_invoices(id).await.context("listing its invoices")? {
            if invoice.amount_paid <= 0 {
                continue;
            }
            for intent in self.stripe.invoice_payment_intents(&invoice).await.context("finding its payments")? {
                match self.stripe.refund(&intent, why.as_str(), &format!("refund-{intent}")).await {
                    Ok(_) => refunds += 1,
                    // Refunded already (a repeat after the idempotency key's 24 hours).
                    Err(StripeError::Refused(message)) => tracing::info!(intent, message, "not refunded again"),
                    Err(error) => return Err(error).context("refunding a payment"),
                }
            }
            refunded_cents += invoice.amount_paid;
            currency = invoice.currency.clone();
        }
        metrics::count("SubscriptionsStopped", ("Reason", why.as_str()));
        tracing::warn!(
            subscription_id = id,
            customer = subscription.customer,
            why = why.as_str(),
            refunds,
            refunded_cents,
            "a subscription that must not bill was cancelled and its payments refunded"
        );
        if let Some(user_id) = owner {
            Box::pin(
                self.write(&Snapshot { subscription: cancelled, read_at_ms: unix_ms(OffsetDateTime::now_utc()) }, now),
            )
            .await?;
            let user = self.users.get(user_id).await?.with_context(|| format!("user {user_id} vanished"))?;
            let data = SubscriptionRefunded {
                amount: amount(refunded_cents, &currency),
                account_url: self.settings.portal_return_url.as_str(),
            };
            let notice = format!("notice:subscription_refunded:{id}");
            let send = async |mailer: &Mailer| mailer.subscription_refunded(user.email.as_str(), &data).await;
            self.notices.once(&notice, now, send).await?;
        }
        Ok(Applied::Stopped { subscription_id: id.to_owned(), why, refunds })
    }
}

/// Of a customer's subscriptions, the live one that stays: the one the account mirrors, else the
/// first made (in the same second, the one being synced: the first heard of; then the smallest
/// id). None when none is live.
fn kept(open: &[Subscription], mirrored: Option<&str>, synced: &str) -> Option<String> {
    let mut live: Vec<&Subscription> = open.iter().filter(|s| s.status.may_bill()).collect();
    if let Some(current) = live.iter().find(|s| Some(s.id.as_str()) == mirrored) {
        return Some(current.id.clone());
    }
    live.sort_by_key(|s| (s.created, s.id != synced, s.id.clone()));
    live.first().map(|s| s.id.clone())
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Which of a user's subscriptions is current: the live one with the highest tier (several live
/// ones happen only through the Stripe dashboard; logged for support), else the one just synced.
pub fn current_subscription<'a>(all: &'a [StoredSubscription], synced: &str) -> Option<&'a StoredSubscription> {
    let mut live: Vec<&StoredSubscription> = all.iter().filter(|s| s.granted_tier() != Tier::Free).collect();
    live.sort_by_key(|s| std::cmp::Reverse(s.granted_tier()));
    if live.len() > 1 {
        let ids: Vec<&str> = live.iter().map(|s| s.subscription_id.as_str()).collect();
        tracing::warn!(support = true, subscriptions = ?ids, "a customer holds several live subscriptions; the highest tier applies");
    }
    live.first().copied().or_else(|| all.iter().find(|s| s.subscription_id == synced))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, tier: Option<Tier>, status: SubscriptionStatus) -> StoredSubscription {
        StoredSubscription {
            subscription_id: id.into(),
            tier,
            status,
            period_end: None,
            cancel_at_period_end: false,
            read_at_ms: 1,
        }
    }

    #[test]
    fn the_highest_live_tier_is_current() {
        // GIVEN a customer with a live BASIC, a live PREMIUM and an ended PREMIUM subscription
        let all = [
            row("sub_basic", Some(Tier::Basic), SubscriptionStatus::Active),
            row("sub_premium", Some(Tier::Premium), SubscriptionStatus::PastDue),
            row("sub_old", Some(Tier::Premium), SubscriptionStatus::Canceled),
        ];
        // WHEN any of them is synced THEN the live PREMIUM one is current
        for synced in ["sub_basic", "sub_premium", "sub_old"] {
            assert_eq!(current_subscription(&all, synced).unwrap().subscription_id, "sub_premium", "{synced}");
        }
    }

    fn subscription(id: &str, status: &str, created: i64) -> Subscription {
        serde_json::from_value(serde_json::json!({
            "id": id, "customer": "cus_1", "status": status, "created": created, "items": { "data": [] }
        }))
        .unwrap()
    }

    #[test]
    fn of_several_live_subscriptions_the_mirrored_else_the_first_made_stays() {
        let open = [
            subscription("sub_b", "active", 100),
            subscription("sub_a", "active", 200),
            subscription("sub_over", "incomplete_expired", 50),
        ];
        assert_eq!(kept(&open, Some("sub_a"), "sub_b").as_deref(), Some("sub_a"), "the one the account mirrors");
        assert_eq!(kept(&open, None, "sub_a").as_deref(), Some("sub_b"), "else the first made");
        assert_eq!(
            kept(&open, Some("sub_over"), "sub_a").as_deref(),
            Some("sub_b"),
            "a mirror that is over counts not"
        );
        // Made in the same second: the one being synced (the first heard of), whichever it is.
        let twins = [subscription("sub_x", "active", 100), subscription("sub_y", "trialing", 100)];
        assert_eq!(kept(&twins, None, "sub_y").as_deref(), Some("sub_y"));
        assert_eq!(kept(&twins, None, "sub_x").as_deref(), Some("sub_x"));
        assert_eq!(kept(&[subscription("sub_z", "canceled", 1)], None, "sub_z"), None);
    }

    #[test]
    fn with_nothing_live_the_synced_one_is_current() {
        let all = [
            row("sub_a", Some(Tier::Basic), SubscriptionStatus::Canceled),
            row("sub_rogue", None, SubscriptionStatus::Active),
        ];
        assert_eq!(current_subscription(&all, "sub_a").unwrap().subscription_id, "sub_a");
        assert_eq!(current_subscription(&all, "sub_rogue").unwrap().subscription_id, "sub_rogue");
        assert!(current_subscription(&all, "sub_missing").is_none());
    }
}
