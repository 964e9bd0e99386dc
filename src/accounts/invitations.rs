//! Invitations: a person joins a workspace only by accepting a mailed link.
//!
//! Inviting answers the same whether or not an account uses the address, so an inviter learns
//! nothing about who has an account. The link's token is kept only as its hash; it is valid
//! for [`VALID_DAYS`], once. Accepting needs a session of the invited address (a new account
//! signs up first); declining needs only the link.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::email::Email;
use super::workspaces::{self, Member};
use crate::auth::Role;
use crate::auth::tokens::{hash_token, new_secret_token};
use crate::error::Error;

/// How long an invitation link works.
pub const VALID_DAYS: i64 = 7;

/// A pending invitation, as owners and admins see it (never its token).
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// Name of the member who invited, if the account still exists.
    pub invited_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A new invitation and the link token to mail (shown nowhere else).
pub struct Created {
    pub id: Uuid,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Invites `email` to the workspace as `role`. A pending invitation of the same address is
/// replaced (its link stops working). An address that is already a member is refused: members
/// are listed to the inviter anyway, so this reveals nothing.
pub async fn create(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    email: &Email,
    role: Role,
    invited_by: Option<Uuid>,
) -> Result<Created, Error> {
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
                        WHERE m.workspace_id = $1 AND u.email = $2::citext)",
    )
    .bind(workspace_id)
    .bind(email.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if member {
        return Err(Error::Conflict(
            "this address already belongs to a member of the workspace".into(),
        ));
    }
    sqlx::query(
        "UPDATE invitations SET revoked_at = now()
         WHERE workspace_id = $1 AND email = $2::citext
           AND accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL",
    )
    .bind(workspace_id)
    .bind(email.as_str())
    .execute(&mut *tx)
    .await?;
    let (token, token_hash) = new_secret_token("cinv");
    let id = Uuid::now_v7();
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO invitations (id, workspace_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))
         RETURNING expires_at",
    )
    .bind(id)
    .bind(workspace_id)
    .bind(email.as_str())
    .bind(role)
    .bind(token_hash)
    .bind(invited_by)
    .bind(VALID_DAYS as i32)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Created {
        id,
        token,
        expires_at,
    })
}

/// Pending invitations of the workspace, newest first (at most 200: invitations expire).
pub async fn list_pending(
    db: &mut PgConnection,
    workspace_id: Uuid,
) -> Result<Vec<Invitation>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.email::text AS email, i.role, u.name AS invited_by, i.created_at, i.expires_at
         FROM invitations i LEFT JOIN users u ON u.id = i.invited_by
         WHERE i.workspace_id = $1 AND i.accepted_at IS NULL AND i.declined_at IS NULL
           AND i.revoked_at IS NULL AND i.expires_at > now()
         ORDER BY i.created_at DESC LIMIT 200",
    )
    .bind(workspace_id)
    .fetch_all(&mut *db)
    .await
}

/// Revokes a pending invitation of the workspace; its link stops working. Returns the
/// invited address.
pub async fn revoke(tx: &mut PgConnection, workspace_id: Uuid, id: Uuid) -> Result<String, Error> {
    sqlx::query_scalar(
        "UPDATE invitations SET revoked_at = now()
         WHERE id = $1 AND workspace_id = $2
           AND accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL
         RETURNING email::text",
    )
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound("invitation"))
}

/// What a link's token opens, for the page behind the link.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct Offer {
    pub invitation_id: Uuid,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The pending invitation behind `token`, locked for the caller's transaction.
async fn pending_by_token(tx: &mut PgConnection, token: &str) -> Result<Offer, Error> {
    if token.len() > 200 {
        return Err(gone());
    }
    sqlx::query_as(
        "SELECT i.id AS invitation_id, i.workspace_id, w.name AS workspace_name,
                i.email::text AS email, i.role, u.name AS invited_by, i.expires_at
         FROM invitations i JOIN workspaces w ON w.id = i.workspace_id
         LEFT JOIN users u ON u.id = i.invited_by
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.declined_at IS NULL
           AND i.revoked_at IS NULL AND i.expires_at > now()
         FOR UPDATE OF i",
    )
    .bind(hash_token(token))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(gone)
}

/// Unknown, used, declined, revoked and expired links all answer alike.
fn gone() -> Error {
    Error::NotFound("invitation (the link is unknown, used, revoked or expired)")
}

/// Reads the invitation behind a link without changing it.
pub async fn offer(tx: &mut PgConnection, token: &str) -> Result<Offer, Error> {
    pending_by_token(tx, token).await
}

/// Makes `user` a member as the invitation says. The account's address must be the invited
/// one: a link forwarded to someone else does not let them in.
pub async fn accept(
    tx: &mut PgConnection,
    token: &str,
    user_id: Uuid,
    user_email: &str,
) -> Result<(Offer, Member), Error> {
    let offer = pending_by_token(tx, token).await?;
    if !offer.email.eq_ignore_ascii_case(user_email.trim()) {
        return Err(Error::Forbidden(
            "this invitation is for another address: sign in with the invited one",
        ));
    }
    let member = workspaces::add_member(tx, offer.workspace_id, user_id, offer.role).await?;
    sqlx::query("UPDATE invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1")
        .bind(offer.invitation_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok((offer, member))
}

/// Declines the invitation behind `token`: the link stops working and nobody joins.
pub async fn decline(tx: &mut PgConnection, token: &str) -> Result<Offer, Error> {
    let offer = pending_by_token(tx, token).await?;
    sqlx::query("UPDATE invitations SET declined_at = now() WHERE id = $1")
        .bind(offer.invitation_id)
        .execute(&mut *tx)
        .await?;
    Ok(offer)
}

/// Settled and expired invitations older than `before` are forgotten.
pub async fn purge(db: &sqlx::PgPool, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM invitations
         WHERE created_at < $1
           AND (accepted_at IS NOT NULL OR declined_at IS NOT NULL OR revoked_at IS NOT NULL
                OR expires_at < now())",
    )
    .bind(before)
    .execute(db)
    .await?
    .rows_affected())
}
