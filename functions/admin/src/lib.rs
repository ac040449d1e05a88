//! The admin area: user lookup and account summaries (support and admin), suspension and usage
//! top-ups (admin), aggregate statistics, and the audit log (admin, read only). Each route names
//! the permission it needs; the router checks it against the role table before the handler runs.

use serde::Deserialize;
use voice_core::{
    ApiError,
    domain::{
        ids::{Email, Ulid, UserId},
        usage::UsagePeriod,
    },
    flows::admin::{Actor, Admin, Lookup, reason},
    http::{Caller, Ctx, HttpResult, Route, json_body, ok, page_limit, path_param, query},
    route,
};

pub const ROUTES: &[Route] = &[
    route!("GET /admin/users", user: lookup, permission: LookUpUsers),
    route!("GET /admin/users/{id}", user: account, permission: LookUpUsers),
    route!("POST /admin/users/{id}/suspend", user: suspend, permission: Suspend, body: Reasoned),
    route!("POST /admin/users/{id}/unsuspend", user: unsuspend, permission: Suspend, body: Reasoned),
    route!("POST /admin/users/{id}/grant-usage", user: grant_usage, permission: GrantUsage, body: Grant),
    route!("GET /admin/stats", user: stats, permission: ViewStats),
    route!("GET /admin/audit", user: audit, permission: ViewAudit),
];

fn admin<'a>(ctx: Ctx<'a>) -> Admin<'a> {
    let app = ctx.app;
    Admin {
        users: &app.users,
        sessions: &app.sessions,
        subscriptions: &app.subscriptions,
        audit: &app.audit,
        billing: &app.config.billing,
        push: voice_core::assemble::push(app),
    }
}

fn actor<'a>(ctx: Ctx<'a>, caller: &'a Caller) -> Actor<'a> {
    Actor { user: &caller.user, request_id: ctx.request_id }
}

/// The `{id}` of the path: a user id, percent-decoded (`auth0%7C…` is `auth0|…`).
fn target(ctx: Ctx<'_>) -> Result<UserId, ApiError> {
    UserId::from_path(path_param(ctx.req, "id").unwrap_or_default()).ok_or_else(|| ApiError::not_found("user"))
}

/// `GET /admin/users?email=…` or `?id=…`: the matching accounts.
#[tracing::instrument(skip_all)]
async fn lookup(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let by = match (query(ctx.req, "email"), query(ctx.req, "id")) {
        (Some(email), None) => {
            Lookup::Email(Email::parse(email).map_err(|_| ApiError::validation("email", "is not an email address"))?)
        }
        (None, Some(id)) => Lookup::Id(UserId::parse(id).map_err(|_| ApiError::validation("id", "is not a user id"))?),
        _ => return Err(ApiError::validation("email", "give exactly one of email or id")),
    };
    let users = admin(ctx).lookup(&actor(ctx, &caller), by, ctx.app.clock.now()).await?;
    ok(&serde_json::json!({ "users": users }))
}

#[tracing::instrument(skip_all)]
async fn account(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = target(ctx)?;
    ok(&admin(ctx).account(&actor(ctx, &caller), &id, ctx.app.clock.now()).await?)
}

/// The body of a suspension or its lifting: why (the audit log keeps it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reasoned {
    pub reason: String,
}

#[tracing::instrument(skip_all)]
async fn suspend(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = target(ctx)?;
    let body: Reasoned = json_body(ctx.req, 4 * 1024)?;
    let why = reason(&body.reason)?;
    ok(&admin(ctx).suspend(&actor(ctx, &caller), &id, &why, ctx.app.clock.now()).await?)
}

#[tracing::instrument(skip_all)]
async fn unsuspend(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = target(ctx)?;
    let body: Reasoned = json_body(ctx.req, 4 * 1024)?;
    let why = reason(&body.reason)?;
    ok(&admin(ctx).unsuspend(&actor(ctx, &caller), &id, &why, ctx.app.clock.now()).await?)
}

/// `POST /admin/users/{id}/grant-usage`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(deserialize_with = "voice_core::domain::json::whole_number")]
    pub recordings: u32,
    pub reason: String,
}

#[tracing::instrument(skip_all)]
async fn grant_usage(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = target(ctx)?;
    let body: Grant = json_body(ctx.req, 4 * 1024)?;
    let why = reason(&body.reason)?;
    ok(&admin(ctx).grant_usage(&actor(ctx, &caller), &id, body.recordings, &why, ctx.app.clock.now()).await?)
}

#[tracing::instrument(skip_all)]
async fn stats(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&admin(ctx).stats(&actor(ctx, &caller), ctx.app.clock.now()).await?)
}

/// `GET /admin/audit?month=YYYY-MM&limit=&cursor=`: a month's entries, newest first.
#[tracing::instrument(skip_all)]
async fn audit(ctx: Ctx<'_>, _caller: Caller) -> HttpResult {
    let month = match query(ctx.req, "month") {
        None => UsagePeriod::containing(ctx.app.clock.now()),
        Some(raw) => raw.parse().map_err(|_| ApiError::validation("month", "must be written YYYY-MM"))?,
    };
    let limit = page_limit(ctx.req, 50, 200)?;
    let cursor = match query(ctx.req, "cursor") {
        None => None,
        Some(raw) => Some(Ulid::parse(raw).ok_or_else(|| ApiError::validation("cursor", "is not a page cursor"))?),
    };
    let (entries, next) = ctx.app.audit.list(month, limit, cursor.as_ref()).await?;
    ok(&serde_json::json!({ "entries": entries, "nextCursor": next }))
}
