//! Outgoing mail: queued in `outgoing_mail` in the caller's transaction, sent by jobs on the
//! `catalogd.mail` queue with retries and backoff.
//!
//! Each message is queued once per idempotency key, however often it is asked for. A sender
//! takes a message with a lease (so a duplicate task or a second process leaves it alone),
//! sends it, and records the outcome; a temporary failure (server down, a 4xx answer) waits
//! with exponential backoff and tries again, a permanent refusal (5xx) gives up at once. Every
//! attempt of a message carries the same Message-ID.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::transport::Queued;
use super::workers::{Runtime, push};
use crate::state::AppState;

/// The apalis queue messages are sent from.
pub const MAIL_QUEUE: &str = "catalogd.mail";

/// What the sending task carries: only the id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailTask {
    pub mail_id: Uuid,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// One address.
    pub to: String,
    pub subject: String,
    /// The plain-text part (always sent).
    pub text: String,
    /// A simple HTML alternative, if any.
    pub html: Option<String>,
    /// The message is queued once per key (e.g. `invitation:<id>`).
    pub idempotency_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0:?} is not a mail address")]
    InvalidRecipient(String),
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Queues `mail` for sending once the caller's transaction commits; returns the message's id
/// (the one already queued under the same key, if any).
pub async fn enqueue(conn: &mut PgConnection, mail: OutgoingMail) -> Result<Uuid, MailError> {
    queue(conn, mail, None).await
}

/// [`enqueue`] for notification mail: `unsubscribe_url` is offered as a one-click
/// unsubscribe by mail clients (`List-Unsubscribe`).
pub async fn enqueue_with_unsubscribe(
    conn: &mut PgConnection,
    mail: OutgoingMail,
    unsubscribe_url: String,
) -> Result<Uuid, MailError> {
    queue(conn, mail, Some(unsubscribe_url)).await
}

async fn queue(
    conn: &mut PgConnection,
    mail: OutgoingMail,
    unsubscribe_url: Option<String>,
) -> Result<Uuid, MailError> {
    let to = mail.to.trim();
    if to.parse::<lettre::Address>().is_err() || to.len() > 254 {
        return Err(MailError::InvalidRecipient(to.to_string()));
    }
    if mail.subject.trim().is_empty() || mail.subject.chars().any(char::is_control) {
        return Err(MailError::Invalid(
            "a subject is one line of text, not empty",
        ));
    }
    if mail.idempotency_key.is_empty() || mail.idempotency_key.len() > 400 {
        return Err(MailError::Invalid(
            "an idempotency key has 1 to 400 characters",
        ));
    }
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO outgoing_mail (id, idempotency_key, recipient, subject, body_text, body_html,
            unsubscribe_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(&mail.idempotency_key)
    .bind(to)
    .bind(mail.subject.trim())
    .bind(&mail.text)
    .bind(&mail.html)
    .bind(&unsubscribe_url)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => {
            push(&mut *conn, MAIL_QUEUE, &MailTask { mail_id: id }).await?;
            Ok(id)
        }
        None => Ok(
            sqlx::query_scalar("SELECT id FROM outgoing_mail WHERE idempotency_key = $1")
                .bind(&mail.idempotency_key)
                .fetch_one(&mut *conn)
                .await?,
        ),
    }
}

/// Deletes every message to the account's address (with a deleted account, its personal
/// data goes at once).
pub async fn forget_recipient(conn: &mut PgConnection, user_id: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM outgoing_mail WHERE lower(recipient) = (SELECT lower(email::text) FROM users WHERE id = $1)",
    )
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes the mail about a workspace's events and digests (the workspace is being deleted;
/// its name is in their words).
pub async fn forget_workspace(
    conn: &mut PgConnection,
    workspace_id: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM outgoing_mail
         WHERE idempotency_key LIKE ANY (
                SELECT 'event:' || id || ':%' FROM events WHERE workspace_id = $1)
            OR idempotency_key LIKE 'digest:%:' || $1::text || ':%'",
    )
    .bind(workspace_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The wait before the attempt after attempt number `made` (1 for the first): doubling from
/// `base_ms`, at most 30 minutes.
pub fn backoff(base_ms: u64, made: u32) -> Duration {
    let factor = 1u64 << made.saturating_sub(1).min(20);
    Duration::from_millis(base_ms.saturating_mul(factor).min(30 * 60 * 1000))
}

/// Sends message `mail_id`, retrying temporary failures until it is sent, given up, or this
/// process stops (then the message is queued again for whichever process runs next).
pub async fn deliver(runtime: &Runtime, mail_id: Uuid) -> Result<(), sqlx::Error> {
    let state = &runtime.state;
    let mut stop = runtime.stop.clone();
    loop {
        // How long until the message is due; `None` once there is nothing to do here.
        let due_in: Option<Option<f64>> = sqlx::query_scalar(
            "SELECT CASE WHEN status <> 'pending' OR lease_until > now() THEN NULL
                    ELSE GREATEST(EXTRACT(EPOCH FROM next_attempt_at - now()), 0)::float8 END
             FROM outgoing_mail WHERE id = $1",
        )
        .bind(mail_id)
        .fetch_optional(&state.db)
        .await?;
        let Some(Some(wait)) = due_in else {
            return Ok(());
        };
        if wait > 0.0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(wait)) => continue,
                () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                    hand_over(state, mail_id).await?;
                    return Ok(());
                }
            }
        }
        let Some(mail) = claim(state, mail_id).await? else {
            return Ok(());
        };
        let outcome = runtime.transport.send(&mail).await;
        if !record(state, &mail, outcome).await? {
            return Ok(());
        }
    }
}

/// Takes the message for one attempt, unless another sender holds it or it is not due.
async fn claim(state: &AppState, mail_id: Uuid) -> Result<Option<Queued>, sqlx::Error> {
    let lease_secs = (state.settings.email.timeout_secs + 30) as f64;
    sqlx::query_as(
        "UPDATE outgoing_mail SET lease_until = now() + make_interval(secs => $2)
         WHERE id = $1 AND status = 'pending' AND next_attempt_at <= now()
           AND (lease_until IS NULL OR lease_until < now())
         RETURNING id, recipient, subject, body_text, body_html, unsubscribe_url, created_at,
            attempts",
    )
    .bind(mail_id)
    .bind(lease_secs)
    .fetch_optional(&state.db)
    .await
}

/// Records an attempt; `true` when another attempt is due later.
async fn record(
    state: &AppState,
    mail: &Queued,
    outcome: Result<String, super::transport::SendError>,
) -> Result<bool, sqlx::Error> {
    let settings = &state.settings.email;
    let made = mail.attempts.saturating_add(1);
    match outcome {
        Ok(via) => {
            sqlx::query(
                "UPDATE outgoing_mail SET status = 'sent', attempts = $2, sent_at = now(),
                    sent_via = $3, lease_until = NULL, last_error = NULL
                 WHERE id = $1",
            )
            .bind(mail.id)
            .bind(made)
            .bind(&via)
            .execute(&state.db)
            .await?;
            metrics::counter!("mail_messages_total", "outcome" => "sent").increment(1);
            tracing::info!(mail_id = %mail.id, attempts = made, "mail sent");
            Ok(false)
        }
        Err(e) if e.permanent || made as u32 >= settings.max_attempts => {
            sqlx::query(
                "UPDATE outgoing_mail SET status = 'failed', attempts = $2, lease_until = NULL,
                    last_error = $3
                 WHERE id = $1",
            )
            .bind(mail.id)
            .bind(made)
            .bind(&e.message)
            .execute(&state.db)
            .await?;
            metrics::counter!("mail_messages_total", "outcome" => "failed").increment(1);
            tracing::warn!(mail_id = %mail.id, attempts = made, error = %e.message, "mail given up");
            Ok(false)
        }
        Err(e) => {
            let wait = backoff(settings.retry_base_delay_ms, made as u32);
            sqlx::query(
                "UPDATE outgoing_mail SET attempts = $2, lease_until = NULL, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4)
                 WHERE id = $1",
            )
            .bind(mail.id)
            .bind(made)
            .bind(&e.message)
            .bind(wait.as_secs_f64())
            .execute(&state.db)
            .await?;
            metrics::counter!("mail_attempts_failed_total").increment(1);
            tracing::warn!(mail_id = %mail.id, attempts = made, retry_in_ms = wait.as_millis() as u64,
                error = %e.message, "mail not sent yet; retrying");
            Ok(true)
        }
    }
}

/// Queues the message again for the next process: this one is stopping.
async fn hand_over(state: &AppState, mail_id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE outgoing_mail SET queued_at = now() WHERE id = $1")
        .bind(mail_id)
        .execute(&mut *tx)
        .await?;
    push(&mut tx, MAIL_QUEUE, &MailTask { mail_id }).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_half_an_hour() {
        let waits: Vec<u64> = (1..=5)
            .map(|n| backoff(1000, n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 16000]);
        assert_eq!(backoff(5000, 30), Duration::from_secs(1800));
        assert_eq!(backoff(0, 3), Duration::ZERO);
    }
}
