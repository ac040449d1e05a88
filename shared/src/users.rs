//! The users table: one row per IdP subject, holding tier, Stripe customer and usage counter.

use anyhow::Context;
use aws_sdk_dynamodb::{Client, types::ReturnValue};
use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    dynamo::{self, Item, n, s},
    ids::UserId,
    presets::CustomPreset,
    tiers::{Features, Tier},
    usage::{Usage, UsagePeriod},
};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub tier: Tier,
    /// Stripe's subscription status (`active`, `past_due`, …); None before any subscription.
    pub subscription_status: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub recordings_this_month: u32,
    /// The month `recordings_this_month` counts.
    pub usage_period: Option<UsagePeriod>,
    pub created_at: String,
    pub last_login: Option<String>,
    /// PREMIUM's saved presets.
    pub custom_presets: Vec<CustomPreset>,
    pub subscription: Option<SubscriptionSummary>,
}

/// The user's current Stripe subscription, as the webhook last synced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSummary {
    pub subscription_id: String,
    /// When it renews, or ends if `cancel_at_period_end` (unix seconds).
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
}

/// What the IdP tells us about the person signing in.
#[derive(Debug, Clone)]
pub struct Profile {
    pub user_id: UserId,
    pub email: String,
    pub name: Option<String>,
}

/// The profile as the frontend sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub tier: Tier,
    pub subscription_status: Option<String>,
    pub subscription: Option<SubscriptionSummary>,
    pub features: Features,
    pub usage: Usage,
    pub created_at: String,
    pub last_login: Option<String>,
}

impl User {
    pub fn view(&self, now: OffsetDateTime) -> UserView {
        UserView {
            user_id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            tier: self.tier,
            subscription_status: self.subscription_status.clone(),
            subscription: self.subscription.clone(),
            features: self.tier.features(),
            usage: Usage::of(self, now),
            created_at: self.created_at.clone(),
            last_login: self.last_login.clone(),
        }
    }

    fn from_item(item: &Item) -> anyhow::Result<Self> {
        let id = dynamo::str(item, "userId")?;
        let user: anyhow::Result<Self> = (|| {
            Ok(Self {
                id: UserId::parse(id).context("stored userId")?,
                email: dynamo::str(item, "email")?.to_owned(),
                name: dynamo::opt_str(item, "name").map(String::from),
                tier: dynamo::str(item, "subscriptionTier")?.parse()?,
                subscription_status: dynamo::opt_str(item, "subscriptionStatus").map(String::from),
                stripe_customer_id: dynamo::opt_str(item, "stripeCustomerId").map(String::from),
                recordings_this_month: dynamo::opt_num(item, "recordingsThisMonth")?.unwrap_or(0),
                usage_period: dynamo::opt_str(item, "usagePeriod").map(str::parse).transpose()?,
                created_at: dynamo::str(item, "createdAt")?.to_owned(),
                last_login: dynamo::opt_str(item, "lastLogin").map(String::from),
                custom_presets: dynamo::opt_str(item, "customPresets")
                    .map(serde_json::from_str)
                    .transpose()?
                    .unwrap_or_default(),
                subscription: match dynamo::opt_str(item, "subscriptionId") {
                    Some(id) => Some(SubscriptionSummary {
                        subscription_id: id.to_owned(),
                        current_period_end: dynamo::opt_num(item, "currentPeriodEnd")?,
                        cancel_at_period_end: item
                            .get("cancelAtPeriodEnd")
                            .and_then(|v| v.as_bool().ok())
                            .copied()
                            .unwrap_or(false),
                    }),
                    None => None,
                },
            })
        })();
        user.with_context(|| format!("user row {id} is malformed"))
    }
}

#[derive(Clone)]
pub struct Users {
    client: Client,
    table: String,
}

impl Users {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// A strongly consistent read, so a tier written by the webhook is seen by the next request.
    #[tracing::instrument(skip(self), err)]
    pub async fn get(&self, id: &UserId) -> anyhow::Result<Option<User>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("userId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .context("reading the user")?;
        output.item.as_ref().map(User::from_item).transpose()
    }

    /// Creates the user on first sign-in (FREE, counter at zero) or refreshes email, name and
    /// lastLogin, keeping tier and counters, in one atomic write.
    #[tracing::instrument(skip(self, profile), fields(user_id = %profile.user_id), err)]
    pub async fn record_login(&self, profile: &Profile, now: OffsetDateTime) -> anyhow::Result<User> {
        let now = now.format(&Rfc3339).context("formatting the time")?;
        let mut assignments = vec![
            "email = :email",
            "lastLogin = :now",
            "createdAt = if_not_exists(createdAt, :now)",
            "subscriptionTier = if_not_exists(subscriptionTier, :free)",
            "recordingsThisMonth = if_not_exists(recordingsThisMonth, :zero)",
        ];
        if profile.name.is_some() {
            assignments.push("#name = :name");
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", s(profile.user_id.as_str()))
            .update_expression(format!("SET {}", assignments.join(", ")))
            .expression_attribute_values(":email", s(&profile.email))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":free", s(Tier::Free.as_str()))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllNew);
        if let Some(name) = &profile.name {
            update = update.expression_attribute_names("#name", "name").expression_attribute_values(":name", s(name));
        }
        let output = update.send().await.context("writing the user")?;
        User::from_item(output.attributes.as_ref().context("DynamoDB returned no attributes")?)
    }

    /// Stores the Stripe customer id unless one is already stored; returns the id that is.
    #[tracing::instrument(skip(self), err)]
    pub async fn set_stripe_customer(&self, id: &UserId, customer_id: &str) -> anyhow::Result<String> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", s(id.as_str()))
            .update_expression("SET stripeCustomerId = :customer")
            .condition_expression("attribute_exists(userId) AND attribute_not_exists(stripeCustomerId)")
            .expression_attribute_values(":customer", s(customer_id));
        match dynamo::conditional_update(update).await.context("storing the Stripe customer id")? {
            Some(_) => Ok(customer_id.to_owned()),
            None => {
                let user = self.get(id).await?.context("the user disappeared")?;
                user.stripe_customer_id.context("the user has no customer id after all")
            }
        }
    }

    /// Replaces the custom presets if they are still `expected`; false if they changed meanwhile.
    pub async fn replace_custom_presets(
        &self,
        id: &UserId,
        expected: &[CustomPreset],
        next: &[CustomPreset],
    ) -> anyhow::Result<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", s(id.as_str()))
            .update_expression("SET customPresets = :next")
            .expression_attribute_values(":next", s(serde_json::to_string(next)?));
        update = if expected.is_empty() {
            update
                .condition_expression(
                    "attribute_exists(userId) AND (attribute_not_exists(customPresets) OR customPresets = :empty)",
                )
                .expression_attribute_values(":empty", s("[]"))
        } else {
            update
                .condition_expression("customPresets = :expected")
                .expression_attribute_values(":expected", s(serde_json::to_string(expected)?))
        };
        Ok(dynamo::conditional_update(update).await.context("storing custom presets")?.is_some())
    }

    /// The user whose Stripe customer this is (through the stripeCustomerId index).
    pub async fn by_stripe_customer(&self, customer_id: &str) -> anyhow::Result<Option<UserId>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("stripeCustomerId-index")
            .key_condition_expression("stripeCustomerId = :customer")
            .expression_attribute_values(":customer", s(customer_id))
            .limit(1)
            .send()
            .await
            .context("looking up the customer's user")?;
        let item = output.items.unwrap_or_default().into_iter().next();
        item.map(|i| UserId::parse(dynamo::str(&i, "userId")?).context("stored userId")).transpose()
    }
}
