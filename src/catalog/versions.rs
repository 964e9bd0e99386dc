//! Versions of a product's content: history, what is live, open proposals, and new proposals
//! from people (edits, rollbacks).
//!
//! Versions are immutable; only their review state moves. A version of a store view holds
//! only what differs from the default scope, so its effective content is the default's live
//! content with the view's version on top.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::content::{Content, DEFAULT_SCOPE};
use crate::error::Error;
use crate::pagination::{Page, PageParams};

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum VersionOrigin {
    /// Read from the store.
    Pull,
    /// Proposed by an AI provider.
    Ai,
    /// Written by a person.
    Human,
    /// A person asked for an earlier version back.
    Rollback,
    /// Written to the store by a push.
    Push,
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum VersionState {
    Live,
    Draft,
    Proposed,
    Approved,
    Rejected,
    Pushed,
    Superseded,
    Conflict,
    Failed,
}

/// States of a version that still waits for review or push.
pub const OPEN_STATES_SQL: &str = "'proposed', 'approved', 'conflict'";

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Version {
    pub id: Uuid,
    pub product_id: Uuid,
    /// `all` (default values) or a store view code.
    pub store_view: String,
    pub origin: VersionOrigin,
    pub state: VersionState,
    /// The version this one was made from: the scope's live version at the time.
    pub parent_id: Option<Uuid>,
    pub author_user_id: Option<Uuid>,
    /// The API key the change was made with, if any.
    pub author_api_key_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub note: Option<String>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<Uuid>,
    /// As stored: for a store view, only what differs from the default scope.
    #[sqlx(json)]
    pub content: Content,
    /// For a store view, the default scope's live content with this version on top (what the
    /// store view would show). Only in a product's detail.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<Content>,
}

const VERSION_COLUMNS: &str = "v.id, v.product_id, v.store_view, v.origin, v.state, v.parent_id,
    v.author_user_id, v.author_api_key_id, v.job_id, v.note, v.meta, v.created_at, v.decided_at, v.decided_by, v.content";

/// What a scope shows given its stored content: itself for the default scope, the default's
/// content with the overrides on top for a store view.
pub fn effective(scope: &str, default: &Content, stored: &Content) -> Content {
    if scope == DEFAULT_SCOPE {
        stored.clone()
    } else {
        default.with_overrides(stored)
    }
}

/// A version of this product, or 404.
pub async fn get_of_product(
    db: &PgPool,
    product_id: Uuid,
    version_id: Uuid,
) -> Result<Version, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM product_versions v WHERE v.id = $1 AND v.product_id = $2"
    )))
    .bind(version_id)
    .bind(product_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("version"))
}

/// A product's versions, newest first, optionally of one scope.
pub async fn history(
    db: &PgPool,
    product_id: Uuid,
    store_view: Option<&str>,
    page: &PageParams,
) -> Result<Page<Version>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    // v7 ids grow with time, so id order is creation order.
    let rows: Vec<Version> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM product_versions v
         WHERE v.product_id = $1 AND ($2::text IS NULL OR v.store_view = $2)
           AND ($3::uuid IS NULL OR v.id < $3)
         ORDER BY v.id DESC LIMIT $4"
    )))
    .bind(product_id)
    .bind(store_view)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |v| v.id))
}

/// The live version of each scope of a product, by scope.
pub async fn live<'e>(
    db: impl PgExecutor<'e>,
    product_id: Uuid,
) -> Result<HashMap<String, Version>, sqlx::Error> {
    let rows: Vec<Version> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM product_live pl JOIN product_versions v ON v.id = pl.version_id
         WHERE pl.product_id = $1"
    )))
    .bind(product_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|v| (v.store_view.clone(), v))
        .collect())
}

/// The newest open proposal (proposed, approved or conflict) of each scope of a product.
pub async fn latest_open(db: &PgPool, product_id: Uuid) -> Result<Vec<Version>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT ON (v.store_view) {VERSION_COLUMNS} FROM product_versions v
         WHERE v.product_id = $1 AND v.state IN ({OPEN_STATES_SQL})
         ORDER BY v.store_view, v.id DESC"
    )))
    .bind(product_id)
    .fetch_all(db)
    .await
}

/// Serialises proposals for one product (edits, rollbacks) until the transaction ends, so
/// two of them cannot both take the same live version as parent and skip superseding each
/// other. An advisory lock, not a row lock: a sync writing the product is not held up.
pub async fn lock_for_proposal(tx: &mut PgConnection, product_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(727275, hashtext($1::text))")
        .bind(product_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Who made a change: a person, an API key, or neither (a provider's proposal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Author {
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
}

impl Author {
    pub fn of(caller: &crate::auth::Caller) -> Author {
        Author {
            user_id: caller.user_id(),
            api_key_id: caller.api_key_id(),
        }
    }
}

pub struct NewProposal<'a> {
    pub product_id: Uuid,
    pub workspace_id: Uuid,
    pub store_view: &'a str,
    pub content: &'a Content,
    pub parent_id: Option<Uuid>,
    pub origin: VersionOrigin,
    pub author: Author,
    pub note: Option<&'a str>,
    pub meta: serde_json::Value,
}

/// Writes a proposal and supersedes the older ones still `proposed` in the same scope from the
/// same origin: a person's newer edit replaces their earlier one instead of queueing behind it.
/// Approved and conflicting proposals are decisions already taken and stay as they are.
pub async fn propose(tx: &mut PgConnection, new: NewProposal<'_>) -> Result<Version, sqlx::Error> {
    let id = Uuid::now_v7();
    let version: Version = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO product_versions AS v (id, product_id, workspace_id, store_view, content, content_hash,
             parent_id, origin, state, author_user_id, author_api_key_id, note, meta)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'proposed', $9, $12, $10,
                 -- A store view's proposal remembers the default values it was made against:
                 -- a push compares the store with what the view showed then.
                 $11 || CASE WHEN $4 <> 'all' THEN jsonb_build_object('default_base',
                     (SELECT version_id FROM product_live WHERE product_id = $2 AND store_view = 'all'))
                   ELSE '{{}}'::jsonb END)
         RETURNING {VERSION_COLUMNS}"
    )))
    .bind(id)
    .bind(new.product_id)
    .bind(new.workspace_id)
    .bind(new.store_view)
    .bind(sqlx::types::Json(new.content))
    .bind(new.content.hash())
    .bind(new.parent_id)
    .bind(new.origin)
    .bind(new.author.user_id)
    .bind(new.note)
    .bind(&new.meta)
    .bind(new.author.api_key_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE product_versions SET state = 'superseded',
             meta = meta || jsonb_build_object('superseded_by', $1::uuid)
         WHERE product_id = $2 AND store_view = $3 AND origin = $4 AND state = 'proposed' AND id <> $1",
    )
    .bind(id)
    .bind(new.product_id)
    .bind(new.store_view)
    .bind(new.origin)
    .execute(&mut *tx)
    .await?;
    Ok(version)
}
