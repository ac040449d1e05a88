//! Workspaces: who may do what in a team, invitations by email, and membership changes that
//! apply from the next request (every route reads the caller's membership, strongly consistent,
//! and asks it for a permission; nothing is cached).
//!
//! A workspace of others answers NOT_FOUND, exactly as one that does not exist; a member without
//! the permission gets FORBIDDEN naming it. Every change is in the audit log with its actor and
//! workspace.

use serde::Serialize;
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use url::Url;

use crate::{
    domain::{
        ids::{Ulid, UserId},
        push::{Event, WorkspaceChange},
        usage::UsagePeriod,
        user::User,
        workspaces::{
            INVITATION_DAYS, InvitationToken, NewInvitation, Permission, WorkspaceId, WorkspaceRole, workspace_name,
        },
    },
    error::ApiError,
    flows::push::Push,
    store::{
        api_keys::{ApiKeys, NewKey},
        audit::{AuditEntry, AuditLog},
        users::Users,
        workspaces::{
            Held, Invitation, InvitationStatus, Member, PoolUsage, Refused, Workspace, WorkspaceKey, Workspaces,
        },
    },
    upstream::email::{Mailer, WorkspaceInvitationEmail},
};

/// Who acts, in which request (for the audit log).
#[derive(Clone, Copy)]
pub struct Actor<'a> {
    pub user: &'a User,
    pub request_id: &'a str,
}

/// A workspace as its member sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    #[serde(flatten)]
    pub workspace: Workspace,
    pub role: WorkspaceRole,
    pub permissions: &'static [Permission],
}

pub struct Teams<'a> {
    pub workspaces: &'a Workspaces,
    /// The workspaces' API keys (a member's go when they leave).
    pub api_keys: &'a ApiKeys,
    /// Whose erasure has begun (a person being erased joins no workspace).
    pub users: &'a Users,
    pub audit: &'a AuditLog,
    /// The invitation emails; None: invitations cannot be sent.
    pub mailer: Option<&'a Mailer>,
    /// Where an invitation's link goes (the web client).
    pub app_url: &'a Url,
    /// Live updates: every member's open pages learn of a change in the workspace.
    pub push: Option<Push<'a>>,
}

/// What changed, who it concerns, and their role now.
type Change = (WorkspaceChange, UserId, Option<WorkspaceRole>);

fn workspace_id(raw: &str) -> Result<WorkspaceId, ApiError> {
    Ulid::parse(raw).ok_or_else(|| ApiError::not_found("workspace"))
}

/// A member's id from the path: percent-decoded (`auth0%7C…` is `auth0|…`).
fn member_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::from_path(raw).ok_or_else(|| ApiError::not_found("member"))
}

fn rfc3339(at: OffsetDateTime) -> Result<String, ApiError> {
    Ok(at.format(&Rfc3339).map_err(anyhow::Error::new)?)
}

fn last_owner() -> ApiError {
    ApiError::Conflict(
        "a workspace keeps at least one OWNER: transfer ownership (POST /workspaces/{id}/transfer) or delete the \
         workspace first"
            .into(),
    )
}

/// Someone whose erasure has begun joins nothing: the erasure would not see it.
fn erasing() -> ApiError {
    ApiError::Conflict("your account is being erased; it can join no workspace".into())
}

fn changed() -> ApiError {
    ApiError::Conflict("the membership changed meanwhile; read it again and retry".into())
}

/// A workspace change in the audit log: who acted (as which member, or as an invitee), what,
/// and to whom.
pub async fn record(
    audit: &AuditLog,
    actor: Actor<'_>,
    as_member: Option<&Member>,
    action: &str,
    target: Option<&UserId>,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        audit_id: Ulid::generate(now),
        at: rfc3339(now)?,
        actor_id: actor.user.id.to_string(),
        actor_role: as_member.map_or_else(|| "invitee".to_owned(), |m| format!("workspace {}", m.role)),
        action: action.to_owned(),
        target_user_id: target.map(UserId::to_string),
        reason: None,
        request_id: actor.request_id.to_owned(),
        detail,
    };
    Ok(audit.append(&entry).await?)
}

/// `user`'s membership of workspace `id`, read now, if their role grants `permission`:
/// NOT_FOUND for a workspace they are not in (as for one that does not exist), FORBIDDEN naming
/// the permission their role lacks.
pub async fn member_who_can(
    workspaces: &Workspaces,
    id: &WorkspaceId,
    user: &UserId,
    permission: Permission,
) -> Result<Member, ApiError> {
    let member = workspaces.member(id, user).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
    if !member.role.can(permission) {
        return Err(ApiError::Forbidden(format!(
            "your role in this workspace ({}) does not allow {}",
            member.role,
            permission.as_str()
        )));
    }
    Ok(member)
}

/// [`member_who_can`] for a workspace id from a path.
pub async fn authorize(
    workspaces: &Workspaces,
    raw_id: &str,
    user: &UserId,
    permission: Permission,
) -> Result<Member, ApiError> {
    member_who_can(workspaces, &workspace_id(raw_id)?, user, permission).await
}

impl Teams<'_> {
    /// The caller's membership of workspace `raw_id` if their role grants `permission`.
    pub async fn authorize(&self, raw_id: &str, user: &User, permission: Permission) -> Result<Member, ApiError> {
        authorize(self.workspaces, raw_id, &user.id, permission).await
    }

    /// Tells `people` (the members, and whoever just left) that the workspace changed.
    async fn announce(&self, people: &[UserId], workspace: &WorkspaceId, change: Change, now: OffsetDateTime) {
        let Some(push) = &self.push else { return };
        let (change, user_id, role) = change;
        let event = Event::WorkspaceChanged { workspace_id: workspace.clone(), change, user_id, role };
        push.notify_all(people, &event, now.unix_timestamp()).await;
    }

    /// The workspace's members now, and `also` (who just left): the people to tell of a change.
    async fn concerned(&self, workspace: &WorkspaceId, also: Option<&UserId>) -> Vec<UserId> {
        if self.push.is_none() {
            return Vec::new();
        }
        let mut people = match self.workspaces.members(workspace).await {
            Ok(members) => members.into_iter().map(|m| m.user_id).collect(),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "could not list the members to tell of a change");
                Vec::new()
            }
        };
        if let Some(also) = also
            && !people.contains(also)
        {
            people.push(also.clone());
        }
        people
    }

    /// A new workspace with the caller as its OWNER.
    pub async fn create(&self, actor: Actor<'_>, name: &str, now: OffsetDateTime) -> Result<WorkspaceView, ApiError> {
        let name = workspace_name(name)?;
        let id = Ulid::generate(now);
        let user = actor.user;
        let owner_check = self.users.not_erasing(&user.id)?;
        let workspace = self
            .workspaces
            .create(&id, &name, (&user.id, user.email.as_str()), owner_check, &rfc3339(now)?)
            .await?
            .map_err(|_| erasing())?;
        let detail = json!({ "workspaceId": id, "name": name });
        record(self.audit, actor, None, "workspace-create", None, detail, now).await?;
        let role = WorkspaceRole::Owner;
        Ok(WorkspaceView { workspace, role, permissions: role.permissions() })
    }

    pub async fn view(&self, user: &User, raw_id: &str) -> Result<WorkspaceView, ApiError> {
        let member = self.authorize(raw_id, user, Permission::Read).await?;
        let workspace =
            self.workspaces.get(&member.workspace_id).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
        Ok(WorkspaceView { workspace, role: member.role, permissions: member.role.permissions() })
    }

    /// The pooled allowance this month, and each member's share of it.
    pub async fn usage(&self, user: &User, raw_id: &str, now: OffsetDateTime) -> Result<PoolUsage, ApiError> {
        let member = self.authorize(raw_id, user, Permission::Read).await?;
        let usage = self.workspaces.pool_usage(&member.workspace_id, UsagePeriod::containing(now)).await?;
        usage.ok_or_else(|| ApiError::not_found("workspace"))
    }

    pub async fn members(&self, user: &User, raw_id: &str) -> Result<Vec<Member>, ApiError> {
        let member = self.authorize(raw_id, user, Permission::Read).await?;
        Ok(self.workspaces.members(&member.workspace_id).await?)
    }

    /// The member `raw_user` of the workspace (NOT_FOUND when there is none).
    async fn other(&self, caller: &Member, raw_user: &str) -> Result<Member, ApiError> {
        let user = member_id(raw_user)?;
        self.workspaces.member(&caller.workspace_id, &user).await?.ok_or_else(|| ApiError::not_found("member"))
    }

    /// Changes a member's role. Managing members may change roles below OWNER; granting or
    /// taking away OWNER needs managing owners; the last OWNER keeps it.
    pub async fn change_role(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        raw_user: &str,
        to: WorkspaceRole,
        now: OffsetDateTime,
    ) -> Result<Member, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageMembers).await?;
        let target = self.other(&caller, raw_user).await?;
        if (target.role.needs_owner() || to.needs_owner()) && !caller.role.can(Permission::ManageOwners) {
            return Err(ApiError::Forbidden(format!(
                "only an OWNER may grant or take away OWNER ({} is your role)",
                caller.role
            )));
        }
        if target.role == to {
            return Ok(target);
        }
        self.workspaces.set_role(&target, to).await?.map_err(|refused| match refused {
            Refused::LastOwner => last_owner(),
            _ => changed(),
        })?;
        let detail = json!({ "workspaceId": target.workspace_id, "from": target.role, "to": to });
        record(self.audit, actor, Some(&caller), "workspace-role-change", Some(&target.user_id), detail, now).await?;
        let people = self.concerned(&target.workspace_id, None).await;
        let change = (WorkspaceChange::Role, target.user_id.clone(), Some(to));
        self.announce(&people, &target.workspace_id, change, now).await;
        Ok(Member { role: to, ..target })
    }

    /// Removes a member, or (their own id) leaves. Their workspace access ends with their next
    /// request; what they made in the workspace stays, their personal account is untouched.
    pub async fn remove(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        raw_user: &str,
        now: OffsetDateTime,
    ) -> Result<Member, ApiError> {
        let leaving = member_id(raw_user)? == actor.user.id;
        let needs = if leaving { Permission::Read } else { Permission::ManageMembers };
        let caller = self.authorize(raw_id, actor.user, needs).await?;
        let target = if leaving { caller.clone() } else { self.other(&caller, raw_user).await? };
        if !leaving && target.role.needs_owner() && !caller.role.can(Permission::ManageOwners) {
            return Err(ApiError::Forbidden("only an OWNER may remove an OWNER".into()));
        }
        self.workspaces.remove(&target).await?.map_err(|refused| match refused {
            Refused::LastOwner => last_owner(),
            _ => changed(),
        })?;
        // Their keys spoke as them: they go with them (their own keys and data stay theirs).
        let keys = self.workspaces.revoke_keys(self.api_keys, &target.workspace_id, Some(&target.user_id)).await?;
        let action = if leaving { "workspace-leave" } else { "workspace-remove" };
        let detail = json!({ "workspaceId": target.workspace_id, "role": target.role, "keysRevoked": keys });
        record(self.audit, actor, Some(&caller), action, Some(&target.user_id), detail, now).await?;
        let people = self.concerned(&target.workspace_id, Some(&target.user_id)).await;
        let change = if leaving { WorkspaceChange::Left } else { WorkspaceChange::Removed };
        self.announce(&people, &target.workspace_id, (change, target.user_id.clone(), None), now).await;
        Ok(target)
    }

    /// Makes another member OWNER; the caller stays, as ADMIN.
    pub async fn transfer(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        raw_user: &str,
        now: OffsetDateTime,
    ) -> Result<Member, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageOwners).await?;
        let target = self.other(&caller, raw_user).await?;
        if target.user_id == caller.user_id {
            return Err(ApiError::validation("userId", "is you: ownership goes to another member"));
        }
        self.workspaces.transfer(&caller, &target).await?.map_err(|_| changed())?;
        let detail = json!({ "workspaceId": target.workspace_id, "from": target.role });
        record(self.audit, actor, Some(&caller), "workspace-transfer", Some(&target.user_id), detail, now).await?;
        let people = self.concerned(&target.workspace_id, None).await;
        let change = (WorkspaceChange::Transferred, target.user_id.clone(), Some(WorkspaceRole::Owner));
        self.announce(&people, &target.workspace_id, change, now).await;
        Ok(Member { role: WorkspaceRole::Owner, ..target })
    }

    /// Invites `email` as `role`: a single-use link, valid 7 days, for that address only.
    pub async fn invite(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        asked: &NewInvitation,
        now: OffsetDateTime,
    ) -> Result<Invitation, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageMembers).await?;
        let (email, role) = asked.check()?;
        let mailer = self.mailer()?;
        let workspace =
            self.workspaces.get(&caller.workspace_id).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
        let invitation_id = Ulid::generate(now);
        let token = InvitationToken::new(&caller.workspace_id, &invitation_id);
        let invitation = Invitation {
            invitation_id,
            workspace_id: caller.workspace_id.clone(),
            email: email.as_str().to_lowercase(),
            role,
            invited_by: actor.user.id.clone(),
            created_at: rfc3339(now)?,
            expires_at: now.unix_timestamp() + INVITATION_DAYS * 86_400,
            status: InvitationStatus::Pending,
            token_hash: token.hash(),
        };
        self.workspaces.invite(&invitation).await?;
        self.send(mailer, &workspace, &invitation, &token, actor.user).await?;
        let detail = json!({ "workspaceId": invitation.workspace_id, "invitationId": invitation.invitation_id,
                             "email": invitation.email, "role": role });
        record(self.audit, actor, Some(&caller), "workspace-invite", None, detail, now).await?;
        Ok(invitation)
    }

    fn mailer(&self) -> Result<&Mailer, ApiError> {
        self.mailer.ok_or_else(|| ApiError::locked("invitations are sent by email, and no email sender is configured"))
    }

    async fn send(
        &self,
        mailer: &Mailer,
        workspace: &Workspace,
        invitation: &Invitation,
        token: &InvitationToken,
        inviter: &User,
    ) -> Result<(), ApiError> {
        // In the fragment: the token never reaches a server's logs or a Referer.
        let mut link = self.app_url.clone();
        link.set_fragment(Some(&format!("invitation={}", token.as_str())));
        let expires = OffsetDateTime::from_unix_timestamp(invitation.expires_at).map_err(anyhow::Error::new)?;
        let email = WorkspaceInvitationEmail {
            workspace: &workspace.name,
            inviter: inviter.name.as_deref().unwrap_or(inviter.email.as_str()),
            role: invitation.role.as_str(),
            accept_url: link.as_str(),
            expires: expires.date().to_string(),
        };
        mailer.workspace_invitation(&invitation.email, &email).await?;
        Ok(())
    }

    pub async fn invitations(&self, user: &User, raw_id: &str) -> Result<Vec<Invitation>, ApiError> {
        let caller = self.authorize(raw_id, user, Permission::ManageMembers).await?;
        Ok(self.workspaces.invitations(&caller.workspace_id).await?)
    }

    async fn pending(&self, caller: &Member, raw_invitation: &str) -> Result<Invitation, ApiError> {
        let id = Ulid::parse(raw_invitation).ok_or_else(|| ApiError::not_found("invitation"))?;
        let invitation = self.workspaces.invitation(&caller.workspace_id, &id).await?;
        let invitation = invitation.ok_or_else(|| ApiError::not_found("invitation"))?;
        match invitation.status {
            InvitationStatus::Pending => Ok(invitation),
            InvitationStatus::Accepted => Err(ApiError::Conflict("the invitation was accepted already".into())),
            InvitationStatus::Revoked => Err(ApiError::Conflict("the invitation was revoked".into())),
        }
    }

    /// Sends a pending invitation again with a new link and seven more days; the old link
    /// stops working.
    pub async fn resend(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        raw_invitation: &str,
        now: OffsetDateTime,
    ) -> Result<Invitation, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageMembers).await?;
        let mailer = self.mailer()?;
        let invitation = self.pending(&caller, raw_invitation).await?;
        let workspace =
            self.workspaces.get(&caller.workspace_id).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
        let token = InvitationToken::new(&caller.workspace_id, &invitation.invitation_id);
        let expires_at = now.unix_timestamp() + INVITATION_DAYS * 86_400;
        let id = &invitation.invitation_id;
        if !self.workspaces.reissue(&caller.workspace_id, id, &token.hash(), expires_at).await? {
            return Err(ApiError::Conflict("the invitation is no longer pending".into()));
        }
        let invitation = Invitation { expires_at, token_hash: token.hash(), ..invitation };
        self.send(mailer, &workspace, &invitation, &token, actor.user).await?;
        let detail = json!({ "workspaceId": caller.workspace_id, "invitationId": invitation.invitation_id });
        record(self.audit, actor, Some(&caller), "workspace-invite-resend", None, detail, now).await?;
        Ok(invitation)
    }

    pub async fn revoke(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        raw_invitation: &str,
        now: OffsetDateTime,
    ) -> Result<Invitation, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageMembers).await?;
        let invitation = self.pending(&caller, raw_invitation).await?;
        if !self.workspaces.revoke_invitation(&caller.workspace_id, &invitation.invitation_id).await? {
            return Err(ApiError::Conflict("the invitation is no longer pending".into()));
        }
        let detail = json!({ "workspaceId": caller.workspace_id, "invitationId": invitation.invitation_id });
        record(self.audit, actor, Some(&caller), "workspace-invite-revoke", None, detail, now).await?;
        Ok(Invitation { status: InvitationStatus::Revoked, ..invitation })
    }

    /// Accepts an invitation: only with its current token, while pending and unexpired, by the
    /// person whose (IdP-verified) address it was sent to, once.
    pub async fn accept(&self, actor: Actor<'_>, raw_token: &str, now: OffsetDateTime) -> Result<Member, ApiError> {
        let unknown = || ApiError::not_found("invitation");
        let token = InvitationToken::parse(raw_token.trim()).ok_or_else(unknown)?;
        let invitation = self.workspaces.invitation(&token.workspace_id, &token.invitation_id).await?;
        let invitation = invitation.filter(|i| i.token_hash == token.hash()).ok_or_else(unknown)?;
        match invitation.status {
            InvitationStatus::Accepted => {
                return Err(ApiError::Conflict("this invitation was accepted already".into()));
            }
            InvitationStatus::Revoked => return Err(ApiError::Conflict("this invitation was revoked".into())),
            InvitationStatus::Pending => {}
        }
        if invitation.expires_at <= now.unix_timestamp() {
            return Err(ApiError::Conflict("this invitation has expired; ask for a new one".into()));
        }
        let user = actor.user;
        if !user.email.as_str().eq_ignore_ascii_case(&invitation.email) {
            return Err(ApiError::Forbidden(
                "this invitation is for another email address: sign in as the person it was sent to".into(),
            ));
        }
        let workspace = self.workspaces.get(&invitation.workspace_id).await?;
        let workspace = workspace.filter(|w| !w.deleting).ok_or_else(|| ApiError::not_found("workspace"))?;
        let at = rfc3339(now)?;
        let person = (&user.id, user.email.as_str());
        let user_check = self.users.not_erasing(&user.id)?;
        let accepted =
            self.workspaces.accept(&invitation, &workspace.name, person, user_check, now.unix_timestamp(), &at).await?;
        // No seat, or the workspace is being deleted since it was read (the same condition).
        if let Err(Refused::NoSeat) = accepted
            && !self.workspaces.is_open(&invitation.workspace_id).await?
        {
            return Err(ApiError::not_found("workspace"));
        }
        accepted.map_err(|refused| match refused {
            Refused::AlreadyMember => ApiError::Conflict("you are a member of this workspace already".into()),
            Refused::Erasing => erasing(),
            Refused::NoSeat => ApiError::Conflict(format!(
                "every seat of the workspace is taken ({} members, {} seats): its OWNER can raise the seat limit \
                 (PATCH /workspaces/{{id}}/seats, with TEAM) or free a seat",
                workspace.members, workspace.seats
            )),
            _ => ApiError::Conflict("this invitation was used, revoked or renewed meanwhile".into()),
        })?;
        let member = Member {
            workspace_id: workspace.workspace_id.clone(),
            workspace_name: workspace.name,
            user_id: user.id.clone(),
            email: user.email.to_string(),
            role: invitation.role,
            joined_at: at,
        };
        let detail = json!({ "workspaceId": member.workspace_id, "invitationId": invitation.invitation_id,
                             "role": member.role });
        record(self.audit, actor, Some(&member), "workspace-join", Some(&user.id), detail, now).await?;
        let people = self.concerned(&member.workspace_id, None).await;
        let change = (WorkspaceChange::Joined, user.id.clone(), Some(member.role));
        self.announce(&people, &member.workspace_id, change, now).await;
        Ok(member)
    }

    /// Deletes the workspace and everything in it (the caller has signed in lately: the route
    /// checks).
    pub async fn delete(&self, actor: Actor<'_>, raw_id: &str, now: OffsetDateTime) -> Result<usize, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::Delete).await?;
        // Who to tell, while they are still members.
        let people = self.concerned(&caller.workspace_id, None).await;
        self.workspaces.revoke_keys(self.api_keys, &caller.workspace_id, None).await?;
        let removed = self.workspaces.delete(&caller.workspace_id).await?;
        let detail = json!({ "workspaceId": caller.workspace_id, "rows": removed });
        record(self.audit, actor, Some(&caller), "workspace-delete", None, detail, now).await?;
        let change = (WorkspaceChange::Deleted, caller.user_id.clone(), None);
        self.announce(&people, &caller.workspace_id, change, now).await;
        Ok(removed)
    }

    /// A key that speaks in the workspace as the caller (permission `manage-keys`); it takes one
    /// of the workspace's key slots, not the caller's plan's. The key is in this answer only.
    pub async fn create_key(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        name: &str,
        budget: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<NewKey, ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageKeys).await?;
        let id = &caller.workspace_id;
        let workspace = self.workspaces.get(id).await?.ok_or_else(|| ApiError::not_found("workspace"))?;
        let slot = self.workspaces.take_slot(&workspace, Held::ApiKeys).await?.ok_or_else(|| {
            let slots = workspace.slots(Held::ApiKeys);
            ApiError::LimitReached(format!("the workspace holds {slots} API keys at once; revoke one first"))
        })?;
        let made = async {
            let made =
                self.api_keys.create(&caller.user_id, Some(id), name, budget, rfc3339(now)?, Ulid::generate(now));
            let made = made.await?;
            if let Err(error) = self.workspaces.put_key(&made.meta, &caller.user_id).await {
                // Unlisted, it could never be revoked by the workspace: it goes.
                self.api_keys.discard(&made.meta).await?;
                return Err(error.into());
            }
            Ok::<_, ApiError>(made)
        }
        .await;
        let made = match made {
            Ok(made) => {
                slot.commit();
                made
            }
            Err(error) => {
                slot.give_back().await?;
                return Err(error);
            }
        };
        // Listed while the workspace was being deleted, maybe after the deletion revoked its
        // keys: revoked here (its listing's delete gives the slot back).
        if !self.workspaces.is_open(id).await? {
            self.workspaces.revoke_key(self.api_keys, id, &made.meta.key_id).await?;
            return Err(ApiError::not_found("workspace"));
        }
        let detail = json!({ "workspaceId": id, "keyId": made.meta.key_id, "prefix": made.meta.prefix });
        record(self.audit, actor, Some(&caller), "workspace-key-create", None, detail, now).await?;
        Ok(made)
    }

    /// The workspace's keys (permission `manage-keys`).
    pub async fn keys(&self, user: &User, raw_id: &str) -> Result<Vec<WorkspaceKey>, ApiError> {
        let caller = self.authorize(raw_id, user, Permission::ManageKeys).await?;
        Ok(self.workspaces.keys(&caller.workspace_id).await?)
    }

    /// Revokes one of the workspace's keys (permission `manage-keys`): it fails from its next
    /// request.
    pub async fn revoke_key(
        &self,
        actor: Actor<'_>,
        raw_id: &str,
        key_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let caller = self.authorize(raw_id, actor.user, Permission::ManageKeys).await?;
        if !self.workspaces.revoke_key(self.api_keys, &caller.workspace_id, key_id).await? {
            return Err(ApiError::not_found("API key"));
        }
        let detail = json!({ "workspaceId": caller.workspace_id, "keyId": key_id });
        record(self.audit, actor, Some(&caller), "workspace-key-revoke", None, detail, now).await
    }

    /// Workspaces whose only OWNER `user` is: erasing them would leave it without one.
    pub async fn solely_owned(&self, user: &UserId) -> Result<Vec<Member>, ApiError> {
        let mut sole = Vec::new();
        for member in self.workspaces.of_user(user).await? {
            if member.role != WorkspaceRole::Owner {
                continue;
            }
            let workspace = self.workspaces.get(&member.workspace_id).await?;
            if workspace.is_some_and(|w| w.owners <= 1) {
                sole.push(member);
            }
        }
        Ok(sole)
    }
}
