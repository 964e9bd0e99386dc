//! Roles in a workspace and what each may do.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Reviewer,
    Viewer,
}

/// What an action needs. Handlers name one through a [`Permission`] type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// See the workspace's catalog, jobs, audits and exports.
    Read,
    /// Sync, audit, enrich, edit content, create exports.
    Edit,
    /// Approve or reject proposals and push approved content.
    Review,
    /// Members, API keys, settings, store connections, schedules.
    Administer,
    /// Delete the workspace, grant ownership.
    Own,
}

impl Role {
    pub fn allows(self, capability: Capability) -> bool {
        use Capability::*;
        match self {
            Role::Owner => true,
            Role::Admin => capability != Own,
            Role::Editor => matches!(capability, Read | Edit),
            Role::Reviewer => matches!(capability, Read | Review),
            Role::Viewer => capability == Read,
        }
    }

    /// Rank used when one member grants a role to another: nobody grants above their own.
    fn rank(self) -> u8 {
        match self {
            Role::Owner => 4,
            Role::Admin => 3,
            Role::Editor | Role::Reviewer => 2,
            Role::Viewer => 1,
        }
    }

    pub fn may_grant(self, granted: Role) -> bool {
        self.allows(Capability::Administer) && granted.rank() <= self.rank()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Reviewer => "reviewer",
            Role::Viewer => "viewer",
        }
    }
}

/// A capability named at the type level, so an extractor can prove it before a handler runs.
pub trait Permission: Send + Sync + 'static {
    const CAPABILITY: Capability;
}

macro_rules! permissions {
    ($($name:ident => $cap:ident),* $(,)?) => {
        $(
            #[doc = concat!("Proof that the caller holds [`Capability::", stringify!($cap), "`].")]
            pub struct $name;
            impl Permission for $name {
                const CAPABILITY: Capability = Capability::$cap;
            }
        )*
    };
}

permissions! {
    CanRead => Read,
    CanEdit => Edit,
    CanReview => Review,
    CanAdminister => Administer,
    CanOwn => Own,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_holds_exactly_its_capabilities() {
        use Capability::*;
        let all = [Read, Edit, Review, Administer, Own];
        let held = |role: Role| {
            all.iter()
                .filter(|c| role.allows(**c))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(held(Role::Owner), all);
        assert_eq!(held(Role::Admin), [Read, Edit, Review, Administer]);
        assert_eq!(held(Role::Editor), [Read, Edit]);
        assert_eq!(held(Role::Reviewer), [Read, Review]);
        assert_eq!(held(Role::Viewer), [Read]);
    }

    #[test]
    fn nobody_grants_above_their_own_role() {
        assert!(Role::Owner.may_grant(Role::Owner));
        assert!(Role::Admin.may_grant(Role::Admin));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(!Role::Editor.may_grant(Role::Viewer));
        assert!(!Role::Viewer.may_grant(Role::Viewer));
    }
}
