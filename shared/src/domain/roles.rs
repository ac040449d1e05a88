//! Who may do what in the admin area: the role-based access table, in one place (like the tier
//! table). Roles are granted only by an operator (`make admin-grant`, or the documented one-off
//! write in AWS), never through an API a user can call.

use std::{fmt, str::FromStr};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Support,
    Admin,
}

/// What an admin route does; each route names the one it needs. The session lists the caller's
/// (`adminPermissions`), so the web client offers what the API will allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Find users and read their account summary (never secrets or audio).
    LookUpUsers,
    /// Aggregate figures: users per tier, MRR, generations, failed payments.
    ViewStats,
    /// Read the audit log of admin actions.
    ViewAudit,
    /// Suspend and unsuspend accounts.
    Suspend,
    /// Top up a user's monthly recordings.
    GrantUsage,
}

impl Permission {
    pub const ALL: [Permission; 5] =
        [Self::LookUpUsers, Self::ViewStats, Self::ViewAudit, Self::Suspend, Self::GrantUsage];
}

impl Role {
    /// The RBAC table: support may look things up; only admins may act or read the audit log.
    pub const fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::User => false,
            Role::Support => matches!(permission, LookUpUsers | ViewStats),
            Role::Admin => true,
        }
    }

    /// The permissions the table gives this role, in [`Permission::ALL`]'s order.
    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.allows(*p)).collect()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (expected user, support or admin)")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "user" => Ok(Role::User),
            "support" => Ok(Role::Support),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_user_may_do_nothing_in_the_admin_area() {
        assert!(Permission::ALL.iter().all(|p| !Role::User.allows(*p)));
    }

    #[test]
    fn support_looks_up_but_never_acts() {
        assert!(Role::Support.allows(Permission::LookUpUsers));
        assert!(Role::Support.allows(Permission::ViewStats));
        for acting in [Permission::Suspend, Permission::GrantUsage, Permission::ViewAudit] {
            assert!(!Role::Support.allows(acting), "{acting:?}");
        }
    }

    #[test]
    fn admins_may_do_everything() {
        assert!(Permission::ALL.iter().all(|p| Role::Admin.allows(*p)));
    }

    #[test]
    fn the_listed_permissions_are_the_table_s() {
        assert!(Role::User.permissions().is_empty());
        let support = serde_json::to_value(Role::Support.permissions()).unwrap();
        assert_eq!(support, serde_json::json!(["look-up-users", "view-stats"]));
        assert_eq!(Role::Admin.permissions().len(), Permission::ALL.len());
    }

    #[test]
    fn roles_round_trip_and_unknown_ones_are_refused() {
        for role in [Role::User, Role::Support, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
