//! The per-workspace audit log of security-relevant actions. Append-only (a trigger refuses edits).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::Error;
use crate::pagination::{Page, PageParams};

pub struct Entry {
    pub workspace_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub client_addr: Option<IpAddr>,
    pub details: serde_json::Value,
}

impl Entry {
    pub fn new(action: &'static str) -> Entry {
        Entry {
            workspace_id: None,
            actor_user_id: None,
            actor_api_key_id: None,
            action,
            target_type: None,
            target_id: None,
            client_addr: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    /// An action taken by `caller` in `workspace_id`.
    pub fn by(caller: &Caller, workspace_id: Uuid, action: &'static str) -> Entry {
        Entry {
            workspace_id: Some(workspace_id),
            actor_user_id: caller.user_id(),
            actor_api_key_id: caller.api_key_id(),
            client_addr: caller.client_addr,
            ..Entry::new(action)
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl ToString) -> Entry {
        self.target_type = Some(kind);
        self.target_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Entry {
        self.details = details;
        self
    }
}

pub async fn record<'e>(db: impl PgExecutor<'e>, entry: Entry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log
            (workspace_id, actor_user_id, actor_api_key_id, action, target_type, target_id, client_addr, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.workspace_id)
    .bind(entry.actor_user_id)
    .bind(entry.actor_api_key_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.client_addr.map(|a| a.to_string()))
    .bind(entry.details)
    .execute(db)
    .await?;
    Ok(())
}

/// Records an event about a person in every workspace they belong to (a login concerns them all),
/// or once without a workspace when they belong to none.
pub async fn record_for_member(
    db: &PgPool,
    user_id: Uuid,
    entry: Entry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log
            (workspace_id, actor_user_id, action, target_type, target_id, client_addr, details)
         SELECT ws, $1, $2, $3, $4, $5, $6
         FROM (SELECT workspace_id AS ws FROM memberships WHERE user_id = $1
               UNION ALL SELECT NULL WHERE NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)) w",
    )
    .bind(user_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.client_addr.map(|a| a.to_string()))
    .bind(entry.details)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub action: String,
    pub actor_user_id: Option<Uuid>,
    pub actor_email: Option<String>,
    pub actor_api_key_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub client_addr: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Newest first.
pub async fn list(
    db: &PgPool,
    workspace_id: Uuid,
    page: &PageParams,
) -> Result<Page<AuditRecord>, Error> {
    let after: Option<i64> = page.after()?;
    let limit = page.limit();
    let rows: Vec<AuditRecord> = sqlx::query_as(
        "SELECT a.id, a.action, a.actor_user_id, u.email::text AS actor_email, a.actor_api_key_id,
                a.target_type, a.target_id, a.client_addr, a.details, a.created_at
         FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id
         WHERE a.workspace_id = $1 AND ($2::bigint IS NULL OR a.id < $2)
         ORDER BY a.id DESC LIMIT $3",
    )
    .bind(workspace_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |r| r.id))
}
