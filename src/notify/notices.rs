//! In-app notices: the events a person gets in a workspace, newest first, read or not.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::compose;
use super::events::Event;
use crate::error::Error;
use crate::pagination::{Page, PageParams};

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Notice {
    pub event_id: Uuid,
    /// The event type (`review.ready`, …).
    pub kind: String,
    pub summary: String,
    pub store_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    /// The UI page the event is about.
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// Null while unread.
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    event: Event,
    read_at: Option<DateTime<Utc>>,
}

/// The person's notices in the workspace, newest first.
pub async fn list(
    db: &PgPool,
    base: &str,
    user_id: Uuid,
    workspace_id: Uuid,
    unread_only: bool,
    page: &PageParams,
) -> Result<Page<Notice>, Error> {
    let before: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.id, e.workspace_id, e.kind, e.store_id, e.job_id, e.summary, e.data, e.created_at,
                n.read_at
         FROM notifications n JOIN events e ON e.id = n.event_id
         WHERE n.user_id = $1 AND n.workspace_id = $2 AND ($3::uuid IS NULL OR n.event_id < $3)
           AND (NOT $4 OR n.read_at IS NULL)
         ORDER BY n.event_id DESC LIMIT $5",
    )
    .bind(user_id)
    .bind(workspace_id)
    .bind(before)
    .bind(unread_only)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    let notices = rows
        .into_iter()
        .map(|row| Notice {
            url: compose::link(base, &row.event),
            event_id: row.event.id,
            kind: row.event.kind,
            summary: row.event.summary,
            store_id: row.event.store_id,
            job_id: row.event.job_id,
            created_at: row.event.created_at,
            read_at: row.read_at,
        })
        .collect();
    Ok(Page::from_rows(notices, limit, |n: &Notice| n.event_id))
}

pub async fn unread_count(
    db: &PgPool,
    user_id: Uuid,
    workspace_id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND workspace_id = $2 AND read_at IS NULL",
    )
    .bind(user_id)
    .bind(workspace_id)
    .fetch_one(db)
    .await
}

/// Marks the named notices read (all of the workspace's when `ids` is `None`); returns how
/// many changed.
pub async fn mark_read(
    db: &PgPool,
    user_id: Uuid,
    workspace_id: Uuid,
    ids: Option<&[Uuid]>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE notifications SET read_at = now()
         WHERE user_id = $1 AND workspace_id = $2 AND read_at IS NULL
           AND ($3::uuid[] IS NULL OR event_id = ANY($3))",
    )
    .bind(user_id)
    .bind(workspace_id)
    .bind(ids)
    .execute(db)
    .await?
    .rows_affected())
}
