//! The one authorisation path: caller → addressed resource → its workspace → role → capability.
//!
//! Handlers take an [`Access<R, P>`]: it exists only if the caller is a member of the workspace
//! that owns resource `R` and their role holds permission `P`. A resource of another workspace
//! answers 404 exactly like a missing one, so ids of other tenants cannot be probed.

use std::future::Future;
use std::marker::PhantomData;
use std::net::IpAddr;

use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::api_keys;
use super::roles::{Permission, Role};
use crate::error::Error;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub enum Principal {
    User {
        user_id: Uuid,
        session_id: Uuid,
    },
    ApiKey {
        key_id: Uuid,
        workspace_id: Uuid,
        role: Role,
    },
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub client_addr: Option<IpAddr>,
}

impl Caller {
    /// For endpoints about a person (their account, their workspaces): API keys act for a
    /// workspace, not a person, and are refused.
    pub fn require_user(&self) -> Result<Uuid, Error> {
        match self.principal {
            Principal::User { user_id, .. } => Ok(user_id),
            Principal::ApiKey { .. } => Err(Error::Forbidden(
                "this endpoint needs a user session, not an API key",
            )),
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::User { user_id, .. } => Some(user_id),
            Principal::ApiKey { .. } => None,
        }
    }

    pub fn api_key_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::ApiKey { key_id, .. } => Some(key_id),
            Principal::User { .. } => None,
        }
    }

    /// The caller's role in `workspace_id`, or `None` when they have no access at all.
    /// A person without two-factor login in a workspace that requires it is refused here, so
    /// every workspace endpoint enforces the owner's setting.
    pub async fn role_in(&self, db: &PgPool, workspace_id: Uuid) -> Result<Option<Role>, Error> {
        match &self.principal {
            Principal::User { user_id, .. } => {
                let row: Option<(Role, bool)> = sqlx::query_as(
                    "SELECT m.role,
                            coalesce((w.settings->>'require_totp')::boolean, false)
                                AND u.totp_enabled_at IS NULL
                     FROM memberships m
                     JOIN workspaces w ON w.id = m.workspace_id
                     JOIN users u ON u.id = m.user_id
                     WHERE m.workspace_id = $1 AND m.user_id = $2",
                )
                .bind(workspace_id)
                .bind(user_id)
                .fetch_optional(db)
                .await?;
                match row {
                    Some((_, true)) => Err(Error::TwoFactorSetupRequired),
                    Some((role, false)) => Ok(Some(role)),
                    None => Ok(None),
                }
            }
            Principal::ApiKey {
                workspace_id: key_ws,
                role,
                ..
            } => Ok((*key_ws == workspace_id).then_some(*role)),
        }
    }
}

/// Who a bearer token speaks for: an API key (`cmk_…`) or a live session's access token.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, Error> {
    if token.starts_with("cmk_") {
        authenticate_api_key(&state.db, token).await
    } else {
        authenticate_session(state, token).await
    }
}

async fn authenticate_session(state: &AppState, token: &str) -> Result<Principal, Error> {
    let claims = state
        .jwt
        .verify(token)
        .ok_or(Error::Unauthenticated("invalid or expired access token"))?;
    // A revoked session (logout, refresh-token reuse, deleted account) ends its access tokens early.
    let live: Option<bool> = sqlx::query_scalar(
        "SELECT revoked_at IS NULL FROM sessions WHERE id = $1 AND user_id = $2",
    )
    .bind(claims.sid)
    .bind(claims.sub)
    .fetch_optional(&state.db)
    .await?;
    match live {
        Some(true) => Ok(Principal::User {
            user_id: claims.sub,
            session_id: claims.sid,
        }),
        _ => Err(Error::Unauthenticated("session has ended; log in again")),
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    workspace_id: Uuid,
    key_hash: Vec<u8>,
    role: Role,
    revoked: bool,
}

async fn authenticate_api_key(db: &PgPool, key: &str) -> Result<Principal, Error> {
    const REFUSED: Error = Error::Unauthenticated("invalid or revoked API key");
    let prefix = api_keys::parse_prefix(key).ok_or(REFUSED)?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT id, workspace_id, key_hash, role, revoked_at IS NOT NULL AS revoked
         FROM api_keys WHERE prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(db)
    .await?;
    let row = row.ok_or(REFUSED)?;
    let matches: bool = api_keys::hash(key).ct_eq(&row.key_hash).into();
    if !matches || row.revoked {
        return Err(REFUSED);
    }
    // At most one write a minute per key, so a busy integration does not write on every call.
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(row.id)
    .execute(db)
    .await?;
    Ok(Principal::ApiKey {
        key_id: row.id,
        workspace_id: row.workspace_id,
        role: row.role,
    })
}

/// Something addressed by an id in the path that belongs to exactly one workspace.
pub trait Resource: Send + Sync + 'static {
    /// Used in the 404 message.
    const NAME: &'static str;
    /// The path parameter holding the id.
    const PATH_PARAM: &'static str;
    fn workspace_of(
        db: &PgPool,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Uuid>, sqlx::Error>> + Send;
}

/// The workspace itself, addressed as `/workspaces/{ws}/…`.
pub struct Workspace;

impl Resource for Workspace {
    const NAME: &'static str = "workspace";
    const PATH_PARAM: &'static str = "ws";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

/// Proof that the caller may act with permission `P` on resource `R`.
pub struct Access<R, P> {
    /// The addressed resource's id (the workspace id for [`Workspace`]).
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub role: Role,
    pub caller: Caller,
    _marker: PhantomData<fn() -> (R, P)>,
}

/// [`Access`] for what only a person may do (managing API keys): an API key is refused
/// whatever its role, so a leaked key cannot mint keys that outlive its own revocation.
pub struct PersonAccess<R, P>(pub Access<R, P>);

impl<R, P> std::ops::Deref for PersonAccess<R, P> {
    type Target = Access<R, P>;
    fn deref(&self) -> &Access<R, P> {
        &self.0
    }
}

impl<R: Resource, P: Permission> Access<R, P> {
    /// Checks that `caller` may act with `P` on resource `R` number `id`. Another workspace's
    /// resource and a missing one both answer `NotFound`, so ids cannot be probed.
    pub async fn check(db: &PgPool, caller: Caller, id: Uuid) -> Result<Self, Error> {
        let workspace_id = R::workspace_of(db, id)
            .await?
            .ok_or(Error::NotFound(R::NAME))?;
        let role = caller
            .role_in(db, workspace_id)
            .await?
            .ok_or(Error::NotFound(R::NAME))?;
        if !role.allows(P::CAPABILITY) {
            return Err(Error::Forbidden(
                "your role in this workspace does not allow this",
            ));
        }
        Ok(Access {
            id,
            workspace_id,
            role,
            caller,
            _marker: PhantomData,
        })
    }
}

impl<R, P> Access<R, P> {
    /// This access, if a person holds it; an API key is refused with 403.
    pub fn by_person(self) -> Result<PersonAccess<R, P>, Error> {
        if self.caller.api_key_id().is_some() {
            return Err(Error::Forbidden(
                "API keys cannot manage API keys: sign in as a person",
            ));
        }
        Ok(PersonAccess(self))
    }
}
