//! Webhooks: endpoints a workspace's admins register to receive its events, signed the
//! Standard Webhooks way ([`signing`]).
//!
//! Every event of a subscribed type becomes one delivery per endpoint ([`fan_out`]), written in
//! the transaction of the event, so the work that raised it only inserts rows. Dispatchers in
//! the worker processes send due deliveries and retry failures on Standard Webhooks' schedule
//! ([`dispatch`]); each attempt is recorded with its status, duration and the head of the answer.

pub mod dispatch;
pub mod fan_out;
pub mod signing;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Resource;
use crate::crypto::Keyring;
use crate::error::Error;
use crate::pagination::{Page, PageParams};

/// The event types an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "review.ready",
    "pipeline.finished",
    "job.failed",
    "store.needs_reauth",
    "store.permission_missing",
    "export.ready",
    "budget.reached",
    "member.invited",
];

/// An endpoint as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Event types delivered to this endpoint.
    pub events: Vec<String>,
    pub description: String,
    /// A disabled endpoint receives nothing.
    pub enabled: bool,
    /// Why the endpoint was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts; null after a success.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const WEBHOOK_COLUMNS: &str =
    "id, url, events, description, enabled, disabled_reason, failing_since,
    created_by, created_at, updated_at";

impl Resource for Webhook {
    const NAME: &'static str = "webhook";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT workspace_id FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

/// Where the sealed secret of endpoint `id` is bound (see [`crate::crypto`]).
pub fn secret_context(id: Uuid) -> String {
    format!("webhooks.secret:{id}")
}

/// The signing key of a stored endpoint.
pub fn open_secret(keyring: &Keyring, id: Uuid, sealed: &[u8]) -> Result<SecretSlice<u8>, String> {
    keyring
        .open(sealed, &secret_context(id))
        .map(SecretSlice::from)
        .map_err(|e| format!("the endpoint's secret does not open: {e}"))
}

/// A checked endpoint URL: http(s), no credentials in it, at most 2,000 characters, and not
/// an address the egress policy refuses (a name is checked on what it resolves to at each
/// delivery).
pub fn parse_url(egress: &egress::Policy, raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    let url =
        url::Url::parse(raw).map_err(|_| Error::invalid("url", "url is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid("url", "url must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            "url",
            "url must not carry credentials; authenticate deliveries by their signature",
        ));
    }
    if raw.len() > 2000 {
        return Err(Error::invalid("url", "url is longer than 2000 characters"));
    }
    egress
        .check_url(&url)
        .map_err(|refusal| Error::invalid("url", format!("url is refused: {refusal}")))?;
    Ok(url.to_string())
}

/// Known, distinct event types, at least one.
pub fn parse_events(raw: Vec<String>) -> Result<Vec<String>, Error> {
    let mut events: Vec<String> = Vec::new();
    for event in raw {
        let event = event.trim().to_string();
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err(Error::invalid(
                "events",
                format!(
                    "{event:?} is not an event type; known types: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        return Err(Error::invalid(
            "events",
            "events must name at least one event type",
        ));
    }
    Ok(events)
}

/// At most 500 characters without control characters (line breaks allowed).
pub fn parse_description(raw: Option<String>) -> Result<String, Error> {
    let value = raw.unwrap_or_default().trim().to_string();
    if value.chars().count() > 500
        || value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(
            "description",
            "description must be at most 500 characters without control characters",
        ));
    }
    Ok(value)
}

pub struct NewWebhook {
    pub workspace_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub created_by: Option<Uuid>,
}

/// Stores a new endpoint with a fresh secret; returns it and the secret (`whsec_…`).
pub async fn create(
    tx: &mut PgConnection,
    keyring: &Keyring,
    new: NewWebhook,
) -> Result<(Webhook, String), sqlx::Error> {
    let id = Uuid::now_v7();
    let key = signing::new_key();
    let sealed = keyring.seal(key.expose_secret(), &secret_context(id));
    let webhook: Webhook = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhooks (id, workspace_id, url, events, description, secret, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {WEBHOOK_COLUMNS}"
    )))
    .bind(id)
    .bind(new.workspace_id)
    .bind(&new.url)
    .bind(&new.events)
    .bind(&new.description)
    .bind(sealed)
    .bind(new.created_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok((webhook, signing::encode_secret(&key)))
}

pub async fn list(
    db: &PgPool,
    workspace_id: Uuid,
    page: &PageParams,
) -> Result<Page<Webhook>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<Webhook> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |w| w.id))
}

/// The endpoint `id` of the workspace, locked for a change when `conn` is in a transaction.
pub async fn get_for_update(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Webhook, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND workspace_id = $2 FOR UPDATE"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound("webhook"))
}

pub async fn get(db: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Webhook, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("webhook"))
}

/// Writes the endpoint's editable fields. Enabling clears the failure record; disabling gives
/// up the deliveries still waiting, so nothing arrives late after a re-enable.
pub async fn save(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    webhook: &Webhook,
) -> Result<Webhook, sqlx::Error> {
    let saved: Webhook = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhooks SET url = $3, events = $4, description = $5, enabled = $6,
            disabled_reason = CASE WHEN $6 THEN NULL ELSE $7 END,
            failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END
         WHERE id = $1 AND workspace_id = $2 RETURNING {WEBHOOK_COLUMNS}"
    )))
    .bind(webhook.id)
    .bind(workspace_id)
    .bind(&webhook.url)
    .bind(&webhook.events)
    .bind(&webhook.description)
    .bind(webhook.enabled)
    .bind(&webhook.disabled_reason)
    .fetch_one(&mut *tx)
    .await?;
    if !saved.enabled {
        give_up_pending(tx, saved.id, "the endpoint was disabled").await?;
    }
    Ok(saved)
}

/// Ends the endpoint's waiting deliveries as failed, recording why as their last attempt.
pub async fn give_up_pending(
    tx: &mut PgConnection,
    webhook_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
            lease_until = NULL, finished_at = now(), given_up_reason = $2
         WHERE webhook_id = $1 AND status = 'pending'",
    )
    .bind(webhook_id)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Deletes the endpoint and its delivery history; `false` if the workspace has no such endpoint.
pub async fn delete(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM webhooks WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1,
    )
}

/// One message to one endpoint and its attempts so far.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Delivery {
    /// Also the `webhook-id` header of every attempt (`msg_` + this id without dashes).
    pub id: Uuid,
    pub event_id: Option<Uuid>,
    pub event_type: String,
    /// `pending` (waiting for its next attempt), `delivered`, or `failed` (retries exhausted
    /// or the endpoint disabled).
    pub status: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why no further attempt is made, when the delivery failed without one.
    pub given_up_reason: Option<String>,
    /// The body sent with every attempt.
    pub payload: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    event_id: Option<Uuid>,
    event_type: String,
    status: String,
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    given_up_reason: Option<String>,
    body: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    #[serde(skip)]
    pub delivery_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// `succeeded` (a 2xx answer) or `failed`.
    pub status: String,
    pub duration_ms: i32,
    /// The endpoint's HTTP status; null when no answer came (timeout, connection error).
    pub response_status: Option<i32>,
    /// The first KiB of the answer, as text.
    pub response_body: Option<String>,
    /// Why the attempt failed without an answer.
    pub error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, event_id, event_type, status, next_attempt_at, created_at,
    finished_at, given_up_reason, body";

/// The endpoint's deliveries, newest first, each with its attempts.
pub async fn deliveries(
    db: &PgPool,
    webhook_id: Uuid,
    page: &PageParams,
) -> Result<Page<Delivery>, Error> {
    let before: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE webhook_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(webhook_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attempts = attempts_of(db, &ids).await?;
    let deliveries = rows
        .into_iter()
        .map(|row| with_attempts(row, &attempts))
        .collect();
    Ok(Page::from_rows(deliveries, limit, |d: &Delivery| d.id))
}

pub async fn delivery(db: &PgPool, webhook_id: Uuid, delivery_id: Uuid) -> Result<Delivery, Error> {
    let row: DeliveryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2"
    )))
    .bind(delivery_id)
    .bind(webhook_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("delivery"))?;
    let attempts = attempts_of(db, &[row.id]).await?;
    Ok(with_attempts(row, &attempts))
}

async fn attempts_of(db: &PgPool, ids: &[Uuid]) -> Result<Vec<Attempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT delivery_id, attempted_at,
            CASE WHEN succeeded THEN 'succeeded' ELSE 'failed' END AS status,
            duration_ms, response_status, response_body, error
         FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY attempted_at, id",
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

fn with_attempts(row: DeliveryRow, attempts: &[Attempt]) -> Delivery {
    Delivery {
        id: row.id,
        event_id: row.event_id,
        event_type: row.event_type,
        status: row.status,
        next_attempt_at: row.next_attempt_at,
        created_at: row.created_at,
        finished_at: row.finished_at,
        given_up_reason: row.given_up_reason,
        payload: serde_json::from_str(&row.body).unwrap_or(serde_json::Value::Null),
        attempts: attempts
            .iter()
            .filter(|a| a.delivery_id == row.id)
            .cloned()
            .collect(),
    }
}

/// Sends the delivery again now, with the same `webhook-id` and body: a new attempt joins its
/// history. Refused while the endpoint is disabled.
pub async fn redeliver(
    tx: &mut PgConnection,
    webhook: &Webhook,
    delivery_id: Uuid,
) -> Result<(), Error> {
    if !webhook.enabled {
        return Err(Error::Conflict(
            "the endpoint is disabled: enable it first (PATCH with {\"enabled\": true})".into(),
        ));
    }
    let updated = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(),
            finished_at = NULL, given_up_reason = NULL
         WHERE id = $1 AND webhook_id = $2",
    )
    .bind(delivery_id)
    .bind(webhook.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::NotFound("delivery"));
    }
    dispatch::wake(tx).await?;
    Ok(())
}
