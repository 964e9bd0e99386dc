//! From an event to one waiting delivery per subscribed endpoint, in the event's transaction.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// What endpoints are told about an event.
pub struct Event<'a> {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The event type (`review.ready`, …).
    pub kind: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// The body's `data`.
    pub data: &'a serde_json::Value,
}

/// The body every attempt sends: `{"type", "timestamp", "data"}`.
pub fn body(event: &Event<'_>) -> String {
    serde_json::json!({
        "type": event.kind,
        "timestamp": event.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": event.data,
    })
    .to_string()
}

/// Queues the event for every enabled endpoint of its workspace subscribed to its type, once
/// per endpoint however often it is called; the dispatchers are woken when the transaction
/// commits.
pub async fn enqueue(conn: &mut PgConnection, event: &Event<'_>) -> Result<(), sqlx::Error> {
    let endpoints: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM webhooks
         WHERE workspace_id = $1 AND enabled AND $2 = ANY(events) ORDER BY id",
    )
    .bind(event.workspace_id)
    .bind(event.kind)
    .fetch_all(&mut *conn)
    .await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let body = body(event);
    let ids: Vec<Uuid> = endpoints.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, workspace_id, event_id, event_type, body, next_attempt_at)
         SELECT d.id, d.webhook_id, $3, $4, $5, $6, now()
         FROM unnest($1::uuid[], $2::uuid[]) AS d(id, webhook_id)
         ON CONFLICT (webhook_id, event_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&endpoints)
    .bind(event.workspace_id)
    .bind(event.id)
    .bind(event.kind)
    .bind(&body)
    .execute(&mut *conn)
    .await?;
    super::dispatch::wake(conn).await
}
