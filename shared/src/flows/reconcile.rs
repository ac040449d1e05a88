//! Nightly reconciliation: re-syncs from Stripe every subscription a user of ours may hold, so a
//! webhook that never arrived (or arrived while we were down past Stripe's retries) is repaired
//! within a day.
//!
//! Two sources, deduplicated: every user with a subscription id or a paid tier (their current
//! subscription, or for a paid tier without one, the customer's open subscriptions), and every
//! subscription Stripe holds that is not over (catching a purchase whose events were all lost).
//! Each sync is the webhook's own (freshest read wins), so running twice, or alongside webhooks,
//! changes nothing more. A paid tier with nothing in Stripe behind it is logged for support and
//! left alone (complimentary grants are made that way).

use std::collections::BTreeSet;

use futures_util::{StreamExt, stream};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    domain::tiers::Tier,
    flows::billing::{Applied, Billing},
    store::users::Users,
};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub users_checked: u64,
    pub subscriptions_synced: u64,
    /// Users whose tier, status or current subscription the run corrected.
    pub repaired: u64,
    pub ignored: u64,
    /// Subscriptions cancelled and refunded: a customer's second live one, or one whose
    /// customer is no user of ours.
    pub stopped: u64,
    pub failed: u64,
}

pub struct Reconciler<'a> {
    pub billing: Billing<'a>,
    pub users: &'a Users,
    /// Syncs in flight at once (each is a Stripe read and a few DynamoDB writes).
    pub concurrency: usize,
}

impl Reconciler<'_> {
    pub async fn run(&self, now: OffsetDateTime) -> anyhow::Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let mut ids = BTreeSet::new();

        let mut start = None;
        loop {
            let (users, next) = self.users.billed_users(start).await?;
            for user in users {
                report.users_checked += 1;
                match (&user.subscription_id, &user.stripe_customer_id) {
                    (Some(id), _) => {
                        ids.insert(id.clone());
                    }
                    (None, Some(customer)) => {
                        let open = self.billing.stripe.open_subscriptions(customer).await?;
                        if open.is_empty() {
                            tracing::warn!(support = true, user_id = %user.user_id, tier = %user.tier, "a paid tier with no subscription in Stripe");
                        }
                        ids.extend(open.into_iter().map(|s| s.id));
                    }
                    (None, None) if user.tier != Tier::Free => {
                        tracing::warn!(support = true, user_id = %user.user_id, tier = %user.tier, "a paid tier with no Stripe customer");
                    }
                    (None, None) => {}
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }

        let mut after: Option<String> = None;
        loop {
            let page = self.billing.stripe.subscriptions_page(None, after.as_deref()).await?;
            after = page.data.last().map(|s| s.id.clone()).filter(|_| page.has_more);
            ids.extend(page.data.into_iter().map(|s| s.id));
            if after.is_none() {
                break;
            }
        }

        let results: Vec<(String, anyhow::Result<Applied>)> = stream::iter(ids)
            .map(|id| async move {
                let result = self.billing.sync_subscription(&id, now).await;
                (id, result)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (id, result) in results {
            match result {
                Ok(Applied::Synced { changed, stopped, .. }) => {
                    report.subscriptions_synced += 1;
                    report.stopped += u64::from(stopped);
                    if changed {
                        report.repaired += 1;
                        tracing::info!(subscription_id = id, "reconciliation repaired a user");
                    }
                }
                Ok(Applied::Stale { .. } | Applied::TeamSynced { .. }) => report.subscriptions_synced += 1,
                Ok(Applied::Stopped { why, .. }) => {
                    report.stopped += 1;
                    tracing::warn!(subscription_id = id, why = why.as_str(), "reconciliation stopped a subscription");
                }
                Ok(Applied::Ignored { .. } | Applied::Logged) => report.ignored += 1,
                Err(error) => {
                    report.failed += 1;
                    tracing::error!(subscription_id = id, error = format!("{error:#}"), "reconciliation failed");
                }
            }
        }
        Ok(report)
    }
}
