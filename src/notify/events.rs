//! The events table: one row per thing that happened, written with its cause.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// What kind of thing happened. The names are the webhook event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventKind {
    /// A job or pipeline run left proposals waiting for review (one event per run).
    #[serde(rename = "review.ready")]
    ReviewReady,
    /// A scheduled pipeline run ended: its summary.
    #[serde(rename = "pipeline.finished")]
    PipelineFinished,
    #[serde(rename = "job.failed")]
    JobFailed,
    /// Magento refused the store's credentials: someone must reauthorise the integration.
    #[serde(rename = "store.needs_reauth")]
    StoreNeedsReauth,
    /// Magento refused an API resource the integration was not granted.
    #[serde(rename = "store.permission_missing")]
    StorePermissionMissing,
    #[serde(rename = "export.ready")]
    ExportReady,
    /// The workspace's daily AI token budget ran out.
    #[serde(rename = "budget.reached")]
    BudgetReached,
    #[serde(rename = "member.invited")]
    MemberInvited,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::ReviewReady,
        EventKind::PipelineFinished,
        EventKind::JobFailed,
        EventKind::StoreNeedsReauth,
        EventKind::StorePermissionMissing,
        EventKind::ExportReady,
        EventKind::BudgetReached,
        EventKind::MemberInvited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ReviewReady => "review.ready",
            EventKind::PipelineFinished => "pipeline.finished",
            EventKind::JobFailed => "job.failed",
            EventKind::StoreNeedsReauth => "store.needs_reauth",
            EventKind::StorePermissionMissing => "store.permission_missing",
            EventKind::ExportReady => "export.ready",
            EventKind::BudgetReached => "budget.reached",
            EventKind::MemberInvited => "member.invited",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// What the kind means, for people (preferences page, digest).
    pub fn label(self) -> &'static str {
        match self {
            EventKind::ReviewReady => "Proposals wait for review",
            EventKind::PipelineFinished => "A scheduled run finished",
            EventKind::JobFailed => "A job failed",
            EventKind::StoreNeedsReauth => "A store needs reauthorisation",
            EventKind::StorePermissionMissing => "A store lacks an API permission",
            EventKind::ExportReady => "An export is ready",
            EventKind::BudgetReached => "The daily AI budget is used up",
            EventKind::MemberInvited => "Someone was invited",
        }
    }
}

/// An event to record; see [`record`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub workspace_id: Uuid,
    pub store_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    /// One line for people ("12 proposals wait for review in Demo store").
    pub summary: String,
    /// Details for webhooks (`data`) and mail.
    pub data: serde_json::Value,
}

/// A recorded event.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Event {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The event type (`review.ready`, …).
    pub kind: String,
    pub store_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub summary: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

pub const EVENT_COLUMNS: &str =
    "id, workspace_id, kind, store_id, job_id, summary, data, created_at";

/// The apalis queue the fan-out job runs on.
pub const QUEUE: &str = "catalogd.notify";

/// What the fan-out task carries: only the id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanOutTask {
    pub event_id: Uuid,
}

/// Records the event and queues its fan-out, in the caller's transaction: the event exists
/// exactly when what caused it committed. An event about a job is kept once per kind and job
/// (a retried transaction does not raise it twice); the id of the one kept is returned.
pub async fn record(conn: &mut PgConnection, event: NewEvent) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let dedupe_key = event
        .job_id
        .map(|job| format!("{}:{job}", event.kind.as_str()));
    let summary: String = event.summary.chars().take(500).collect();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO events (id, workspace_id, kind, store_id, job_id, summary, data, dedupe_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (workspace_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(event.workspace_id)
    .bind(event.kind.as_str())
    .bind(event.store_id)
    .bind(event.job_id)
    .bind(&summary)
    .bind(&event.data)
    .bind(&dedupe_key)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => {
            crate::notify::workers::push(&mut *conn, QUEUE, &FanOutTask { event_id: id }).await?;
            tracing::info!(event_id = %id, kind = event.kind.as_str(), workspace_id = %event.workspace_id,
                "event recorded");
            Ok(id)
        }
        None => {
            sqlx::query_scalar("SELECT id FROM events WHERE workspace_id = $1 AND dedupe_key = $2")
                .bind(event.workspace_id)
                .bind(&dedupe_key)
                .fetch_one(&mut *conn)
                .await
        }
    }
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<Event>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_webhook_event_types() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, crate::webhooks::EVENT_TYPES);
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::json!(kind), kind.as_str());
        }
        assert_eq!(EventKind::parse("review.later"), None);
    }
}
