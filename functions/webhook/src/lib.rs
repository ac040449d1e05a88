//! `POST /billing/webhook`: Stripe's signed events, verified over the raw body, then applied
//! once however often they are delivered (`flows::stripe_events`).

use voice_core::{
    ApiError, App,
    domain::{
        ids::{Ulid, UserId},
        push,
        subscription::SubscriptionStatus,
    },
    flows::{billing::Applied, billing_alerts::BillingAlerts, stripe_events::StripeEvents},
    http::{Ctx, HttpResult, Route, header, ok},
    route,
    upstream::stripe::{signature, types::Event},
};

pub const ROUTES: &[Route] = &[route!("POST /billing/webhook", public: webhook)];

/// Stripe's events are far smaller; anything larger is not from Stripe.
const MAX_BODY: usize = 256 * 1024;

#[tracing::instrument(skip_all)]
async fn webhook(ctx: Ctx<'_>) -> HttpResult {
    let app = ctx.app;
    let payload: &[u8] = ctx.req.body().as_ref();
    if payload.len() > MAX_BODY {
        return Err(ApiError::validation("body", format!("larger than {MAX_BODY} bytes")));
    }
    // Everything that can fail before the work (secrets, clients) happens before the claim.
    let secrets = app.stripe_webhook_secrets().await?;
    let stripe = app.stripe().await?;
    let now = app.clock.now();
    signature::verify(payload, header(ctx.req, "stripe-signature"), secrets, now.unix_timestamp())
        .map_err(|e| ApiError::validation("Stripe-Signature", e.to_string()))?;
    let event: Event = serde_json::from_slice(payload).map_err(|e| ApiError::validation("body", e.to_string()))?;

    let billing = voice_core::assemble::billing(app).await?;
    let alerts = BillingAlerts {
        stripe,
        users: &app.users,
        events: &app.webhook_events,
        mailer: app.mailer(),
        settings: &app.config.billing,
        account_url: &app.config.billing.portal_return_url,
        push: voice_core::assemble::push(app),
    };
    let events = StripeEvents { billing, alerts, events: &app.webhook_events, lease: app.config.billing.webhook_lease };
    let received = events.receive(&event, now).await?;
    if let Some(Applied::Synced { user_id, tier, status, changed: true, .. }) = &received.applied
        && let (Some(push), Ok(user)) = (voice_core::assemble::push(app), UserId::parse(user_id.as_str()))
    {
        let changed = push::Event::PlanChanged { tier: *tier, status: Some(status.clone()) };
        push.notify(&user, &changed, now.unix_timestamp()).await;
    }
    if let Some(Applied::TeamSynced { workspace_id, status, seats, billed_seats, .. }) = &received.applied
        && let (Some(push), Some(id)) = (voice_core::assemble::push(app), Ulid::parse(workspace_id))
    {
        tell_members(app, &push, &id, status, (*seats, *billed_seats), now.unix_timestamp()).await;
    }
    ok(&received)
}

/// Every member's open pages learn of the workspace's new seats (best effort, as every push).
async fn tell_members(
    app: &App,
    push: &voice_core::flows::push::Push<'_>,
    workspace: &Ulid,
    status: &SubscriptionStatus,
    (seats, billed_seats): (u32, u32),
    now: i64,
) {
    let members = match app.workspaces.members(workspace).await {
        Ok(members) => members,
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "could not list the members to tell of TEAM");
            return;
        }
    };
    let event =
        push::Event::SeatsChanged { workspace_id: workspace.clone(), status: status.clone(), seats, billed_seats };
    let people: Vec<_> = members.into_iter().map(|m| m.user_id).collect();
    push.notify_all(&people, &event, now).await;
}
