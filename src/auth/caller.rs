//! The one authorisation path: caller → addressed resource → its workspace → role → capability.
//!
//! Handlers take an [`Access<R, P>`]: it exists only if the caller is a member of the workspace
//! that owns resource `R` and their role holds permission `P`. A resource of another workspace
//! answers 404 exactly like a missing one, so ids of other tenants cannot be probed.

use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::api_keys;
use super::roles::{Permission, Role};
use crate::app::AppState;
use crate::http::error::ApiError;

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
    pub fn require_user(&self) -> Result<Uuid, ApiError> {
        match self.principal {
            Principal::User { user_id, .. } => Ok(user_id),
            Principal::ApiKey { .. } => Err(ApiError::Forbidden(
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
    pub async fn role_in(&self, db: &PgPool, workspace_id: Uuid) -> Result<Option<Role>, ApiError> {
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
                    Some((_, true)) => Err(ApiError::TotpSetupRequired),
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let Ok(ClientAddr(client_addr)) = ClientAddr::from_request_parts(parts, state).await;
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing Authorization header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "Authorization must be `Bearer <token>`",
            ))?;

        let principal = if token.starts_with("cmk_") {
            authenticate_api_key(&state.db, token).await?
        } else {
            authenticate_session(state, token).await?
        };
        let caller = Caller {
            principal,
            client_addr,
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate_session(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let claims = state
        .jwt
        .verify(token)
        .ok_or(ApiError::Unauthorized("invalid or expired access token"))?;
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
        _ => Err(ApiError::Unauthorized("session has ended; log in again")),
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

async fn authenticate_api_key(db: &PgPool, key: &str) -> Result<Principal, ApiError> {
    const REFUSED: ApiError = ApiError::Unauthorized("invalid or revoked API key");
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

/// The client's address: the peer, or with `http.trust_forwarded_for` the client our proxies
/// saw (see [`forwarded_client`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let http = &state.settings.http;
        if http.trust_forwarded_for
            && let Some(ip) = forwarded_client(&parts.headers, &http.trusted_proxies)
        {
            return Ok(ClientAddr(Some(ip)));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddr(peer))
    }
}

/// The client behind our proxies, from `X-Forwarded-For` (every such header, in order). Each
/// proxy appends the address it was connected from, so the list is read from the right: the
/// operator's own proxies (`trusted`) are skipped and the first other address is the client.
/// Everything left of it was written by the client itself and proves nothing. An unreadable
/// hop met before the client gives `None` (the peer is used) rather than a guess.
pub fn forwarded_client(
    headers: &axum::http::HeaderMap,
    trusted: &[egress::Cidr],
) -> Option<IpAddr> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(value.to_str().ok()?.split(',').map(str::trim));
    }
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
            .ok()?;
        if !trusted.iter().any(|range| range.contains(ip)) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    // Every hop is one of ours: the first proxy's own peer is all there is.
    leftmost
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

impl<R: Resource, P: Permission> FromRequestParts<AppState> for Access<R, P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound(R::NAME))?;
        let id = params
            .iter()
            .find(|(name, _)| *name == R::PATH_PARAM)
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .ok_or(ApiError::NotFound(R::NAME))?;
        let workspace_id = R::workspace_of(&state.db, id)
            .await?
            .ok_or(ApiError::NotFound(R::NAME))?;
        let role = caller
            .role_in(&state.db, workspace_id)
            .await?
            .ok_or(ApiError::NotFound(R::NAME))?;
        if !role.allows(P::CAPABILITY) {
            return Err(ApiError::Forbidden(
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

/// [`Access`] for what only a person may do (managing API keys): an API key is refused
/// whatever its role, so a leaked key cannot mint keys that outlive its own revocation.
pub struct PersonAccess<R, P>(pub Access<R, P>);

impl<R, P> std::ops::Deref for PersonAccess<R, P> {
    type Target = Access<R, P>;
    fn deref(&self) -> &Access<R, P> {
        &self.0
    }
}

impl<R: Resource, P: Permission> FromRequestParts<AppState> for PersonAccess<R, P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Access::<R, P>::from_request_parts(parts, state)
            .await?
            .by_person()
    }
}

impl<R, P> Access<R, P> {
    /// This access, if a person holds it; an API key is refused with 403.
    pub fn by_person(self) -> Result<PersonAccess<R, P>, ApiError> {
        if self.caller.api_key_id().is_some() {
            return Err(ApiError::Forbidden(
                "API keys cannot manage API keys: sign in as a person",
            ));
        }
        Ok(PersonAccess(self))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_client_is_the_rightmost_hop_not_the_one_it_wrote() {
        let none: &[egress::Cidr] = &[];
        // The client wrote 10.0.0.1 itself; our proxy appended the address it saw.
        let spoofed = headers(&["10.0.0.1, 203.0.113.7"]);
        assert_eq!(forwarded_client(&spoofed, none), ip("203.0.113.7"));
        assert_eq!(
            forwarded_client(&headers(&["198.51.100.2"]), none),
            ip("198.51.100.2")
        );
        // Several headers are one list, in order.
        assert_eq!(
            forwarded_client(&headers(&["10.0.0.1", "203.0.113.7"]), none),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&headers(&["[2001:db8::5]:4711"]), none),
            ip("2001:db8::5")
        );
        assert_eq!(forwarded_client(&HeaderMap::new(), none), None);
        assert_eq!(forwarded_client(&headers(&["1.2.3.4, junk"]), none), None);
    }

    #[test]
    fn the_operators_proxies_are_read_past() {
        let trusted: Vec<egress::Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = headers(&["192.0.2.9, 203.0.113.7, 10.1.2.3, 10.4.5.6"]);
        assert_eq!(forwarded_client(&chain, &trusted), ip("203.0.113.7"));
        // Junk left of the client does not matter.
        let chain = headers(&["junk, 203.0.113.7, 10.1.2.3"]);
        assert_eq!(forwarded_client(&chain, &trusted), ip("203.0.113.7"));
        let ours = headers(&["10.9.9.9, 10.1.2.3"]);
        assert_eq!(forwarded_client(&ours, &trusted), ip("10.9.9.9"));
    }
}
