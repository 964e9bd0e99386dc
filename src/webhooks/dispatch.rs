//! Sending deliveries: every worker process runs one dispatcher.
//!
//! The dispatcher claims due deliveries with a lease (`FOR UPDATE SKIP LOCKED`, so any number
//! of processes share the work), sends them through the egress policy, and records each attempt
//! with the outcome in one transaction. A failure (timeout, connection error, non-2xx answer)
//! is retried on Standard Webhooks' schedule with the same `webhook-id`; a dispatcher that dies
//! mid-attempt leaves a lease that expires, and the delivery is sent again (receivers dedupe on
//! `webhook-id`). It sleeps until the next delivery is due or a `NOTIFY` on [`CHANNEL`] (sent
//! when deliveries are queued) wakes it.
//!
//! An endpoint whose attempts have all failed for `[webhooks] disable_after_secs` is disabled,
//! its waiting deliveries are given up, the workspace's audit log says so, and its owners (and
//! the admin who created the endpoint) are mailed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header;
use sqlx::PgConnection;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::{open_secret, signing};
use crate::audit_log::{self, Entry};
use crate::state::AppState;

/// The channel a `NOTIFY` wakes the dispatchers on.
pub const CHANNEL: &str = "catalogd_webhooks";

/// Standard Webhooks' retry schedule: the waits after the first, second, … failed attempt, in
/// units of `[webhooks] retry_unit_ms` (seconds by default).
pub const SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// How much of an answer is kept with its attempt.
const ANSWER_HEAD: usize = 1024;

/// The longest sleep without a due delivery (another process may queue without reaching this
/// one's listener, e.g. while it reconnects).
const MAX_IDLE: Duration = Duration::from_secs(30);

/// Wakes the dispatchers when the caller's transaction commits.
pub async fn wake(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The `webhook-id` of a delivery: the same on every attempt.
pub fn message_id(delivery_id: Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

/// Sends due deliveries until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let settings = &state.settings.webhooks;
    let client = match state
        .egress
        .client()
        .timeout(Duration::from_secs(settings.timeout_secs))
        .user_agent(concat!("catalogd-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook deliveries cannot start: no HTTP client");
            return;
        }
    };
    let mut listener: Option<PgListener> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if listener.is_none() {
            listener = listen(&state).await;
        }
        loop {
            match deliver_due(&state, &client).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries: the database failed");
                    break;
                }
            }
        }
        let wait = match (&listener, next_due(&state).await) {
            (None, _) => Duration::from_secs(1),
            (Some(_), Ok(Some(wait))) => wait.min(MAX_IDLE),
            (Some(_), Ok(None)) => MAX_IDLE,
            (Some(_), Err(_)) => Duration::from_secs(1),
        };
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
            woken = notified(&mut listener) => {
                if let Err(e) = woken {
                    tracing::warn!(error = %e, "webhook deliveries: lost the notification channel");
                    listener = None;
                }
            }
        }
    }
}

async fn listen(state: &AppState) -> Option<PgListener> {
    let connect = async {
        let mut listener = PgListener::connect_with(&state.db).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match connect.await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "webhook deliveries: cannot listen for new ones; polling");
            None
        }
    }
}

async fn notified(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// Time until the next waiting delivery is due (or its lease ends), if any waits.
async fn next_due(state: &AppState) -> Result<Option<Duration>, sqlx::Error> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT GREATEST(EXTRACT(EPOCH FROM min(GREATEST(d.next_attempt_at,
                    COALESCE(d.lease_until, d.next_attempt_at))) - now()), 0)::float8
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND w.enabled",
    )
    .fetch_one(&state.db)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.clamp(0.0, MAX_IDLE.as_secs_f64()))))
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    webhook_id: Uuid,
    workspace_id: Uuid,
    body: String,
    /// Attempts made before this one.
    attempts: i32,
    url: String,
    secret: Vec<u8>,
}

/// Claims up to `concurrency` due deliveries and sends them; returns how many were claimed.
async fn deliver_due(state: &AppState, client: &egress::HttpClient) -> Result<usize, sqlx::Error> {
    let settings = &state.settings.webhooks;
    let lease_secs = (settings.timeout_secs + 30) as f64;
    let claimed: Vec<Claimed> = sqlx::query_as(
        "WITH due AS (
            SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled
              AND (d.lease_until IS NULL OR d.lease_until < now())
            ORDER BY d.next_attempt_at LIMIT $1
            FOR UPDATE OF d SKIP LOCKED)
         UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => $2)
         FROM due, webhooks w
         WHERE d.id = due.id AND w.id = d.webhook_id
         RETURNING d.id, d.webhook_id, d.workspace_id, d.body, d.attempts, w.url, w.secret",
    )
    .bind(i64::from(settings.concurrency))
    .bind(lease_secs)
    .fetch_all(&state.db)
    .await?;
    let count = claimed.len();
    futures::stream::iter(claimed)
        .for_each_concurrent(settings.concurrency as usize, |delivery| async move {
            let id = delivery.id;
            if let Err(e) = attempt(state, client, delivery).await {
                // The lease runs out and the delivery is sent again.
                tracing::warn!(delivery_id = %id, error = %e, "recording a webhook attempt failed");
            }
        })
        .await;
    Ok(count)
}

/// What one attempt came to.
struct Outcome {
    succeeded: bool,
    response_status: Option<i32>,
    response_body: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn no_answer(error: String) -> Outcome {
        Outcome {
            succeeded: false,
            response_status: None,
            response_body: None,
            error: Some(error),
        }
    }
}

async fn attempt(
    state: &AppState,
    client: &egress::HttpClient,
    delivery: Claimed,
) -> Result<(), sqlx::Error> {
    let attempted_at = Utc::now();
    let started = Instant::now();
    let outcome = send(state, client, &delivery, attempted_at).await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    metrics::counter!(
        "webhook_attempts_total",
        "outcome" => if outcome.succeeded { "succeeded" } else { "failed" }
    )
    .increment(1);
    record(state, &delivery, attempted_at, duration_ms, outcome).await
}

async fn send(
    state: &AppState,
    client: &egress::HttpClient,
    delivery: &Claimed,
    attempted_at: DateTime<Utc>,
) -> Outcome {
    let key = match open_secret(&state.keyring, delivery.webhook_id, &delivery.secret) {
        Ok(key) => key,
        Err(e) => return Outcome::no_answer(e),
    };
    let id = message_id(delivery.id);
    let timestamp = attempted_at.timestamp();
    let request = client
        .post(&delivery.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signing::signature(&key, &id, timestamp, &delivery.body),
        )
        .body(delivery.body.clone());
    let answer = match client.send(request).await {
        Ok(answer) => answer,
        Err(e) => return Outcome::no_answer(e.to_string()),
    };
    let status = answer.status();
    let (body, error) = match answer.head(ANSWER_HEAD).await {
        Ok((head, _)) => (Some(readable(&head)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Outcome {
        // The endpoint said it took the message; a body that broke off after that changes
        // nothing.
        succeeded: status.is_success(),
        response_status: Some(i32::from(status.as_u16())),
        response_body: body,
        error,
    }
}

/// The answer's head as storable text (PostgreSQL text holds no NUL).
fn readable(head: &[u8]) -> String {
    String::from_utf8_lossy(head).replace('\0', "\u{FFFD}")
}

/// The wait before the retry that follows attempt number `made` (1 for the first), if any.
fn retry_after(made: i32, unit_ms: u64) -> Option<Duration> {
    let index = usize::try_from(made).ok()?.checked_sub(1)?;
    SCHEDULE
        .get(index)
        .map(|units| Duration::from_millis(units.saturating_mul(unit_ms)))
}

async fn record(
    state: &AppState,
    delivery: &Claimed,
    attempted_at: DateTime<Utc>,
    duration_ms: i32,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    let settings = &state.settings.webhooks;
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, duration_ms, succeeded,
            response_status, response_body, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(delivery.id)
    .bind(attempted_at)
    .bind(duration_ms)
    .bind(outcome.succeeded)
    .bind(outcome.response_status)
    .bind(&outcome.response_body)
    .bind(&outcome.error)
    .execute(&mut *tx)
    .await?;
    if outcome.succeeded {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                next_attempt_at = NULL, lease_until = NULL, finished_at = now()
             WHERE id = $1",
        )
        .bind(delivery.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
        )
        .bind(delivery.webhook_id)
        .execute(&mut *tx)
        .await?;
        return tx.commit().await;
    }
    let made = delivery.attempts.saturating_add(1);
    match retry_after(made, settings.retry_unit_ms) {
        Some(wait) => {
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL,
                    next_attempt_at = now() + make_interval(secs => $2)
                 WHERE id = $1",
            )
            .bind(delivery.id)
            .bind(wait.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1,
                    next_attempt_at = NULL, lease_until = NULL, finished_at = now()
                 WHERE id = $1",
            )
            .bind(delivery.id)
            .execute(&mut *tx)
            .await?;
        }
    }
    let failing_too_long: bool = sqlx::query_scalar(
        "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2)
         WHERE id = $1
         RETURNING enabled AND failing_since <= now() - make_interval(secs => $3)",
    )
    .bind(delivery.webhook_id)
    .bind(attempted_at)
    .bind(settings.disable_after_secs as f64)
    .fetch_one(&mut *tx)
    .await?;
    if failing_too_long {
        disable(&mut tx, state, delivery).await?;
    }
    tx.commit().await
}

/// Disables an endpoint that kept failing and gives up what it still had waiting.
async fn disable(
    tx: &mut PgConnection,
    state: &AppState,
    delivery: &Claimed,
) -> Result<(), sqlx::Error> {
    let days = state.settings.webhooks.disable_after_secs as f64 / 86_400.0;
    let reason = format!("every attempt failed for {days:.1} days");
    sqlx::query("UPDATE webhooks SET enabled = false, disabled_reason = $2 WHERE id = $1")
        .bind(delivery.webhook_id)
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
    super::give_up_pending(tx, delivery.webhook_id, "the endpoint was disabled").await?;
    let mut entry = Entry::new("webhook.disabled")
        .target("webhook", delivery.webhook_id)
        .details(serde_json::json!({"reason": reason}));
    entry.workspace_id = Some(delivery.workspace_id);
    audit_log::record(&mut *tx, entry).await?;
    mail_owners(tx, state, delivery, &reason).await?;
    tracing::warn!(webhook_id = %delivery.webhook_id, %reason, "webhook endpoint disabled");
    Ok(())
}

/// Tells the workspace's owners and the endpoint's creator (if still an admin there) that it
/// was disabled, once per run of failures.
async fn mail_owners(
    tx: &mut PgConnection,
    state: &AppState,
    delivery: &Claimed,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let (url, failing_since, workspace_name): (String, Option<DateTime<Utc>>, String) =
        sqlx::query_as(
            "SELECT w.url, w.failing_since, ws.name FROM webhooks w
             JOIN workspaces ws ON ws.id = w.workspace_id WHERE w.id = $1",
        )
        .bind(delivery.webhook_id)
        .fetch_one(&mut *tx)
        .await?;
    let recipients: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT u.id, u.email::text, u.name FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = $1
           AND (m.role = 'owner' OR (m.role = 'admin'
                AND u.id = (SELECT created_by FROM webhooks WHERE id = $2)))
         ORDER BY u.id",
    )
    .bind(delivery.workspace_id)
    .bind(delivery.webhook_id)
    .fetch_all(&mut *tx)
    .await?;
    let page = format!(
        "{}/w/{}/webhooks/{}",
        state.settings.public_base_url(),
        delivery.workspace_id,
        delivery.webhook_id
    );
    let since = failing_since.map_or_else(String::new, |t| t.timestamp().to_string());
    for (user_id, address, name) in recipients {
        let text = format!(
            "Hello {name},\n\nThe webhook endpoint {url} of the workspace {workspace_name} was \
             disabled: {reason}. Deliveries that were still waiting were given up, and new events \
             are not sent to it.\n\nWhen the endpoint answers again, enable it on {page} and \
             redeliver what it missed.\n"
        );
        let queued = crate::notify::mail::enqueue(
            tx,
            crate::notify::mail::OutgoingMail {
                to: address,
                subject: format!("[catalogd] A webhook endpoint was disabled: {url}"),
                text,
                html: None,
                idempotency_key: format!(
                    "webhook.disabled:{}:{since}:{user_id}",
                    delivery.webhook_id
                ),
            },
        )
        .await;
        match queued {
            Ok(_) => {}
            Err(crate::notify::mail::MailError::Database(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "no mail about a disabled webhook endpoint");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_standard_webhooks_schedule() {
        let waits: Vec<Option<u64>> = (1..=8)
            .map(|made| retry_after(made, 1000).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [5, 300, 1800, 7200, 18000, 36000, 36000]
                .map(Some)
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        assert_eq!(retry_after(1, 0), Some(Duration::ZERO));
        assert_eq!(retry_after(0, 1000), None);
    }

    #[test]
    fn answers_are_kept_as_text() {
        assert_eq!(readable(b"ok\0\xff"), "ok\u{FFFD}\u{FFFD}");
    }
}
