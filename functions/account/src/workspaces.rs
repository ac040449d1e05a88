//! Workspaces (see `flows::workspaces`): made by anyone signed in, reached only by their
//! members, each route asking the caller's role for one permission.

use lambda_http::http::StatusCode;
use voice_core::{
    ApiError,
    domain::workspaces::{
        Acceptance, NewInvitation, NewWorkspace, Permission, RoleChange, SeatLimit, Transfer, WorkspaceId,
        WorkspaceRole,
    },
    flows::workspaces::Actor,
    http::{Caller, Ctx, HttpResult, json, json_body, ok, path_param},
};

fn actor<'a>(ctx: &Ctx<'a>, caller: &'a Caller) -> Actor<'a> {
    Actor { user: &caller.user, request_id: ctx.request_id }
}

fn param<'a>(ctx: &Ctx<'a>, name: &str, what: &str) -> Result<&'a str, ApiError> {
    path_param(ctx.req, name).ok_or_else(|| ApiError::not_found(what))
}

/// `POST /workspaces {name}`: the caller becomes its OWNER.
#[tracing::instrument(skip_all)]
pub async fn create(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let body: NewWorkspace = json_body(ctx.req, 1024)?;
    let made =
        voice_core::assemble::teams(ctx.app).create(actor(&ctx, &caller), &body.name, ctx.app.clock.now()).await?;
    Ok(json(StatusCode::CREATED, &made))
}

/// `GET /workspaces`: the caller's workspaces and their role in each.
#[tracing::instrument(skip_all)]
pub async fn mine(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    ok(&serde_json::json!({ "workspaces": ctx.app.workspaces.of_user(&caller.user.id).await? }))
}

#[tracing::instrument(skip_all)]
pub async fn view(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    ok(&voice_core::assemble::teams(ctx.app).view(&caller.user, id).await?)
}

/// `GET /workspaces/{id}/usage`: the pooled allowance this month, per member.
#[tracing::instrument(skip_all)]
pub async fn usage(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    ok(&voice_core::assemble::teams(ctx.app).usage(&caller.user, id, ctx.app.clock.now()).await?)
}

/// `POST /workspaces/{id}/api-keys {name, monthlyCharacterLimit?}`: a key that speaks in the
/// workspace as the caller; the key is in this answer and nowhere else, ever.
#[tracing::instrument(skip_all)]
pub async fn create_key(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let body: super::NewKeyBody = json_body(ctx.req, 1024)?;
    let name = super::key_name(&body.name)?;
    let budget = voice_core::flows::api_keys::character_budget(body.monthly_character_limit)?;
    let teams = voice_core::assemble::teams(ctx.app);
    let made = teams.create_key(actor(&ctx, &caller), id, &name, budget, ctx.app.clock.now()).await?;
    let mut body = serde_json::to_value(&made.meta).expect("key metadata serializes");
    body["key"] = made.key.into();
    Ok(json(StatusCode::CREATED, &body))
}

/// `GET /workspaces/{id}/api-keys`.
#[tracing::instrument(skip_all)]
pub async fn keys(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    ok(&serde_json::json!({ "keys": voice_core::assemble::teams(ctx.app).keys(&caller.user, id).await? }))
}

/// `DELETE /workspaces/{id}/api-keys/{keyId}`.
#[tracing::instrument(skip_all)]
pub async fn revoke_key(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let key = param(&ctx, "keyId", "API key")?;
    let teams = voice_core::assemble::teams(ctx.app);
    teams.revoke_key(actor(&ctx, &caller), id, key, ctx.app.clock.now()).await?;
    ok(&serde_json::json!({ "revoked": key }))
}

/// `DELETE /workspaces/{id}`: with a sign-in of the last 10 minutes, as erasing an account.
#[tracing::instrument(skip_all)]
pub async fn delete(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let now = ctx.app.clock.now();
    let teams = voice_core::assemble::teams(ctx.app);
    // The role first: a non-member learns nothing, not even that a sign-in would be asked for.
    let member = teams.authorize(id, &caller.user, Permission::Delete).await?;
    super::signed_in_lately(&ctx, &caller, "deleting a workspace")?;
    // Marked before anything goes: a voice, key or member put in it from now on is undone by
    // its writer (`Workspaces::mark_deleting`).
    ctx.app.workspaces.mark_deleting(&member.workspace_id).await?;
    // Billing ends first: a crash after it leaves a workspace without TEAM, never a TEAM
    // billing a workspace that is gone.
    let ended = voice_core::assemble::seats(ctx.app).await?.end(&member.workspace_id).await?;
    // Then its shared voices (at ElevenLabs, their samples): the rows that list them go last.
    voice_core::assemble::voice_removal(ctx.app).await?.delete_library(&member.workspace_id, now).await?;
    teams.delete(actor(&ctx, &caller), id, now).await?;
    if ended > 0 {
        tracing::info!(workspace_id = id, ended, "the deleted workspace's TEAM subscription was cancelled");
    }
    ok(&serde_json::json!({ "deleted": id }))
}

#[tracing::instrument(skip_all)]
pub async fn members(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    ok(&serde_json::json!({ "members": voice_core::assemble::teams(ctx.app).members(&caller.user, id).await? }))
}

/// `PATCH /workspaces/{id}/members/{userId} {role}`.
#[tracing::instrument(skip_all)]
pub async fn change_role(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let (id, user) = (param(&ctx, "id", "workspace")?, param(&ctx, "userId", "member")?);
    let body: RoleChange = json_body(ctx.req, 1024)?;
    let teams = voice_core::assemble::teams(ctx.app);
    ok(&teams.change_role(actor(&ctx, &caller), id, user, body.role, ctx.app.clock.now()).await?)
}

/// `DELETE /workspaces/{id}/members/{userId}`: removes a member, or (one's own id) leaves.
#[tracing::instrument(skip_all)]
pub async fn remove(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let (id, user) = (param(&ctx, "id", "workspace")?, param(&ctx, "userId", "member")?);
    let teams = voice_core::assemble::teams(ctx.app);
    let removed = teams.remove(actor(&ctx, &caller), id, user, ctx.app.clock.now()).await?;
    follow_members(&ctx, &removed.workspace_id).await;
    if removed.role == WorkspaceRole::Owner {
        keep_billing_contact(&ctx, &removed.workspace_id).await;
    }
    ok(&serde_json::json!({ "removed": removed.user_id }))
}

/// `POST /workspaces/{id}/transfer {userId}`.
#[tracing::instrument(skip_all)]
pub async fn transfer(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let body: Transfer = json_body(ctx.req, 1024)?;
    let teams = voice_core::assemble::teams(ctx.app);
    let owner = teams.transfer(actor(&ctx, &caller), id, &body.user_id, ctx.app.clock.now()).await?;
    keep_billing_contact(&ctx, &owner.workspace_id).await;
    ok(&owner)
}

/// After OWNERs change: the workspace's billing contact stays an OWNER (best effort; see
/// `flows::seats::keep_billing_contact`).
async fn keep_billing_contact(ctx: &Ctx<'_>, workspace: &WorkspaceId) {
    let workspace = match ctx.app.workspaces.get(workspace).await {
        Ok(Some(workspace)) if workspace.stripe_customer_id.is_some() => workspace,
        Ok(_) => return,
        Err(error) => return tracing::warn!(error = format!("{error:#}"), "could not read the workspace"),
    };
    let kept = match ctx.app.stripe().await {
        Ok(stripe) => voice_core::flows::seats::keep_billing_contact(stripe, &ctx.app.workspaces, &workspace).await,
        Err(error) => Err(error),
    };
    if let Err(error) = kept {
        tracing::warn!(error = format!("{error:#}"), "the billing contact could not follow the OWNERs now");
    }
}

/// `POST /workspaces/{id}/invitations {email, role}`: the link goes by email only.
#[tracing::instrument(skip_all)]
pub async fn invite(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let body: NewInvitation = json_body(ctx.req, 1024)?;
    let teams = voice_core::assemble::teams(ctx.app);
    let invitation = teams.invite(actor(&ctx, &caller), id, &body, ctx.app.clock.now()).await?;
    Ok(json(StatusCode::CREATED, &invitation))
}

#[tracing::instrument(skip_all)]
pub async fn invitations(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let listed = voice_core::assemble::teams(ctx.app).invitations(&caller.user, id).await?;
    ok(&serde_json::json!({ "invitations": listed }))
}

#[tracing::instrument(skip_all)]
pub async fn resend(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let (id, invitation) = (param(&ctx, "id", "workspace")?, param(&ctx, "invitationId", "invitation")?);
    let teams = voice_core::assemble::teams(ctx.app);
    ok(&teams.resend(actor(&ctx, &caller), id, invitation, ctx.app.clock.now()).await?)
}

#[tracing::instrument(skip_all)]
pub async fn revoke(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let (id, invitation) = (param(&ctx, "id", "workspace")?, param(&ctx, "invitationId", "invitation")?);
    let teams = voice_core::assemble::teams(ctx.app);
    ok(&teams.revoke(actor(&ctx, &caller), id, invitation, ctx.app.clock.now()).await?)
}

/// `POST /invitations/accept {token}`.
#[tracing::instrument(skip_all)]
pub async fn accept(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let body: Acceptance = json_body(ctx.req, 1024)?;
    let teams = voice_core::assemble::teams(ctx.app);
    let member = teams.accept(actor(&ctx, &caller), &body.token, ctx.app.clock.now()).await?;
    follow_members(&ctx, &member.workspace_id).await;
    ok(&member)
}

/// After a join or a departure, a workspace with TEAM is billed for its members now (best
/// effort: the billing sync corrects what this misses, see `flows::seats`).
async fn follow_members(ctx: &Ctx<'_>, workspace: &WorkspaceId) {
    let workspace = match ctx.app.workspaces.get(workspace).await {
        Ok(Some(workspace)) if workspace.team_live() => workspace,
        Ok(_) => return,
        Err(error) => {
            return tracing::warn!(error = format!("{error:#}"), "could not read the workspace to bill its members");
        }
    };
    match voice_core::assemble::seats(ctx.app).await {
        Ok(seats) => seats.follow_members(&workspace).await,
        Err(error) => tracing::warn!(error = format!("{error:#}"), "Stripe is not available to bill the members"),
    }
}

/// `PATCH /workspaces/{id}/seats {seatLimit}`: the most seats TEAM may bill (never below the
/// members).
#[tracing::instrument(skip_all)]
pub async fn set_seats(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let body: SeatLimit = json_body(ctx.req, 1024)?;
    let teams = voice_core::assemble::teams(ctx.app);
    let member = teams.authorize(id, &caller.user, Permission::ManageBilling).await?;
    let seats = voice_core::assemble::seats(ctx.app).await?;
    seats.set_limit(actor(&ctx, &caller), &member, &body, ctx.app.clock.now()).await?;
    ok(&teams.view(&caller.user, id).await?)
}

/// `POST /workspaces/{id}/billing/checkout {seatLimit}`: TEAM through Stripe Checkout, paid by
/// the workspace's own customer at one seat per member.
#[tracing::instrument(skip_all)]
pub async fn checkout(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let id = param(&ctx, "id", "workspace")?;
    let body: SeatLimit = json_body(ctx.req, 1024)?;
    let member = voice_core::assemble::teams(ctx.app).authorize(id, &caller.user, Permission::ManageBilling).await?;
    let seats = voice_core::assemble::seats(ctx.app).await?;
    let url = seats.checkout(actor(&ctx, &caller), &member, &body, ctx.app.clock.now()).await?;
    ok(&serde_json::json!({ "sessionUrl": url }))
}
