//! What the admin area reads and writes on the users table: roles (operator only), suspension,
//! usage top-ups, lookups by email and the aggregate figures of `GET /admin/stats`.

use anyhow::Context;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{Users, attr, user_from_item};
use crate::{
    domain::{
        ids::{Email, UserId},
        roles::Role,
        subscription::SubscriptionStatus,
        tiers::Tier,
        usage::UsagePeriod,
        user::{Suspension, User},
    },
    store::dynamo::{self, number, string},
};

/// Figures over every user row, for `GET /admin/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTally {
    pub users: u64,
    pub free: u64,
    pub basic: u64,
    pub premium: u64,
    /// Users whose current subscription still grants its tier (active, trialing, past_due).
    pub active_subscriptions: u64,
    /// Generations counted in the current month.
    pub generations_this_month: u64,
    /// Cloned voices held (slots in use).
    pub clones: u64,
    /// Users with an unresolved failed payment.
    pub failed_payments: u64,
}

impl Users {
    /// Sets the user's role; false when there is no such user. Operators only: no route calls it.
    pub async fn set_role(&self, id: &UserId, role: Role) -> anyhow::Result<bool> {
        self.changing(id, async {
            let update = self
                .update_existing(id)
                .update_expression("SET #role = :role")
                .expression_attribute_names("#role", attr::ROLE)
                .expression_attribute_values(":role", string(role.as_str()));
            Ok(dynamo::conditional_update(update).await.context("setting the role")?.is_some())
        })
        .await
    }

    /// Marks the account suspended; the user as it is now (None: no such user).
    pub async fn suspend(&self, id: &UserId, suspension: &Suspension) -> anyhow::Result<Option<User>> {
        self.changing(id, async {
            let json = serde_json::to_string(suspension).expect("a suspension serializes");
            let update = self
                .update_existing(id)
                .update_expression("SET #suspension = :suspension")
                .expression_attribute_names("#suspension", attr::SUSPENSION)
                .expression_attribute_values(":suspension", string(json))
                .return_values(ReturnValue::AllNew);
            self.updated(update, "suspending the account").await
        })
        .await
    }

    /// Lifts a suspension; the user as it is now (None: no such user).
    pub async fn unsuspend(&self, id: &UserId) -> anyhow::Result<Option<User>> {
        self.changing(id, async {
            let update = self
                .update_existing(id)
                .update_expression("REMOVE #suspension")
                .expression_attribute_names("#suspension", attr::SUSPENSION)
                .return_values(ReturnValue::AllNew);
            self.updated(update, "lifting the suspension").await
        })
        .await
    }

    /// Adds `recordings` to `period`'s limit; the user as it is now (None: no such user).
    pub async fn grant_recordings(
        &self,
        id: &UserId,
        period: UsagePeriod,
        recordings: u32,
    ) -> anyhow::Result<Option<User>> {
        self.changing(id, async {
            let update = self
                .update_existing(id)
                .update_expression("ADD #grant :recordings")
                .expression_attribute_names("#grant", format!("{}{period}", attr::GRANT_PREFIX))
                .expression_attribute_values(":recordings", number(recordings))
                .return_values(ReturnValue::AllNew);
            self.updated(update, "granting recordings").await
        })
        .await
    }

    async fn updated(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        what: &'static str,
    ) -> anyhow::Result<Option<User>> {
        let output = dynamo::conditional_update(update).await.context(what)?;
        output.and_then(|o| o.attributes).as_ref().map(user_from_item).transpose()
    }

    /// The users signed in with this email address (through the email index).
    pub async fn by_email(&self, email: &Email) -> anyhow::Result<Vec<UserId>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("email-index")
            .key_condition_expression("email = :email")
            .expression_attribute_values(":email", string(email.as_str()))
            .limit(25)
            .send()
            .await
            .context("looking users up by email")?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| UserId::parse(dynamo::str(item, attr::USER_ID)?).context("stored userId"))
            .collect()
    }

    /// Counts every user row in one projected scan (admin statistics; never on a user's path).
    pub async fn tally(&self, period: UsagePeriod) -> anyhow::Result<UserTally> {
        let mut tally = UserTally::default();
        let period = period.to_string();
        let mut rows = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#tier, #status, #counter, #period, #clones, #alert")
            .expression_attribute_names("#tier", attr::TIER)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#counter", attr::COUNTER)
            .expression_attribute_names("#period", attr::PERIOD)
            .expression_attribute_names("#clones", attr::CLONES)
            .expression_attribute_names("#alert", attr::BILLING_ALERT)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = rows.next().await {
            let item = item.context("scanning users for statistics")?;
            // Erased accounts' tombstones carry no tier.
            let Some(tier) = dynamo::opt_str(&item, attr::TIER).and_then(|t| t.parse::<Tier>().ok()) else {
                continue;
            };
            tally.users += 1;
            *match tier {
                Tier::Free => &mut tally.free,
                Tier::Basic => &mut tally.basic,
                Tier::Premium => &mut tally.premium,
            } += 1;
            let status = dynamo::opt_str(&item, attr::STATUS).map(|s| s.parse::<SubscriptionStatus>());
            if status.is_some_and(|s| s.is_ok_and(|s| s.grants_access())) {
                tally.active_subscriptions += 1;
            }
            if dynamo::opt_str(&item, attr::PERIOD) == Some(period.as_str()) {
                tally.generations_this_month += dynamo::opt_num::<u64>(&item, attr::COUNTER)?.unwrap_or(0);
            }
            tally.clones += dynamo::opt_num::<u64>(&item, attr::CLONES)?.unwrap_or(0);
            tally.failed_payments += u64::from(item.contains_key(attr::BILLING_ALERT));
        }
        Ok(tally)
    }
}
