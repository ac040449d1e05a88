//! `GET /usage` (this period's usage against the tier's limit), `GET /user/profile`, and the
//! billing settings (`GET`/`PATCH /billing/settings`: how far past the allowance overage may go).

use serde::Serialize;
use voice_core::{
    ApiError,
    domain::overage::{BillingSettings, BillingSettingsPatch},
    domain::profile::ProfilePatch,
    domain::{
        usage::{MonthUsage, Usage},
        user::Allowances,
    },
    http::{Caller, Ctx, HttpResult, Route, json_body, ok, query},
    route,
    store::usage_events::MonthOverage,
};

pub const ROUTES: &[Route] = &[
    route!("GET /usage", user: usage, api_keys: true),
    route!("GET /usage/history", user: history),
    route!("GET /user/profile", user: profile),
    route!("PATCH /user/profile", user: edit_profile, body: ProfilePatch),
    route!("GET /billing/settings", user: billing_settings),
    route!("PATCH /billing/settings", user: edit_billing_settings, body: BillingSettingsPatch),
];

/// This month's generations, plus uploads, storage and favourites against the tier.
#[derive(Serialize)]
struct UsageView {
    #[serde(flatten)]
    generations: Usage,
    allowances: Allowances,
}

#[tracing::instrument(skip_all)]
async fn usage(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let now = ctx.app.clock.now();
    ok(&UsageView { generations: caller.user.usage(now), allowances: caller.user.allowances(now) })
}

/// A finished month, with its generations past the allowance and what they cost.
#[derive(Serialize)]
struct HistoryMonth<'a> {
    #[serde(flatten)]
    figures: &'a MonthUsage,
    overage: MonthOverage,
}

/// `GET /usage/history?months=12`: the past months' figures, newest first (archived when each
/// month's counter was rolled over, so no reset can lose one), each with its overage (from the
/// usage events billed through the meter).
#[tracing::instrument(skip_all)]
async fn history(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let months = match query(ctx.req, "months") {
        None => 12,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=120).contains(m))
            .ok_or_else(|| ApiError::validation("months", "must be a whole number from 1 to 120"))?,
    };
    let past = &caller.user.usage_history[..months.min(caller.user.usage_history.len())];
    let overage = match (past.last(), past.first()) {
        (Some(oldest), Some(newest)) => {
            ctx.app.usage_events.by_month(&caller.user.id, oldest.period, newest.period).await?
        }
        _ => Default::default(),
    };
    let past: Vec<_> = past
        .iter()
        .map(|figures| HistoryMonth { figures, overage: overage.get(&figures.period).copied().unwrap_or_default() })
        .collect();
    ok(&serde_json::json!({ "months": past }))
}

#[tracing::instrument(skip_all)]
async fn profile(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&caller.user.view(ctx.app.clock.now()))
}

/// `PATCH /user/profile {name?, preferences?}`: typed, bounded, checked against the tier.
#[tracing::instrument(skip_all)]
async fn edit_profile(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let user = &caller.user;
    let patch: ProfilePatch = json_body(ctx.req, 4 * 1024)?;
    let patch = patch.check(user.tier, &user.custom_presets)?;
    let updated = app.users.update_profile(&user.id, &patch).await?.ok_or(ApiError::Unauthenticated)?;
    ok(&updated.view(app.clock.now()))
}

#[tracing::instrument(skip_all)]
async fn billing_settings(_ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&BillingSettings::new(caller.user.overage_cap, caller.user.tier))
}

/// `PATCH /billing/settings {overageCapCents}`: bounded; a cap above zero needs a plan with
/// overage, a subscription to bill it to, and overage offered at all (a meter configured).
#[tracing::instrument(skip_all)]
async fn edit_billing_settings(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let user = &caller.user;
    let patch: BillingSettingsPatch = json_body(ctx.req, 1024)?;
    let cap = patch.check(user.tier)?;
    if cap.cents > 0 {
        if app.config.billing.overage.is_none() {
            return Err(ApiError::locked("overage is not offered"));
        }
        if user.stripe_customer_id.is_none() || !user.has_live_subscription() {
            return Err(ApiError::Conflict(
                "overage is billed with your subscription, and you have none that bills now".to_owned(),
            ));
        }
    }
    let updated = app.users.set_overage_cap(&user.id, cap).await?.ok_or(ApiError::Unauthenticated)?;
    ok(&BillingSettings::new(updated.overage_cap, updated.tier))
}
