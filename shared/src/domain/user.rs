//! A user as the rules see it: tier, subscription, usage counter, presets.

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{
    ids::{Email, UserId},
    overage::OverageCap,
    presets::CustomPreset,
    profile::Preferences,
    roles::{Permission, Role},
    subscription::SubscriptionStatus,
    tiers::{Features, Tier},
    usage::{MonthUsage, Usage, UsagePeriod},
};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: Option<String>,
    pub tier: Tier,
    /// Stripe's subscription status; None before any subscription.
    pub subscription_status: Option<SubscriptionStatus>,
    pub stripe_customer_id: Option<String>,
    pub recordings_this_month: u32,
    /// The month `recordings_this_month` counts.
    pub usage_period: Option<UsagePeriod>,
    pub created_at: String,
    pub last_login: Option<String>,
    /// PREMIUM's saved presets.
    pub custom_presets: Vec<CustomPreset>,
    pub subscription: Option<SubscriptionSummary>,
    /// Something about billing the user must act on (a failed payment).
    pub billing_alert: Option<BillingAlert>,
    /// Uploads requested in `upload_period`.
    pub uploads_this_month: u32,
    pub upload_period: Option<UsagePeriod>,
    /// Bytes of uploaded recordings reserved or kept.
    pub storage_bytes: u64,
    pub favourites: u32,
    /// The account's erasure started and has not finished.
    pub erasing: bool,
    pub preferences: Preferences,
    pub characters_this_month: u64,
    /// Finished months, archived when their counter was rolled over, newest first.
    pub usage_history: Vec<MonthUsage>,
    /// Cloned voices held (clone slots in use).
    pub voice_clones: u32,
    /// API keys held.
    pub api_keys: u32,
    /// The admin area's role (granted by an operator only).
    pub role: Role,
    /// Set while an admin has suspended the account: no request and no sign-in is served.
    pub suspension: Option<Suspension>,
    /// Recordings an admin added to a month's limit (support top-ups), by month.
    pub usage_grants: Vec<(UsagePeriod, u32)>,
    /// How much the user allows past the month's allowance (billing settings).
    pub overage_cap: OverageCap,
}

/// Why and since when an account is suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// RFC 3339.
    pub since: String,
    pub reason: String,
    /// The admin's user id.
    pub by: String,
}

/// Uploads, storage and favourites against the tier's allowances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allowances {
    pub uploads: Allowance,
    pub storage_bytes: Allowance<u64>,
    pub favourites: Allowance,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowance<T = u32> {
    pub used: T,
    pub limit: T,
}

/// A billing problem shown in the session and profile until it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingAlert {
    /// `payment_failed`.
    pub kind: String,
    /// When it started (RFC 3339).
    pub since: String,
    pub invoice_id: String,
    /// Where the user fixes it: the billing portal (`POST /billing/portal`) to update the card.
    #[serde(default = "portal_hint")]
    pub portal: String,
}

fn portal_hint() -> String {
    "POST /billing/portal".to_owned()
}

impl BillingAlert {
    pub fn payment_failed(invoice_id: &str, since: String) -> Self {
        Self { kind: "payment_failed".to_owned(), since, invoice_id: invoice_id.to_owned(), portal: portal_hint() }
    }
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
    pub email: Email,
    pub name: Option<String>,
}

/// The profile as the frontend sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: UserId,
    pub email: Email,
    pub name: Option<String>,
    pub tier: Tier,
    pub subscription_status: Option<SubscriptionStatus>,
    pub subscription: Option<SubscriptionSummary>,
    pub billing_alert: Option<BillingAlert>,
    pub allowances: Allowances,
    pub preferences: Preferences,
    pub features: Features,
    pub usage: Usage,
    pub created_at: String,
    pub last_login: Option<String>,
    /// The admin-area role an operator granted (`user` for everyone else) and what it allows.
    pub role: Role,
    pub admin_permissions: Vec<Permission>,
}

impl User {
    /// This month's usage. A counter stamped with an earlier period counts as zero: the month has
    /// turned even if the monthly reset has not reached this user yet.
    pub fn usage(&self, now: OffsetDateTime) -> Usage {
        let period = UsagePeriod::containing(now);
        let current = self.usage_period == Some(period);
        let used = if current { self.recordings_this_month } else { 0 };
        let usage = Usage::new(self.tier, used, period).with_grant(self.granted_recordings(period));
        usage.with_alert(self.overage_units()).with_characters(if current { self.characters_this_month } else { 0 })
    }

    /// Recordings added to `period`'s limit by an admin.
    pub fn granted_recordings(&self, period: UsagePeriod) -> u32 {
        self.usage_grants.iter().filter(|(p, _)| *p == period).map(|(_, n)| *n).sum()
    }

    pub fn view(&self, now: OffsetDateTime) -> UserView {
        UserView {
            user_id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            tier: self.tier,
            subscription_status: self.subscription_status.clone(),
            subscription: self.subscription.clone(),
            billing_alert: self.billing_alert.clone(),
            allowances: self.allowances(now),
            preferences: self.preferences.clone(),
            features: self.tier.features(),
            usage: self.usage(now),
            created_at: self.created_at.clone(),
            last_login: self.last_login.clone(),
            role: self.role,
            admin_permissions: self.role.permissions(),
        }
    }

    /// Generations past the plan's allowance the user allows this month: what their cap pays for,
    /// on a plan with overage and a subscription to bill it to.
    pub fn overage_units(&self) -> u32 {
        if self.stripe_customer_id.is_none() || !self.has_live_subscription() {
            return 0;
        }
        self.overage_cap.units(self.tier)
    }

    /// Uploads (this month), storage and favourites against the tier's allowances.
    pub fn allowances(&self, now: OffsetDateTime) -> Allowances {
        let rules = self.tier.rules();
        let uploads =
            if self.upload_period == Some(UsagePeriod::containing(now)) { self.uploads_this_month } else { 0 };
        Allowances {
            uploads: Allowance { used: uploads, limit: rules.uploads_per_month },
            storage_bytes: Allowance { used: self.storage_bytes, limit: rules.storage_bytes },
            favourites: Allowance { used: self.favourites, limit: rules.favourites },
        }
    }

    /// Holds a subscription that still grants its tier.
    pub fn has_live_subscription(&self) -> bool {
        self.subscription_status.as_ref().is_some_and(SubscriptionStatus::grants_access)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn user(tier: Tier, used: u32, period: &str) -> User {
        User {
            id: UserId::parse("auth0|u").unwrap(),
            email: Email::parse("u@example.com").unwrap(),
            name: None,
            tier,
            subscription_status: None,
            stripe_customer_id: None,
            recordings_this_month: used,
            usage_period: Some(period.parse().unwrap()),
            created_at: "2026-01-01T00:00:00Z".into(),
            last_login: None,
            custom_presets: Vec::new(),
            subscription: None,
            billing_alert: None,
            uploads_this_month: 0,
            upload_period: None,
            storage_bytes: 0,
            favourites: 0,
            erasing: false,
            preferences: Preferences::default(),
            characters_this_month: 0,
            usage_history: Vec::new(),
            voice_clones: 0,
            api_keys: 0,
            role: Role::User,
            suspension: None,
            usage_grants: Vec::new(),
            overage_cap: OverageCap::default(),
        }
    }

    #[test]
    fn given_a_counter_from_last_month_when_read_then_nothing_is_used() {
        let usage = user(Tier::Free, 7, "2026-10").usage(datetime!(2026-11-01 00:00:01 UTC));
        assert_eq!((usage.used, usage.remaining), (0, Some(10)));
        assert_eq!(usage.resets_at, "2026-12-01T00:00:00Z");
    }

    #[test]
    fn given_this_months_counter_when_read_then_it_counts() {
        let usage = user(Tier::Basic, 7, "2026-11").usage(datetime!(2026-11-30 23:59:59 UTC));
        assert_eq!((usage.used, usage.limit, usage.remaining), (7, Some(100), Some(93)));
        let premium = user(Tier::Premium, 700, "2026-11").usage(datetime!(2026-11-15 12:00 UTC));
        assert_eq!((premium.limit, premium.remaining), (None, None));
    }

    #[test]
    fn given_a_grant_for_this_month_when_read_then_the_limit_grows_by_it() {
        let mut u = user(Tier::Free, 10, "2026-11");
        u.usage_grants = vec![("2026-11".parse().unwrap(), 5), ("2026-10".parse().unwrap(), 50)];
        let usage = u.usage(datetime!(2026-11-20 10:00 UTC));
        assert_eq!((usage.used, usage.limit, usage.remaining), (10, Some(15), Some(5)));
        let next_month = u.usage(datetime!(2026-12-01 00:00 UTC));
        assert_eq!(next_month.limit, Some(10));
    }

    #[test]
    fn only_granting_states_are_live() {
        let mut u = user(Tier::Basic, 0, "2026-11");
        assert!(!u.has_live_subscription());
        u.subscription_status = Some(SubscriptionStatus::PastDue);
        assert!(u.has_live_subscription());
        u.subscription_status = Some(SubscriptionStatus::Canceled);
        assert!(!u.has_live_subscription());
    }
}
