//! Workspaces, memberships and API keys.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Role, api_keys};
use crate::error::{Error, on_unique_violation};
use crate::pagination::{Page, PageParams};

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct WorkspaceWithRole {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// Creates a workspace with `owner` as its owner.
pub async fn create(
    tx: &mut PgConnection,
    name: &str,
    owner: Uuid,
) -> Result<Workspace, sqlx::Error> {
    let workspace: Workspace = sqlx::query_as(
        "INSERT INTO workspaces (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(workspace.id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    Ok(workspace)
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<Workspace>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The user's workspaces, oldest first.
pub async fn list_for_user(
    db: &PgPool,
    user_id: Uuid,
    page: &PageParams,
) -> Result<Page<WorkspaceWithRole>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<WorkspaceWithRole> = sqlx::query_as(
        "SELECT w.id, w.name, m.role, w.created_at
         FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.user_id = $1 AND ($2::uuid IS NULL OR w.id > $2)
         ORDER BY w.id LIMIT $3",
    )
    .bind(user_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |w| w.id))
}

pub async fn all_for_user(
    db: &PgPool,
    user_id: Uuid,
) -> Result<Vec<WorkspaceWithRole>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.id, w.name, m.role, w.created_at
         FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.user_id = $1 ORDER BY w.id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

pub async fn add_member(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<Member, Error> {
    sqlx::query_as(
        "WITH m AS (
            INSERT INTO memberships (workspace_id, user_id, role) VALUES ($1, $2, $3)
            RETURNING user_id, role, created_at)
         SELECT m.user_id, u.email::text AS email, u.name, m.role, m.created_at
         FROM m JOIN users u ON u.id = m.user_id",
    )
    .bind(workspace_id)
    .bind(user_id)
    .bind(role)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        on_unique_violation(
            e,
            "memberships_pkey",
            "this user is already a member of the workspace",
        )
    })
}

/// The member's role, or `None` when `user_id` is not a member; locks the membership for the
/// caller's transaction.
pub async fn member_role(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Refuses a change that would leave the workspace without an owner once `user_id` stops
/// being one. Locks the owners' memberships, so two such changes at once cannot both pass.
pub async fn keep_an_owner(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<(), Error> {
    let others: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM memberships
         WHERE workspace_id = $1 AND role = 'owner' AND user_id <> $2 FOR UPDATE",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    if others.is_empty() {
        return Err(Error::Conflict(
            "the workspace needs an owner: make another member owner first".into(),
        ));
    }
    Ok(())
}

pub async fn set_role(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<Member, Error> {
    sqlx::query_as(
        "WITH m AS (
            UPDATE memberships SET role = $3 WHERE workspace_id = $1 AND user_id = $2
            RETURNING user_id, role, created_at)
         SELECT m.user_id, u.email::text AS email, u.name, m.role, m.created_at
         FROM m JOIN users u ON u.id = m.user_id",
    )
    .bind(workspace_id)
    .bind(user_id)
    .bind(role)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound("member"))
}

pub async fn remove_member(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn list_members(
    db: &PgPool,
    workspace_id: Uuid,
    page: &PageParams,
) -> Result<Page<Member>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<Member> = sqlx::query_as(
        "SELECT m.user_id, u.email::text AS email, u.name, m.role, m.created_at
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2)
         ORDER BY m.user_id LIMIT $3",
    )
    .bind(workspace_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |m| m.user_id))
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    /// The visible start of the key (`cmk_<prefix>_…`).
    pub prefix: String,
    pub role: Role,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn create_api_key(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    name: &str,
    role: Role,
    created_by: Option<Uuid>,
) -> Result<(ApiKeyInfo, String), sqlx::Error> {
    let new = api_keys::generate();
    let info: ApiKeyInfo = sqlx::query_as(
        "INSERT INTO api_keys (id, workspace_id, name, prefix, key_hash, role, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, name, prefix, role, created_by, created_at, last_used_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(name)
    .bind(&new.prefix)
    .bind(&new.hash)
    .bind(role)
    .bind(created_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok((info, new.key))
}

pub async fn list_api_keys(
    db: &PgPool,
    workspace_id: Uuid,
    page: &PageParams,
) -> Result<Page<ApiKeyInfo>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<ApiKeyInfo> = sqlx::query_as(
        "SELECT id, name, prefix, role, created_by, created_at, last_used_at, revoked_at
         FROM api_keys WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
    )
    .bind(workspace_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |k| k.id))
}

/// Revokes a key of this workspace; `None` if the workspace has no such key.
pub async fn revoke_api_key(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    key_id: Uuid,
) -> Result<Option<ApiKeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
         WHERE id = $1 AND workspace_id = $2
         RETURNING id, name, prefix, role, created_by, created_at, last_used_at, revoked_at",
    )
    .bind(key_id)
    .bind(workspace_id)
    .fetch_optional(&mut *tx)
    .await
}
