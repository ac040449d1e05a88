//! Workspaces: a team's shared account. Its members hold one role each, and what a role may do
//! is one table of permissions here; every route that touches a workspace asks for a permission,
//! never for a role by name.

use serde::{Deserialize, Serialize};

use crate::{domain::ids::Ulid, error::ApiError};

/// A member's role in one workspace (a person may hold a different one in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkspaceRole {
    Owner,
    Admin,
    Member,
    Viewer,
}

/// What a member may do in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// See the workspace, its members and its shared voice library.
    Read,
    /// Speak with the workspace's shared voices, keep their own recordings.
    Generate,
    /// Add and delete the workspace's voices.
    ManageVoices,
    /// Make and revoke the workspace's API keys.
    ManageKeys,
    /// Invite, remove and change the role of members below OWNER.
    ManageMembers,
    /// Make another member OWNER, or take OWNER away.
    ManageOwners,
    /// The workspace's plan, seats and invoices.
    ManageBilling,
    /// Delete the workspace and everything it holds.
    Delete,
}

use Permission::*;

/// The one table: what each role may do.
const PERMISSIONS: [(WorkspaceRole, &[Permission]); 4] = [
    (
        WorkspaceRole::Owner,
        &[Read, Generate, ManageVoices, ManageKeys, ManageMembers, ManageOwners, ManageBilling, Delete],
    ),
    (WorkspaceRole::Admin, &[Read, Generate, ManageVoices, ManageKeys, ManageMembers]),
    (WorkspaceRole::Member, &[Read, Generate]),
    (WorkspaceRole::Viewer, &[Read]),
];

impl WorkspaceRole {
    pub fn permissions(self) -> &'static [Permission] {
        PERMISSIONS.iter().find(|(role, _)| *role == self).map_or(&[], |(_, granted)| granted)
    }

    pub fn can(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "OWNER",
            Self::Admin => "ADMIN",
            Self::Member => "MEMBER",
            Self::Viewer => "VIEWER",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Owner, Self::Admin, Self::Member, Self::Viewer].into_iter().find(|r| r.as_str() == raw)
    }

    /// Granting or taking away this role needs, beyond managing members, managing owners.
    pub fn needs_owner(self) -> bool {
        self == Self::Owner
    }
}

impl std::fmt::Display for WorkspaceRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Read => "read",
            Generate => "generate",
            ManageVoices => "manage-voices",
            ManageKeys => "manage-keys",
            ManageMembers => "manage-members",
            ManageOwners => "manage-owners",
            ManageBilling => "manage-billing",
            Delete => "delete",
        }
    }
}

/// A workspace's id: a ULID.
pub type WorkspaceId = Ulid;

/// How long an invitation can be accepted.
pub const INVITATION_DAYS: i64 = 7;
/// The most characters of a workspace's name.
pub const NAME_MAX_CHARS: usize = 60;
/// Members a workspace holds without a live TEAM subscription (each speaks on their own plan).
pub const FREE_SEATS: u32 = 3;
/// The highest seat limit an OWNER may set.
pub const MAX_SEATS: u32 = 500;

/// The most members a workspace may hold now: its OWNER's seat limit while TEAM is live (TEAM
/// bills one seat per member, never more than that limit), else the free seats.
pub fn seats(seat_limit: u32, team_live: bool) -> u32 {
    if team_live { seat_limit } else { FREE_SEATS }
}

/// Generations a month each seat TEAM bills adds to the workspace's pool (BASIC's allowance).
pub const POOL_RECORDINGS_PER_SEAT: u32 = 100;

/// The pool of a workspace whose TEAM bills `billed_seats`: generations this month, shared by
/// every member speaking in the workspace.
pub fn pooled_recordings(billed_seats: u32) -> u64 {
    u64::from(billed_seats.max(1)) * u64::from(POOL_RECORDINGS_PER_SEAT)
}

/// Voices a workspace's shared library holds without a live TEAM (enough to try it).
pub const LIBRARY_SLOTS_FREE: u32 = 1;
/// Voices its library holds per member while TEAM is live (BASIC's clone slots, per seat).
pub const LIBRARY_SLOTS_PER_SEAT: u32 = 5;

/// How many voices the shared library of a workspace of `members` may hold now. A library past
/// it (members left, TEAM lapsed) keeps its voices and takes no new one.
pub fn library_slots(members: u32, team_live: bool) -> u32 {
    if team_live { members.max(1).saturating_mul(LIBRARY_SLOTS_PER_SEAT) } else { LIBRARY_SLOTS_FREE }
}

/// API keys a workspace holds: 2 without TEAM, 10 while it is live.
pub fn key_slots(team_live: bool) -> u32 {
    if team_live { 10 } else { 2 }
}

/// `PATCH /workspaces/{id}/seats` and `POST /workspaces/{id}/billing/checkout`: the most seats
/// the OWNER agrees to be billed for (the subscription's quantity follows the members, up to it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeatLimit {
    /// A whole number (JSON's `5.0` is one).
    #[serde(deserialize_with = "crate::domain::json::whole_number")]
    pub seat_limit: u32,
}

impl SeatLimit {
    /// The limit, if it is one a workspace of `members` may have.
    pub fn check(&self, members: u32) -> Result<u32, ApiError> {
        let limit = self.seat_limit;
        if !(1..=MAX_SEATS).contains(&limit) {
            return Err(ApiError::validation("seatLimit", format!("must be 1 to {MAX_SEATS}")));
        }
        if limit < members {
            return Err(ApiError::validation(
                "seatLimit",
                format!("is below the {members} members the workspace has: remove members first"),
            ));
        }
        Ok(limit)
    }
}

/// A workspace's name as stored: trimmed, 1 to 60 printable characters.
pub fn workspace_name(raw: &str) -> Result<String, ApiError> {
    crate::domain::text::printable("name", raw, 1, NAME_MAX_CHARS)
}

/// `POST /workspaces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    pub name: String,
}

/// `POST /workspaces/{id}/invitations`: who, and as what (OWNER comes only by transfer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    pub email: String,
    pub role: WorkspaceRole,
}

impl NewInvitation {
    pub fn check(&self) -> Result<(crate::domain::ids::Email, WorkspaceRole), ApiError> {
        let email = crate::domain::ids::Email::parse(&self.email)
            .map_err(|_| ApiError::validation("email", "is not an email address"))?;
        if self.role == WorkspaceRole::Owner {
            return Err(ApiError::validation("role", "OWNER is given by transferring ownership, not by invitation"));
        }
        Ok((email, self.role))
    }
}

/// `PATCH /workspaces/{id}/members/{userId}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: WorkspaceRole,
}

/// `POST /workspaces/{id}/transfer`: the member who becomes OWNER (the caller stays, as ADMIN).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transfer {
    pub user_id: String,
}

/// `POST /invitations/accept`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub token: String,
}

/// An invitation's token: `wsi_{workspaceId}_{invitationId}_{secret}`; only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationToken {
    pub workspace_id: WorkspaceId,
    pub invitation_id: Ulid,
    whole: String,
}

impl InvitationToken {
    pub fn new(workspace_id: &WorkspaceId, invitation_id: &Ulid) -> Self {
        let secret = crate::domain::ids::random_token();
        Self {
            whole: format!("wsi_{workspace_id}_{invitation_id}_{secret}"),
            workspace_id: workspace_id.clone(),
            invitation_id: invitation_id.clone(),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix("wsi_")?;
        let (workspace, rest) = rest.split_once('_')?;
        let (invitation, secret) = rest.split_once('_')?;
        if secret.len() != 43 || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        Some(Self {
            workspace_id: Ulid::parse(workspace)?,
            invitation_id: Ulid::parse(invitation)?,
            whole: raw.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.whole
    }

    /// What is stored: the SHA-256 of the whole token, hex.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        crate::domain::ids::hex(&Sha256::digest(self.whole.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    #[test]
    fn each_role_holds_the_permissions_of_the_one_below_and_more() {
        let order = [WorkspaceRole::Viewer, WorkspaceRole::Member, WorkspaceRole::Admin, WorkspaceRole::Owner];
        for pair in order.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            assert!(lower.permissions().iter().all(|p| higher.can(*p)), "{higher} can all {lower} can");
            assert!(higher.permissions().len() > lower.permissions().len(), "{higher} can more than {lower}");
        }
        assert!(!WorkspaceRole::Viewer.can(Permission::Generate));
        assert!(!WorkspaceRole::Admin.can(Permission::ManageOwners) && !WorkspaceRole::Admin.can(Permission::Delete));
        assert!(WorkspaceRole::Owner.can(Permission::ManageBilling));
    }

    #[test]
    fn invitation_tokens_round_trip_and_nothing_else_parses() {
        let now = OffsetDateTime::now_utc();
        let token = InvitationToken::new(&Ulid::generate(now), &Ulid::generate(now));
        assert_eq!(InvitationToken::parse(token.as_str()), Some(token.clone()));
        let raw = token.as_str();
        for bad in [&raw[1..], &raw[..raw.len() - 1], &raw.replace("wsi_", "wsx_"), "wsi_", "", "wsi_a_b_c"] {
            assert_eq!(InvitationToken::parse(bad), None, "{bad}");
        }
        assert_ne!(token.hash(), InvitationToken::new(&token.workspace_id, &token.invitation_id).hash());
    }

    #[test]
    fn seat_limits_hold_the_members_and_apply_only_with_team() {
        assert_eq!(seats(40, true), 40);
        assert_eq!(seats(40, false), FREE_SEATS, "without TEAM, the free seats");
        assert_eq!(SeatLimit { seat_limit: 5 }.check(5).unwrap(), 5);
        let whole: SeatLimit = serde_json::from_str(r#"{"seatLimit": 5.0}"#).unwrap();
        assert_eq!(whole.seat_limit, 5, "JSON's 5.0 is a whole number");
        assert!(serde_json::from_str::<SeatLimit>(r#"{"seatLimit": 5.5}"#).is_err());
        for (limit, members) in [(4, 5), (0, 0), (MAX_SEATS + 1, 1)] {
            assert!(SeatLimit { seat_limit: limit }.check(members).is_err(), "{limit} for {members}");
        }
    }

    #[test]
    fn invitations_never_make_owners_and_need_an_address() {
        let owner = NewInvitation { email: "a@example.com".into(), role: WorkspaceRole::Owner };
        assert!(owner.check().is_err());
        let bad = NewInvitation { email: "nope".into(), role: WorkspaceRole::Member };
        assert!(bad.check().is_err());
        let good = NewInvitation { email: " a@example.com ".into(), role: WorkspaceRole::Viewer };
        assert_eq!(good.check().unwrap().1, WorkspaceRole::Viewer);
    }
}
