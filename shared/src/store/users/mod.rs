//! The users table: one row per IdP subject, holding tier, Stripe customer, usage counter and
//! presets. Every read and write of the table is here (the quota and the monthly reset in the
//! child modules), so its attribute names are written down once, in [`attr`].

mod admin;
pub mod allowance;
mod erasure;
mod reset;
pub mod snapshot;

use anyhow::Context;
use aws_sdk_dynamodb::{
    Client,
    operation::update_item::builders::UpdateItemFluentBuilder,
    types::{AttributeValue, ReturnValue},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub use self::{
    admin::UserTally,
    allowance::{Counters, MonthFigures, PoolRows, Refused, Removed, Reservation, Units},
    reset::ResetReport,
    snapshot::Snapshots,
};
use crate::{
    domain::{
        ids::{Email, UserId},
        overage::OverageCap,
        presets::CustomPreset,
        subscription::SubscriptionStatus,
        tiers::Tier,
        usage::{MonthUsage, UsagePeriod},
        user::{BillingAlert, Profile, SubscriptionSummary, User},
    },
    store::dynamo::{self, Item, number, string},
};

/// The user row's attribute names; only this module (and its children) write them.
mod attr {
    pub const USER_ID: &str = "userId";
    pub const EMAIL: &str = "email";
    pub const NAME: &str = "name";
    pub const TIER: &str = "subscriptionTier";
    pub const STATUS: &str = "subscriptionStatus";
    pub const CUSTOMER: &str = "stripeCustomerId";
    pub const COUNTER: &str = "recordingsThisMonth";
    pub const PERIOD: &str = "usagePeriod";
    pub const CREATED_AT: &str = "createdAt";
    pub const LAST_LOGIN: &str = "lastLogin";
    pub const CUSTOM_PRESETS: &str = "customPresets";
    pub const SUBSCRIPTION_ID: &str = "subscriptionId";
    pub const PERIOD_END: &str = "currentPeriodEnd";
    pub const CANCEL_AT_PERIOD_END: &str = "cancelAtPeriodEnd";
    pub const CLONES: &str = "voiceClones";
    pub const API_KEYS: &str = "apiKeys";
    pub const BILLING_ALERT: &str = "billingAlert";
    pub const UPLOADS: &str = "uploadsThisMonth";
    pub const UPLOAD_PERIOD: &str = "uploadPeriod";
    pub const STORAGE: &str = "storageBytes";
    pub const FAVOURITES: &str = "favourites";
    pub const PREFERENCES: &str = "preferences";
    pub const CHARACTERS: &str = "charactersThisMonth";
    /// `usage_{YYYY-MM}`: an archived month's figures.
    pub const MONTH_PREFIX: &str = "usage_";
    pub const ROLE: &str = "role";
    /// JSON: since, reason, by.
    pub const SUSPENSION: &str = "suspension";
    pub const OVERAGE_CAP: &str = "overageCapCents";
    /// `grant_{YYYY-MM}`: recordings an admin added to that month's limit.
    pub const GRANT_PREFIX: &str = "grant_";
}

/// The months' admin top-ups (`grant_{YYYY-MM}` attributes).
fn usage_grants(item: &Item) -> anyhow::Result<Vec<(UsagePeriod, u32)>> {
    let mut grants = Vec::new();
    for name in item.keys() {
        let Some(period) = name.strip_prefix(attr::GRANT_PREFIX) else { continue };
        let period = period.parse().with_context(|| format!("granted month {name}"))?;
        grants.push((period, dynamo::num(item, name)?));
    }
    Ok(grants)
}

/// The archived months (`usage_{YYYY-MM}` attributes), newest first.
fn usage_history(item: &Item) -> anyhow::Result<Vec<MonthUsage>> {
    let mut months = Vec::new();
    for (name, value) in item {
        let Some(period) = name.strip_prefix(attr::MONTH_PREFIX) else { continue };
        let figures = value.as_m().map_err(|_| anyhow::anyhow!("{name} is not a map"))?;
        months.push(MonthUsage {
            period: period.parse().with_context(|| format!("archived month {name}"))?,
            recordings: dynamo::opt_num(figures, "recordings")?.unwrap_or(0),
            characters: dynamo::opt_num(figures, "characters")?.unwrap_or(0),
        });
    }
    months.sort_by_key(|m| std::cmp::Reverse(m.period));
    Ok(months)
}

fn user_from_item(item: &Item) -> anyhow::Result<User> {
    let id = dynamo::str(item, attr::USER_ID)?;
    let user: anyhow::Result<User> = (|| {
        Ok(User {
            id: UserId::parse(id).context("stored userId")?,
            email: Email::parse(dynamo::str(item, attr::EMAIL)?).context("stored email")?,
            name: dynamo::opt_str(item, attr::NAME).map(String::from),
            tier: dynamo::str(item, attr::TIER)?.parse()?,
            subscription_status: dynamo::opt_str(item, attr::STATUS).map(|s| s.parse().unwrap_or_else(|n| match n {})),
            stripe_customer_id: dynamo::opt_str(item, attr::CUSTOMER).map(String::from),
            recordings_this_month: dynamo::opt_num(item, attr::COUNTER)?.unwrap_or(0),
            usage_period: dynamo::opt_str(item, attr::PERIOD).map(str::parse).transpose()?,
            created_at: dynamo::str(item, attr::CREATED_AT)?.to_owned(),
            last_login: dynamo::opt_str(item, attr::LAST_LOGIN).map(String::from),
            custom_presets: dynamo::opt_str(item, attr::CUSTOM_PRESETS)
                .map(serde_json::from_str)
                .transpose()?
                .unwrap_or_default(),
            subscription: match dynamo::opt_str(item, attr::SUBSCRIPTION_ID) {
                Some(id) => Some(SubscriptionSummary {
                    subscription_id: id.to_owned(),
                    current_period_end: dynamo::opt_num(item, attr::PERIOD_END)?,
                    cancel_at_period_end: item
                        .get(attr::CANCEL_AT_PERIOD_END)
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                }),
                None => None,
            },
            billing_alert: dynamo::opt_str(item, attr::BILLING_ALERT).map(serde_json::from_str).transpose()?,
            uploads_this_month: dynamo::opt_num(item, attr::UPLOADS)?.unwrap_or(0),
            upload_period: dynamo::opt_str(item, attr::UPLOAD_PERIOD).map(str::parse).transpose()?,
            storage_bytes: dynamo::opt_num(item, attr::STORAGE)?.unwrap_or(0),
            favourites: dynamo::opt_num(item, attr::FAVOURITES)?.unwrap_or(0),
            erasing: item.contains_key("erasureState"),
            preferences: dynamo::opt_str(item, attr::PREFERENCES)
                .map(serde_json::from_str)
                .transpose()?
                .unwrap_or_default(),
            characters_this_month: dynamo::opt_num(item, attr::CHARACTERS)?.unwrap_or(0),
            usage_history: usage_history(item)?,
            voice_clones: dynamo::opt_num(item, attr::CLONES)?.unwrap_or(0),
            api_keys: dynamo::opt_num(item, attr::API_KEYS)?.unwrap_or(0),
            role: dynamo::opt_str(item, attr::ROLE).map(str::parse).transpose()?.unwrap_or_default(),
            suspension: dynamo::opt_str(item, attr::SUSPENSION).map(serde_json::from_str).transpose()?,
            usage_grants: usage_grants(item)?,
            overage_cap: OverageCap { cents: dynamo::opt_num(item, attr::OVERAGE_CAP)?.unwrap_or(0) },
        })
    })();
    user.with_context(|| format!("user row {id} is malformed"))
}
#[derive(Clone)]
pub struct Users {
    client: Client,
    table: String,
    snapshots: Snapshots,
    /// Workspaces' pooled allowances (`allowance::Counters`).
    pools: PoolRows,
}

impl Users {
    pub fn new(client: Client, table: String, snapshots: Snapshots, pools: PoolRows) -> Self {
        Self { client, table, snapshots, pools }
    }

    /// Runs a write to the user's row, then forgets the row's snapshot (whatever the write's
    /// outcome), so the next request reads the row from DynamoDB.
    async fn changing<T>(&self, id: &UserId, write: impl Future<Output = T>) -> T {
        let written = write.await;
        self.snapshots.forget(id).await;
        written
    }

    /// The rows kept in Redis for the hot path.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// An update of the user's row (every write here runs it inside [`Users::changing`]).
    fn update(&self, id: &UserId) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key(attr::USER_ID, string(id.as_str()))
    }

    /// An update of the user's row that changes nothing unless the row exists.
    fn update_existing(&self, id: &UserId) -> UpdateItemFluentBuilder {
        self.update(id).condition_expression("attribute_exists(userId)")
    }

    /// One cheap read of a key no user has: proves the table answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(attr::USER_ID, string("health-check"))
            .projection_expression(attr::USER_ID)
            .send()
            .await
            .context("reaching the users table")?;
        Ok(())
    }

    /// A strongly consistent read, so a tier written by the webhook is seen by the next request.
    #[tracing::instrument(skip(self), err)]
    pub async fn get(&self, id: &UserId) -> anyhow::Result<Option<User>> {
        self.row(id).await?.as_ref().map(user_from_item).transpose()
    }

    /// [`Users::get`] for a request whose snapshot was missing or unusable: the row is also
    /// stored as the user's snapshot, unless a write forgot the user since `seen`.
    pub async fn get_and_remember(&self, id: &UserId, seen: &snapshot::Seen, now: i64) -> anyhow::Result<Option<User>> {
        let Some(item) = self.row(id).await? else { return Ok(None) };
        let user = user_from_item(&item)?;
        self.snapshots.fill(id, &item, seen, now).await;
        Ok(Some(user))
    }

    async fn row(&self, id: &UserId) -> anyhow::Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::USER_ID, string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .context("reading the user")?;
        Ok(output.item)
    }

    /// Creates the user on first sign-in (FREE, counter at zero) or refreshes email, name and
    /// lastLogin, keeping tier and counters, in one atomic write.
    #[tracing::instrument(skip(self, profile), fields(user_id = %profile.user_id), err)]
    pub async fn record_login(&self, profile: &Profile, now: OffsetDateTime) -> anyhow::Result<User> {
        self.changing(&profile.user_id, async {
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
                .update(&profile.user_id)
                .update_expression(format!("SET {}", assignments.join(", ")))
                .expression_attribute_values(":email", string(profile.email.as_str()))
                .expression_attribute_values(":now", string(now))
                .expression_attribute_values(":free", string(Tier::Free.as_str()))
                .expression_attribute_values(":zero", number(0))
                .return_values(ReturnValue::AllNew);
            if let Some(name) = &profile.name {
                update = update
                    .expression_attribute_names("#name", "name")
                    .expression_attribute_values(":name", string(name));
            }
            let output = update.send().await.context("writing the user")?;
            user_from_item(output.attributes.as_ref().context("DynamoDB returned no attributes")?)
        })
        .await
    }

    /// Stores the Stripe customer id unless one is already stored; returns the id that is.
    #[tracing::instrument(skip(self), err)]
    pub async fn set_stripe_customer(&self, id: &UserId, customer_id: &str) -> anyhow::Result<String> {
        self.changing(id, async {
            let update = self
                .update(id)
                .update_expression("SET stripeCustomerId = :customer")
                .condition_expression("attribute_exists(userId) AND attribute_not_exists(stripeCustomerId)")
                .expression_attribute_values(":customer", string(customer_id));
            match dynamo::conditional_update(update).await.context("storing the Stripe customer id")? {
                Some(_) => Ok(customer_id.to_owned()),
                None => {
                    let user = self.get(id).await?.context("the user disappeared")?;
                    user.stripe_customer_id.context("the user has no customer id after all")
                }
            }
        })
        .await
    }

    /// Replaces the custom presets if they are still `expected`; false if they changed meanwhile.
    pub async fn replace_custom_presets(
        &self,
        id: &UserId,
        expected: &[CustomPreset],
        next: &[CustomPreset],
    ) -> anyhow::Result<bool> {
        self.changing(id, async {
            let mut update = self
                .update(id)
                .update_expression("SET customPresets = :next")
                .expression_attribute_values(":next", string(serde_json::to_string(next)?));
            update = if expected.is_empty() {
                update
                    .condition_expression(
                        "attribute_exists(userId) AND (attribute_not_exists(customPresets) OR customPresets = :empty)",
                    )
                    .expression_attribute_values(":empty", string("[]"))
            } else {
                update
                    .condition_expression("customPresets = :expected")
                    .expression_attribute_values(":expected", string(serde_json::to_string(expected)?))
            };
            Ok(dynamo::conditional_update(update).await.context("storing custom presets")?.is_some())
        })
        .await
    }

    /// The user whose Stripe customer this is (through the stripeCustomerId index).
    pub async fn by_stripe_customer(&self, customer_id: &str) -> anyhow::Result<Option<UserId>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("stripeCustomerId-index")
            .key_condition_expression("stripeCustomerId = :customer")
            .expression_attribute_values(":customer", string(customer_id))
            .limit(1)
            .send()
            .await
            .context("looking up the customer's user")?;
        let item = output.items.unwrap_or_default().into_iter().next();
        item.map(|i| UserId::parse(dynamo::str(&i, attr::USER_ID)?).context("stored userId")).transpose()
    }

    /// Mirrors the user's current subscription onto the user row: tier, status, subscription,
    /// period end (which subscription is current is decided by the billing flow). False
    /// when the row holds a state read from Stripe later than this one (kept as it was).
    pub async fn mirror_subscription(
        &self,
        id: &UserId,
        mirror: &SubscriptionMirror<'_>,
    ) -> anyhow::Result<Option<MirroredBefore>> {
        self.changing(id, async {
            let update = self.update(id)
                .update_expression(format!(
                    "SET subscriptionTier = :tier, subscriptionStatus = :status, subscriptionId = :sub, \
                     cancelAtPeriodEnd = :cancel, currentPeriodEnd = :end, subscriptionReadAt = :read{}",
                    // A healthy subscription resolves a payment alert.
                    if matches!(mirror.status, SubscriptionStatus::Active | SubscriptionStatus::Trialing) {
                        " REMOVE billingAlert"
                    } else {
                        ""
                    }
                ))
                .condition_expression(
                    "attribute_exists(userId) AND (attribute_not_exists(subscriptionReadAt) OR subscriptionReadAt < :read)",
                )
                .expression_attribute_values(":tier", string(mirror.tier.as_str()))
                .expression_attribute_values(":status", string(mirror.status.as_str()))
                .expression_attribute_values(":sub", string(mirror.subscription_id))
                .expression_attribute_values(":cancel", AttributeValue::Bool(mirror.cancel_at_period_end))
                .expression_attribute_values(":end", mirror.period_end.map(number).unwrap_or(AttributeValue::Null(true)))
                .expression_attribute_values(":read", number(mirror.read_at_ms))
                .return_values(ReturnValue::UpdatedOld);
            let Some(output) = dynamo::conditional_update(update).await.context("writing the user's tier")? else {
                return Ok(None);
            };
            let old = output.attributes.unwrap_or_default();
            Ok(Some(MirroredBefore {
                tier: dynamo::opt_str(&old, attr::TIER).and_then(|t| t.parse().ok()).unwrap_or(Tier::Free),
                status: dynamo::opt_str(&old, attr::STATUS).map(|s| s.parse().unwrap_or_else(|never| match never {})),
                subscription_id: dynamo::opt_str(&old, attr::SUBSCRIPTION_ID).map(String::from),
            }))
        })
        .await
    }

    /// One page of the users billing concerns: those with a subscription id or a paid tier.
    pub async fn billed_users(&self, start: Option<Item>) -> anyhow::Result<(Vec<BilledUser>, Option<Item>)> {
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#id, #sub, #tier, #customer")
            .filter_expression("attribute_exists(#sub) OR #tier IN (:basic, :premium)")
            .expression_attribute_names("#id", attr::USER_ID)
            .expression_attribute_names("#sub", attr::SUBSCRIPTION_ID)
            .expression_attribute_names("#tier", attr::TIER)
            .expression_attribute_names("#customer", attr::CUSTOMER)
            .expression_attribute_values(":basic", string(Tier::Basic.as_str()))
            .expression_attribute_values(":premium", string(Tier::Premium.as_str()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("scanning billed users")?;
        let users = page
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(BilledUser {
                    user_id: UserId::parse(dynamo::str(item, attr::USER_ID)?).context("stored userId")?,
                    subscription_id: dynamo::opt_str(item, attr::SUBSCRIPTION_ID).map(String::from),
                    stripe_customer_id: dynamo::opt_str(item, attr::CUSTOMER).map(String::from),
                    tier: dynamo::opt_str(item, attr::TIER).and_then(|t| t.parse().ok()).unwrap_or(Tier::Free),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((users, page.last_evaluated_key))
    }
}

impl Users {
    /// Shows `alert` to the user until it is cleared.
    pub async fn set_billing_alert(&self, id: &UserId, alert: &BillingAlert) -> anyhow::Result<()> {
        self.changing(id, async {
            let update = self
                .update(id)
                .update_expression("SET billingAlert = :alert")
                .condition_expression("attribute_exists(userId)")
                .expression_attribute_values(":alert", string(serde_json::to_string(alert).expect("alerts serialize")));
            dynamo::conditional_update(update).await.context("setting the billing alert")?;
            Ok(())
        })
        .await
    }

    /// Clears the alert about `invoice_id` (an alert about another invoice stays).
    pub async fn clear_billing_alert(&self, id: &UserId, invoice_id: &str) -> anyhow::Result<bool> {
        self.changing(id, async {
            let user = self.get(id).await?;
            let Some(alert) = user.and_then(|u| u.billing_alert).filter(|a| a.invoice_id == invoice_id) else {
                return Ok(false);
            };
            let update = self
                .update(id)
                .update_expression("REMOVE billingAlert")
                .condition_expression("billingAlert = :alert")
                .expression_attribute_values(
                    ":alert",
                    string(serde_json::to_string(&alert).expect("alerts serialize")),
                );
            Ok(dynamo::conditional_update(update).await.context("clearing the billing alert")?.is_some())
        })
        .await
    }
}

impl Users {
    /// Sets how much the user allows past the month's allowance; the user as it is now (None: no
    /// such user).
    pub async fn set_overage_cap(&self, id: &UserId, cap: OverageCap) -> anyhow::Result<Option<User>> {
        self.changing(id, async {
            let update = self
                .update(id)
                .update_expression("SET #cap = :cap")
                .condition_expression("attribute_exists(userId)")
                .expression_attribute_names("#cap", attr::OVERAGE_CAP)
                .expression_attribute_values(":cap", number(cap.cents))
                .return_values(ReturnValue::AllNew);
            let output = dynamo::conditional_update(update).await.context("setting the overage cap")?;
            output.and_then(|o| o.attributes).as_ref().map(user_from_item).transpose()
        })
        .await
    }

    /// Applies a checked profile patch; the user as it is now (None: no such user).
    pub async fn update_profile(
        &self,
        id: &UserId,
        patch: &crate::domain::profile::ProfilePatch,
    ) -> anyhow::Result<Option<User>> {
        self.changing(id, async {
            let (mut sets, mut removes) = (Vec::new(), Vec::new());
            let mut update =
                self.update(id).condition_expression("attribute_exists(userId)").return_values(ReturnValue::AllNew);
            match &patch.name {
                Some(Some(name)) => {
                    sets.push("#name = :name");
                    update = update
                        .expression_attribute_names("#name", attr::NAME)
                        .expression_attribute_values(":name", string(name));
                }
                Some(None) => {
                    removes.push("#name");
                    update = update.expression_attribute_names("#name", attr::NAME);
                }
                None => {}
            }
            if let Some(preferences) = &patch.preferences {
                sets.push("preferences = :preferences");
                let json = serde_json::to_string(preferences).expect("preferences serialize");
                update = update.expression_attribute_values(":preferences", string(json));
            }
            let mut expression = String::new();
            if !sets.is_empty() {
                expression.push_str(&format!("SET {}", sets.join(", ")));
            }
            if !removes.is_empty() {
                expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
            }
            if expression.is_empty() {
                return self.get(id).await;
            }
            let output = dynamo::conditional_update(update.update_expression(expression.trim()))
                .await
                .context("updating the profile")?;
            output.and_then(|o| o.attributes).as_ref().map(user_from_item).transpose()
        })
        .await
    }
}

/// What the user row showed before a subscription mirror replaced it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirroredBefore {
    pub tier: Tier,
    pub status: Option<SubscriptionStatus>,
    pub subscription_id: Option<String>,
}

/// A user with a subscription id or a paid tier, as the reconciliation reads them.
#[derive(Debug, Clone)]
pub struct BilledUser {
    pub user_id: UserId,
    pub subscription_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub tier: Tier,
}

impl Users {
    /// How many clone slots are in use.
    pub async fn clone_slots_used(&self, id: &UserId) -> anyhow::Result<u32> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::USER_ID, string(id.as_str()))
            .projection_expression(attr::CLONES)
            .consistent_read(true)
            .send()
            .await
            .context("reading the clone slots")?;
        Ok(output.item.as_ref().map(|i| dynamo::opt_num(i, attr::CLONES)).transpose()?.flatten().unwrap_or(0))
    }
}

/// What [`Users::mirror_subscription`] writes.
pub struct SubscriptionMirror<'a> {
    pub subscription_id: &'a str,
    pub status: &'a SubscriptionStatus,
    pub tier: Tier,
    pub cancel_at_period_end: bool,
    pub period_end: Option<i64>,
    /// When (ms) the state was read from Stripe: an older read never replaces a newer one.
    pub read_at_ms: i64,
}
