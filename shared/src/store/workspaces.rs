//! Workspaces, their members and their invitations: one table, every key under the workspace's
//! id (PK `workspaceId`, SK `item`: `workspace`, `member#{userId}`, `invite#{invitationId}`), so
//! nothing of one workspace is ever read through another's key. Member rows also carry
//! `memberId` for the `member-index` (a person's workspaces). The workspace row counts its
//! members and its OWNERs; every change of either is one transaction with the member row it
//! concerns, so the last OWNER can never be removed or demoted, also by two requests at once.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::{
    Client,
    error::SdkError,
    operation::{transact_write_items::TransactWriteItemsError, update_item::builders::UpdateItemFluentBuilder},
    types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update},
};
use serde::Serialize;

use crate::{
    domain::{
        allowance::Allowance,
        ids::{Ulid, UserId},
        subscription::SubscriptionStatus,
        usage::UsagePeriod,
        workspaces::{FREE_SEATS, WorkspaceId, WorkspaceRole, key_slots, library_slots, pooled_recordings},
    },
    store::{
        api_keys::{ApiKeys, KeyMeta},
        dynamo::{self, Item, number, string},
        users::{Counters, Removed, allowance::counted_in},
        voices::Voice,
        workspace_rows::{WORKSPACE, member_key},
    },
};

const MEMBER_INDEX: &str = "member-index";
/// A workspace's API key as its listing holds it (`key#{keyId}`; the key's own row is in the
/// API keys table, found by `keyHash`).
const KEY: &str = "key#";
/// The workspace row's mark while it is being deleted.
const DELETING: &str = "deleting";

fn invite_key(invitation: &Ulid) -> String {
    format!("invite#{invitation}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub created_at: String,
    pub members: u32,
    /// How many of them are OWNERs.
    #[serde(skip)]
    pub owners: u32,
    /// The most members it may hold now (`domain::workspaces::seats`).
    pub seats: u32,
    /// The OWNER's limit: the most seats TEAM may bill.
    pub seat_limit: u32,
    /// Its TEAM subscription as last read from Stripe; None: never subscribed.
    pub team: Option<TeamSubscription>,
    /// The workspace's own Stripe customer (never a member's).
    #[serde(skip)]
    pub stripe_customer_id: Option<String>,
    /// Voices in its shared library.
    pub library_voices: u32,
    /// Its API keys.
    pub api_keys: u32,
    /// Being deleted: nothing new may be put in it (see [`Workspaces::mark_deleting`]).
    #[serde(skip)]
    pub deleting: bool,
}

impl Workspace {
    /// TEAM is live: it bills, and its seats (up to the limit) are the workspace's.
    pub fn team_live(&self) -> bool {
        self.team.as_ref().is_some_and(|t| t.status.grants_access())
    }

    /// Its pooled allowance this month while TEAM is live (generations); None without TEAM.
    pub fn pool(&self) -> Option<u64> {
        let team = self.team.as_ref().filter(|t| t.status.grants_access())?;
        Some(pooled_recordings(team.billed_seats))
    }

    /// How many of `held` it may have now.
    pub fn slots(&self, held: Held) -> u32 {
        match held {
            Held::LibraryVoices => library_slots(self.members, self.team_live()),
            Held::ApiKeys => key_slots(self.team_live()),
        }
    }
}

/// What a workspace holds a bounded number of, counted on its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Voices in its shared library.
    LibraryVoices,
    /// Its API keys.
    ApiKeys,
}

impl Held {
    fn attribute(self) -> &'static str {
        match self {
            Self::LibraryVoices => "libraryVoices",
            Self::ApiKeys => "apiKeys",
        }
    }
}

/// A slot of a workspace's taken for a thing being made: [`Slot::commit`] it when the thing is
/// stored, [`Slot::give_back`] when it failed (once: both consume it).
#[must_use = "a workspace's slot is committed or given back"]
pub struct Slot<'a> {
    workspaces: &'a Workspaces,
    workspace: WorkspaceId,
    held: Held,
}

impl Slot<'_> {
    /// The thing is stored: it holds the slot until it is removed.
    pub fn commit(self) {}

    pub async fn give_back(self) -> anyhow::Result<()> {
        self.workspaces.give_slots(&self.workspace, self.held, 1).await
    }
}

/// A workspace's API key as the workspace lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceKey {
    pub key_id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    /// The member it speaks as; it goes when they leave.
    pub made_by: UserId,
    #[serde(skip)]
    key_hash: String,
}

fn key_from(item: &Item) -> anyhow::Result<WorkspaceKey> {
    Ok(WorkspaceKey {
        key_id: dynamo::str(item, "keyId")?.to_owned(),
        name: dynamo::str(item, "name")?.to_owned(),
        prefix: dynamo::str(item, "prefix")?.to_owned(),
        created_at: dynamo::str(item, "createdAt")?.to_owned(),
        made_by: UserId::parse(dynamo::str(item, "madeBy")?).context("stored madeBy")?,
        key_hash: dynamo::str(item, "keyHash")?.to_owned(),
    })
}

/// A workspace's TEAM subscription, mirrored from Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamSubscription {
    pub subscription_id: String,
    pub status: SubscriptionStatus,
    /// The seats Stripe bills now: the subscription's quantity.
    pub billed_seats: u32,
    /// When Stripe's state was read (a fresher read is never overwritten).
    #[serde(skip)]
    pub read_at_ms: i64,
}

/// A workspace's pooled allowance this month, and each member's share of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    /// `YYYY-MM`.
    pub period: String,
    /// Generations counted in the pool this month.
    pub recordings: u64,
    pub characters: u64,
    /// The pool's size; None without a live TEAM (members speak on their own plans).
    pub limit: Option<u64>,
    pub members: Vec<MemberShare>,
}

/// What one member's generations in the workspace took of its pool this month.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberShare {
    pub user_id: UserId,
    pub email: String,
    pub recordings: u64,
    pub characters: u64,
}

/// A person's place in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub user_id: UserId,
    pub email: String,
    pub role: WorkspaceRole,
    pub joined_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
}

impl InvitationStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
        }
    }
}

/// An invitation as listed (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub invitation_id: Ulid,
    pub workspace_id: WorkspaceId,
    pub email: String,
    pub role: WorkspaceRole,
    pub invited_by: UserId,
    pub created_at: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub status: InvitationStatus,
    #[serde(skip)]
    pub token_hash: String,
}

/// Why a membership change was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The member (or invitation) is not as it was read: changed or gone meanwhile.
    Changed,
    /// It would leave the workspace without an OWNER.
    LastOwner,
    /// The person is a member already.
    AlreadyMember,
    /// The person's account is being erased (or is gone).
    Erasing,
    /// Every seat is taken (or the workspace is gone).
    NoSeat,
}

#[derive(Clone)]
pub struct Workspaces {
    client: Client,
    table: String,
}

fn workspace_from(item: &Item) -> anyhow::Result<Workspace> {
    Ok(Workspace {
        workspace_id: Ulid::parse(dynamo::str(item, "workspaceId")?).context("stored workspaceId")?,
        name: dynamo::str(item, "name")?.to_owned(),
        created_at: dynamo::str(item, "createdAt")?.to_owned(),
        members: dynamo::num(item, "members")?,
        owners: dynamo::num(item, "owners")?,
        seats: dynamo::num(item, "seats")?,
        seat_limit: dynamo::num(item, "seatLimit")?,
        team: match dynamo::opt_str(item, "subscriptionId") {
            Some(id) => Some(TeamSubscription {
                subscription_id: id.to_owned(),
                status: dynamo::str(item, "subscriptionStatus")?.parse().unwrap_or_else(|never| match never {}),
                billed_seats: dynamo::num(item, "billedSeats")?,
                read_at_ms: dynamo::num(item, "billingReadAtMs")?,
            }),
            None => None,
        },
        stripe_customer_id: dynamo::opt_str(item, "stripeCustomerId").map(String::from),
        library_voices: dynamo::opt_num(item, Held::LibraryVoices.attribute())?.unwrap_or(0),
        api_keys: dynamo::opt_num(item, Held::ApiKeys.attribute())?.unwrap_or(0),
        deleting: item.contains_key(DELETING),
    })
}

fn member_from(item: &Item) -> anyhow::Result<Member> {
    Ok(Member {
        workspace_id: Ulid::parse(dynamo::str(item, "workspaceId")?).context("stored workspaceId")?,
        workspace_name: dynamo::str(item, "workspaceName")?.to_owned(),
        user_id: UserId::parse(dynamo::str(item, "memberId")?).context("stored memberId")?,
        email: dynamo::str(item, "email")?.to_owned(),
        role: WorkspaceRole::parse(dynamo::str(item, "role")?).context("stored role")?,
        joined_at: dynamo::str(item, "joinedAt")?.to_owned(),
    })
}

fn invitation_from(item: &Item) -> anyhow::Result<Invitation> {
    let key = dynamo::str(item, "item")?;
    let status = match dynamo::str(item, "status")? {
        "pending" => InvitationStatus::Pending,
        "accepted" => InvitationStatus::Accepted,
        "revoked" => InvitationStatus::Revoked,
        other => anyhow::bail!("stored invitation status {other}"),
    };
    Ok(Invitation {
        invitation_id: key.strip_prefix("invite#").and_then(Ulid::parse).context("stored invitation key")?,
        workspace_id: Ulid::parse(dynamo::str(item, "workspaceId")?).context("stored workspaceId")?,
        email: dynamo::str(item, "email")?.to_owned(),
        role: WorkspaceRole::parse(dynamo::str(item, "role")?).context("stored role")?,
        invited_by: UserId::parse(dynamo::str(item, "invitedBy")?).context("stored invitedBy")?,
        created_at: dynamo::str(item, "createdAt")?.to_owned(),
        expires_at: dynamo::num(item, "expiresAt")?,
        status,
        token_hash: dynamo::str(item, "tokenHash")?.to_owned(),
    })
}

/// A new member's row.
fn member_item(workspace: &WorkspaceId, name: &str, user: &UserId, email: &str, role: WorkspaceRole, at: &str) -> Item {
    HashMap::from([
        ("workspaceId".to_owned(), string(workspace.as_str())),
        ("item".to_owned(), string(member_key(user))),
        ("memberId".to_owned(), string(user.as_str())),
        ("workspaceName".to_owned(), string(name)),
        ("email".to_owned(), string(email)),
        ("role".to_owned(), string(role.as_str())),
        ("joinedAt".to_owned(), string(at)),
    ])
}

impl Workspaces {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn key(&self, workspace: &WorkspaceId, item: String) -> Item {
        HashMap::from([("workspaceId".to_owned(), string(workspace.as_str())), ("item".to_owned(), string(item))])
    }

    /// Writes `items` in one transaction: Err(index) of the first whose condition failed.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> anyhow::Result<Result<(), usize>> {
        // Two transactions on the same rows at once: DynamoDB cancels one; it is tried again.
        for _ in 0..5 {
            let sent = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let Err(SdkError::ServiceError(service)) = &sent else {
                return sent.map(|_| Ok(())).context("a workspace transaction");
            };
            let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() else {
                return sent.map(|_| Ok(())).context("a workspace transaction");
            };
            let reasons = cancelled.cancellation_reasons();
            if let Some(failed) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                return Ok(Err(failed));
            }
            if !reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                return sent.map(|_| Ok(())).context("a workspace transaction");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("a workspace transaction kept conflicting with others")
    }

    /// An update of workspace `id`'s row `item`.
    fn update_row(&self, id: &WorkspaceId, item: String) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).set_key(Some(self.key(id, item)))
    }

    fn update(&self, workspace: &WorkspaceId, item: String) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder().table_name(&self.table).set_key(Some(self.key(workspace, item)))
    }

    /// A new workspace with `owner` as its one member, OWNER; `owner_check` (the owner's account
    /// not being erased) is part of the transaction.
    pub async fn create(
        &self,
        id: &WorkspaceId,
        name: &str,
        owner: (&UserId, &str),
        owner_check: TransactWriteItem,
        at: &str,
    ) -> anyhow::Result<Result<Workspace, Refused>> {
        let (owner, email) = owner;
        let row = HashMap::from([
            ("workspaceId".to_owned(), string(id.as_str())),
            ("item".to_owned(), string(WORKSPACE)),
            ("name".to_owned(), string(name)),
            ("createdAt".to_owned(), string(at)),
            ("createdBy".to_owned(), string(owner.as_str())),
            ("members".to_owned(), number(1)),
            ("owners".to_owned(), number(1)),
            ("seats".to_owned(), number(FREE_SEATS)),
            ("seatLimit".to_owned(), number(FREE_SEATS)),
        ]);
        let put = |item: Item| -> anyhow::Result<TransactWriteItem> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(workspaceId)")
                .build()?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let items = vec![put(row)?, put(member_item(id, name, owner, email, WorkspaceRole::Owner, at))?, owner_check];
        match self.transact(items).await? {
            Ok(()) => {}
            Err(2) => return Ok(Err(Refused::Erasing)),
            Err(_) => anyhow::bail!("workspace id {id} taken"),
        }
        Ok(Ok(Workspace {
            workspace_id: id.clone(),
            name: name.to_owned(),
            created_at: at.to_owned(),
            members: 1,
            owners: 1,
            seats: FREE_SEATS,
            seat_limit: FREE_SEATS,
            team: None,
            stripe_customer_id: None,
            library_voices: 0,
            api_keys: 0,
            deleting: false,
        }))
    }

    /// One row of the workspace, read strongly consistent.
    async fn row(&self, id: &WorkspaceId, item: String, what: &'static str) -> anyhow::Result<Option<Item>> {
        let read = self.client.get_item().table_name(&self.table).set_key(Some(self.key(id, item)));
        Ok(read.consistent_read(true).send().await.with_context(|| format!("reading the {what}"))?.item)
    }

    /// Marks the workspace as being deleted, before anything of it goes. What puts something
    /// new in a workspace (a shared voice, a key, a member) checks for the mark after its own
    /// write and undoes that write when it finds it (or no workspace at all): written before
    /// the mark, the deletion (which lists what to delete after marking) finds it; written
    /// after, its writer finds the mark. Either way nothing outlives the workspace.
    pub async fn mark_deleting(&self, id: &WorkspaceId) -> anyhow::Result<()> {
        let update = self
            .update_row(id, WORKSPACE.to_owned())
            .update_expression("SET #deleting = :true")
            .condition_expression("attribute_exists(workspaceId)")
            .expression_attribute_names("#deleting", DELETING)
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        // Gone already: nothing to mark.
        dynamo::conditional_update(update).await.context("marking the workspace as being deleted")?;
        Ok(())
    }

    /// The workspace exists and is not being deleted (read strongly consistent): what was just
    /// put in it stays.
    pub async fn is_open(&self, id: &WorkspaceId) -> anyhow::Result<bool> {
        Ok(self.get(id).await?.is_some_and(|w| !w.deleting))
    }

    pub async fn get(&self, id: &WorkspaceId) -> anyhow::Result<Option<Workspace>> {
        self.row(id, WORKSPACE.to_owned(), "workspace").await?.as_ref().map(workspace_from).transpose()
    }

    /// `user`'s membership of the workspace, read strongly consistent: a removal or a role
    /// change applies from the next request.
    pub async fn member(&self, id: &WorkspaceId, user: &UserId) -> anyhow::Result<Option<Member>> {
        self.row(id, member_key(user), "membership").await?.as_ref().map(member_from).transpose()
    }

    /// Every row of the workspace whose key starts with `prefix`.
    async fn rows(&self, id: &WorkspaceId, prefix: &str) -> anyhow::Result<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("workspaceId = :id AND begins_with(#item, :prefix)")
            .expression_attribute_names("#item", "item")
            .expression_attribute_values(":id", string(id.as_str()))
            .expression_attribute_values(":prefix", string(prefix))
            .consistent_read(true);
        dynamo::all_pages(query, "the workspace").await
    }

    pub async fn members(&self, id: &WorkspaceId) -> anyhow::Result<Vec<Member>> {
        self.rows(id, "member#").await?.iter().map(member_from).collect()
    }

    /// The workspaces `user` belongs to (the index is eventually consistent: a membership a
    /// moment old may be missing; each route reads the membership itself).
    pub async fn of_user(&self, user: &UserId) -> anyhow::Result<Vec<Member>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(MEMBER_INDEX)
            .key_condition_expression("memberId = :user")
            .expression_attribute_values(":user", string(user.as_str()));
        dynamo::all_pages(query, "the person's workspaces").await?.iter().map(member_from).collect()
    }

    /// The OWNER count moves by `by` (-1 only while another OWNER remains), the member count by
    /// `members_by` (+1 only into a free seat).
    fn owners_by(&self, id: &WorkspaceId, by: i32, members_by: i32) -> anyhow::Result<TransactWriteItem> {
        let mut update = self
            .update(id, WORKSPACE.to_owned())
            .update_expression("SET owners = owners + :owners, members = members + :members")
            .expression_attribute_values(":owners", number(by))
            .expression_attribute_values(":members", number(members_by));
        update = if by < 0 {
            update.condition_expression("owners > :one").expression_attribute_values(":one", number(1))
        } else if members_by > 0 {
            // No one joins a workspace being deleted.
            update
                .condition_expression(
                    "attribute_exists(workspaceId) AND members < seats AND attribute_not_exists(#deleting)",
                )
                .expression_attribute_names("#deleting", DELETING)
        } else {
            update.condition_expression("attribute_exists(workspaceId)")
        };
        Ok(TransactWriteItem::builder().update(update.build()?).build())
    }

    /// Changes `member`'s role to `to`, if it is still the role read.
    pub async fn set_role(&self, member: &Member, to: WorkspaceRole) -> anyhow::Result<Result<(), Refused>> {
        let owners = match (member.role == WorkspaceRole::Owner, to == WorkspaceRole::Owner) {
            (true, false) => -1,
            (false, true) => 1,
            _ => 0,
        };
        let update = self
            .update(&member.workspace_id, member_key(&member.user_id))
            .update_expression("SET #role = :to")
            .condition_expression("#role = :from")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":to", string(to.as_str()))
            .expression_attribute_values(":from", string(member.role.as_str()))
            .build()?;
        let items =
            vec![TransactWriteItem::builder().update(update).build(), self.owners_by(&member.workspace_id, owners, 0)?];
        Ok(self
            .transact(items)
            .await?
            .map_err(|failed| if failed == 0 { Refused::Changed } else { Refused::LastOwner }))
    }

    /// Makes `to` OWNER and `from` (an OWNER) ADMIN, at once.
    pub async fn transfer(&self, from: &Member, to: &Member) -> anyhow::Result<Result<(), Refused>> {
        let set = |member: &Member, role: WorkspaceRole| -> anyhow::Result<TransactWriteItem> {
            let update = self
                .update(&member.workspace_id, member_key(&member.user_id))
                .update_expression("SET #role = :to")
                .condition_expression("#role = :from")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":to", string(role.as_str()))
                .expression_attribute_values(":from", string(member.role.as_str()))
                .build()?;
            Ok(TransactWriteItem::builder().update(update).build())
        };
        let items = vec![set(to, WorkspaceRole::Owner)?, set(from, WorkspaceRole::Admin)?];
        Ok(self.transact(items).await?.map_err(|_| Refused::Changed))
    }

    /// Removes `member` (leaving, or removed), if still as read.
    pub async fn remove(&self, member: &Member) -> anyhow::Result<Result<(), Refused>> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(&member.workspace_id, member_key(&member.user_id))))
            .condition_expression("#role = :role")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":role", string(member.role.as_str()))
            .build()?;
        let owners = if member.role == WorkspaceRole::Owner { -1 } else { 0 };
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.owners_by(&member.workspace_id, owners, -1)?,
        ];
        Ok(self
            .transact(items)
            .await?
            .map_err(|failed| if failed == 0 { Refused::Changed } else { Refused::LastOwner }))
    }

    pub async fn invite(&self, invitation: &Invitation) -> anyhow::Result<()> {
        let item = HashMap::from([
            ("workspaceId".to_owned(), string(invitation.workspace_id.as_str())),
            ("item".to_owned(), string(invite_key(&invitation.invitation_id))),
            ("email".to_owned(), string(&invitation.email)),
            ("role".to_owned(), string(invitation.role.as_str())),
            ("invitedBy".to_owned(), string(invitation.invited_by.as_str())),
            ("createdAt".to_owned(), string(&invitation.created_at)),
            ("expiresAt".to_owned(), number(invitation.expires_at)),
            ("status".to_owned(), string(invitation.status.as_str())),
            ("tokenHash".to_owned(), string(&invitation.token_hash)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(workspaceId)")
            .build()?;
        // The workspace must still exist (a delete racing the invitation).
        let exists = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(&invitation.workspace_id, WORKSPACE.to_owned())))
            .condition_expression("attribute_exists(workspaceId)")
            .build()?;
        let items = vec![
            TransactWriteItem::builder().condition_check(exists).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        self.transact(items).await?.map_err(|_| anyhow::anyhow!("the workspace is gone"))
    }

    pub async fn invitations(&self, id: &WorkspaceId) -> anyhow::Result<Vec<Invitation>> {
        self.rows(id, "invite#").await?.iter().map(invitation_from).collect()
    }

    pub async fn invitation(&self, id: &WorkspaceId, invitation: &Ulid) -> anyhow::Result<Option<Invitation>> {
        self.row(id, invite_key(invitation), "invitation").await?.as_ref().map(invitation_from).transpose()
    }

    /// `change` made to an invitation while it is pending; false when it is not (accepted,
    /// revoked, gone).
    async fn if_pending(
        &self,
        id: &WorkspaceId,
        invitation: &Ulid,
        change: impl FnOnce(UpdateItemFluentBuilder) -> UpdateItemFluentBuilder,
        what: &'static str,
    ) -> anyhow::Result<bool> {
        let update = self
            .update_row(id, invite_key(invitation))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", string(InvitationStatus::Pending.as_str()));
        Ok(dynamo::conditional_update(change(update)).await.context(what)?.is_some())
    }

    /// Revokes a pending invitation; false when it is not pending.
    pub async fn revoke_invitation(&self, id: &WorkspaceId, invitation: &Ulid) -> anyhow::Result<bool> {
        let revoke = |update: UpdateItemFluentBuilder| {
            update
                .update_expression("SET #status = :revoked")
                .expression_attribute_values(":revoked", string(InvitationStatus::Revoked.as_str()))
        };
        self.if_pending(id, invitation, revoke, "revoking the invitation").await
    }

    /// A pending invitation gets a new token and a new expiry (the old token stops working);
    /// false when it is not pending.
    pub async fn reissue(
        &self,
        id: &WorkspaceId,
        invitation: &Ulid,
        token_hash: &str,
        expires_at: i64,
    ) -> anyhow::Result<bool> {
        let reissue = |update: UpdateItemFluentBuilder| {
            update
                .update_expression("SET tokenHash = :hash, expiresAt = :expires")
                .expression_attribute_values(":hash", string(token_hash))
                .expression_attribute_values(":expires", number(expires_at))
        };
        self.if_pending(id, invitation, reissue, "reissuing the invitation").await
    }

    /// Accepts `invitation` for `user`, once: the invitation stops being pending, the person
    /// becomes a member, the workspace counts one more, all or nothing (the invitation as read:
    /// same token, still pending, not expired at `now`; and `user_check`, the person's account
    /// not being erased).
    pub async fn accept(
        &self,
        invitation: &Invitation,
        workspace_name: &str,
        person: (&UserId, &str),
        user_check: TransactWriteItem,
        now: i64,
        at: &str,
    ) -> anyhow::Result<Result<(), Refused>> {
        let (user, email) = person;
        let id = &invitation.workspace_id;
        let taken = self
            .update(id, invite_key(&invitation.invitation_id))
            .update_expression("SET #status = :accepted, acceptedBy = :user, acceptedAt = :at")
            .condition_expression("#status = :pending AND tokenHash = :hash AND expiresAt > :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":accepted", string(InvitationStatus::Accepted.as_str()))
            .expression_attribute_values(":pending", string(InvitationStatus::Pending.as_str()))
            .expression_attribute_values(":user", string(user.as_str()))
            .expression_attribute_values(":at", string(at))
            .expression_attribute_values(":hash", string(&invitation.token_hash))
            .expression_attribute_values(":now", number(now))
            .build()?;
        let joined = Put::builder()
            .table_name(&self.table)
            .set_item(Some(member_item(id, workspace_name, user, email, invitation.role, at)))
            .condition_expression("attribute_not_exists(workspaceId)")
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(taken).build(),
            TransactWriteItem::builder().put(joined).build(),
            self.owners_by(id, 0, 1)?,
            user_check,
        ];
        Ok(self.transact(items).await?.map_err(|failed| match failed {
            1 => Refused::AlreadyMember,
            2 => Refused::NoSeat,
            3 => Refused::Erasing,
            _ => Refused::Changed,
        }))
    }

    /// The workspace's Stripe customer: `customer` unless it has one already (made by a request
    /// at the same time), which is then the one kept.
    pub async fn set_stripe_customer(&self, id: &WorkspaceId, customer: &str) -> anyhow::Result<String> {
        let update = self
            .update_row(id, WORKSPACE.to_owned())
            .update_expression("SET stripeCustomerId = :customer")
            .condition_expression("attribute_exists(workspaceId) AND attribute_not_exists(stripeCustomerId)")
            .expression_attribute_values(":customer", string(customer));
        if dynamo::conditional_update(update).await.context("storing the workspace's customer")?.is_some() {
            return Ok(customer.to_owned());
        }
        let stored = self.get(id).await?.and_then(|w| w.stripe_customer_id);
        stored.context("the workspace is gone")
    }

    /// Sets the OWNER's seat limit and the seats it gives now, unless the workspace has more
    /// members than that meanwhile (false) or its TEAM changed meanwhile (read again, retry).
    pub async fn set_seat_limit(&self, workspace: &Workspace, limit: u32, seats: u32) -> anyhow::Result<bool> {
        let update = self
            .update_row(&workspace.workspace_id, WORKSPACE.to_owned())
            .update_expression("SET seatLimit = :limit, seats = :seats")
            .condition_expression("members <= :limit AND seatLimit = :before")
            .expression_attribute_values(":limit", number(limit))
            .expression_attribute_values(":seats", number(seats))
            .expression_attribute_values(":before", number(workspace.seat_limit));
        Ok(dynamo::conditional_update(update).await.context("setting the seat limit")?.is_some())
    }

    /// Mirrors the workspace's TEAM subscription, and the seats it gives, unless a fresher read
    /// is stored or the seat limit changed since `workspace` was read (false: read again).
    pub async fn mirror_team(
        &self,
        workspace: &Workspace,
        team: &TeamSubscription,
        seats: u32,
    ) -> anyhow::Result<bool> {
        let update = self
            .update_row(&workspace.workspace_id, WORKSPACE.to_owned())
            .update_expression(
                "SET subscriptionId = :subscription, subscriptionStatus = :status, billedSeats = :billed, \
                 billingReadAtMs = :read, seats = :seats",
            )
            .condition_expression(
                "seatLimit = :limit AND (attribute_not_exists(billingReadAtMs) OR billingReadAtMs <= :read)",
            )
            .expression_attribute_values(":subscription", string(&team.subscription_id))
            .expression_attribute_values(":status", string(team.status.as_str()))
            .expression_attribute_values(":billed", number(team.billed_seats))
            .expression_attribute_values(":read", number(team.read_at_ms))
            .expression_attribute_values(":seats", number(seats))
            .expression_attribute_values(":limit", number(workspace.seat_limit));
        Ok(dynamo::conditional_update(update).await.context("mirroring the TEAM subscription")?.is_some())
    }

    /// The pool's use in `period`, and each member's share of it (strongly consistent).
    pub async fn pool_usage(&self, id: &WorkspaceId, period: UsagePeriod) -> anyhow::Result<Option<PoolUsage>> {
        let Some(row) = self.row(id, WORKSPACE.to_owned(), "workspace").await? else { return Ok(None) };
        let mut members = Vec::new();
        for item in self.rows(id, "member#").await? {
            let member = member_from(&item)?;
            let (recordings, characters) =
                (counted_in(&item, Allowance::Recordings, period)?, counted_in(&item, Allowance::Characters, period)?);
            members.push(MemberShare { user_id: member.user_id, email: member.email, recordings, characters });
        }
        let workspace = workspace_from(&row)?;
        Ok(Some(PoolUsage {
            period: period.to_string(),
            recordings: counted_in(&row, Allowance::Recordings, period)?,
            characters: counted_in(&row, Allowance::Characters, period)?,
            limit: workspace.pool(),
            members,
        }))
    }

    /// Takes a slot of `held`, if the workspace has fewer than it may now (None: full; one
    /// conditional write, so N concurrent takes succeed at most for the slots left).
    pub async fn take_slot(&self, workspace: &Workspace, held: Held) -> anyhow::Result<Option<Slot<'_>>> {
        let update = self
            .update_row(&workspace.workspace_id, WORKSPACE.to_owned())
            .update_expression("SET #held = if_not_exists(#held, :zero) + :one")
            .condition_expression("attribute_exists(workspaceId) AND (attribute_not_exists(#held) OR #held < :slots)")
            .expression_attribute_names("#held", held.attribute())
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":slots", number(workspace.slots(held)));
        let taken = dynamo::conditional_update(update).await.context("taking a workspace's slot")?;
        Ok(taken.map(|_| Slot { workspaces: self, workspace: workspace.workspace_id.clone(), held }))
    }

    /// Gives back the slot a removed library voice held (only the delete that removed it has
    /// the proof, so N concurrent deletes give it back once).
    pub async fn give_back_library_slot(&self, removed: Removed<Voice>) -> anyhow::Result<Voice> {
        let (voice, owner, units) = removed.settle();
        let Counters::Person(owner) = owner else { anyhow::bail!("the voice is not a workspace's") };
        let workspace = owner.library_workspace().context("the voice is not a workspace's")?;
        let slots = units.iter().filter(|u| u.allowance == Allowance::CloneSlots).map(|u| u.amount).sum();
        self.give_slots(&workspace, Held::LibraryVoices, slots).await?;
        Ok(voice)
    }

    async fn give_slots(&self, workspace: &WorkspaceId, held: Held, slots: u64) -> anyhow::Result<()> {
        if slots == 0 {
            return Ok(());
        }
        let update = self
            .update_row(workspace, WORKSPACE.to_owned())
            .update_expression("SET #held = #held - :slots")
            .condition_expression("#held >= :slots")
            .expression_attribute_names("#held", held.attribute())
            .expression_attribute_values(":slots", number(slots));
        // A workspace deleted meanwhile has no slots left to give back to.
        dynamo::conditional_update(update).await.context("giving a workspace's slot back")?;
        Ok(())
    }

    /// Lists `key` (just made by `made_by`) under its workspace.
    pub async fn put_key(&self, key: &KeyMeta, made_by: &UserId) -> anyhow::Result<()> {
        let workspace = key.workspace_id.as_ref().context("not a workspace's key")?;
        let item = HashMap::from([
            ("workspaceId".to_owned(), string(workspace.as_str())),
            ("item".to_owned(), string(format!("{KEY}{}", key.key_id))),
            ("keyId".to_owned(), string(&key.key_id)),
            ("name".to_owned(), string(&key.name)),
            ("prefix".to_owned(), string(&key.prefix)),
            ("createdAt".to_owned(), string(&key.created_at)),
            ("madeBy".to_owned(), string(made_by.as_str())),
            ("keyHash".to_owned(), string(key.key_hash())),
        ]);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
        put.condition_expression("attribute_not_exists(#item)")
            .expression_attribute_names("#item", "item")
            .send()
            .await
            .context("listing the workspace's key")?;
        Ok(())
    }

    pub async fn keys(&self, id: &WorkspaceId) -> anyhow::Result<Vec<WorkspaceKey>> {
        self.rows(id, KEY).await?.iter().map(key_from).collect()
    }

    /// Revokes the workspace's key `key_id`: its own row first (it authenticates nothing from
    /// then on; deleting it again is harmless), then its listing, whose conditional delete gives
    /// its slot back once however many revoke it at once. False: no such key.
    pub async fn revoke_key(&self, keys: &ApiKeys, id: &WorkspaceId, key_id: &str) -> anyhow::Result<bool> {
        let Some(row) = self.row(id, format!("{KEY}{key_id}"), "workspace's key").await? else { return Ok(false) };
        keys.delete_by_hash(&key_from(&row)?.key_hash).await?;
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(id, format!("{KEY}{key_id}"))))
            .condition_expression("attribute_exists(workspaceId)");
        if dynamo::conditional_delete(delete).await.context("removing the workspace's key")?.is_some() {
            self.give_slots(id, Held::ApiKeys, 1).await?;
        }
        Ok(true)
    }

    /// Revokes the workspace's keys `made_by` made (every key, with None): how many.
    pub async fn revoke_keys(
        &self,
        keys: &ApiKeys,
        id: &WorkspaceId,
        made_by: Option<&UserId>,
    ) -> anyhow::Result<usize> {
        let mut revoked = 0;
        for key in self.keys(id).await? {
            if made_by.is_none_or(|who| *who == key.made_by) && self.revoke_key(keys, id, &key.key_id).await? {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Deletes the workspace and every row under it.
    pub async fn delete(&self, id: &WorkspaceId) -> anyhow::Result<usize> {
        dynamo::delete_partition(&self.client, &self.table, ("workspaceId", id.as_str()), "item").await
    }
}
