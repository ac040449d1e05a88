//! The workspaces table's key layout (PK `workspaceId`, SK `item`): shared by the workspaces
//! store and the allowance counters kept on its rows (a workspace's pool, a member's share).

use std::collections::HashMap;

use crate::{
    domain::{ids::UserId, workspaces::WorkspaceId},
    store::dynamo::{Item, string},
};

/// The workspace's own row.
pub(in crate::store) const WORKSPACE: &str = "workspace";

/// A member's row.
pub(in crate::store) fn member_key(user: &UserId) -> String {
    format!("member#{user}")
}

/// The key of workspace `id`'s row, or of `member`'s row in it.
pub(in crate::store) fn row_key(id: &WorkspaceId, member: Option<&UserId>) -> Item {
    let item = member.map_or_else(|| WORKSPACE.to_owned(), member_key);
    HashMap::from([("workspaceId".to_owned(), string(id.as_str())), ("item".to_owned(), string(item))])
}
