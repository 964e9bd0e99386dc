//! The daily digest: people who chose it for `review.ready` get one mail a day per workspace
//! listing every run that left proposals since the last one, at `[email] digest_hour_utc`.
//!
//! Every `serve` process looks each scheduler tick; a row in `maintenance_runs` claimed with a
//! conditional update makes one process send each day's digests.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use uuid::Uuid;

use super::EventKind;
use super::compose::{self, DigestItem, Footer};
use super::events::Event;
use super::mail::{self, OutgoingMail};
use super::unsubscribe::{self, Subscription};
use crate::state::AppState;

const TASK: &str = "notify.digest";

/// The latest digest time at or before `now`.
pub fn latest_digest_time(now: DateTime<Utc>, hour: u32) -> DateTime<Utc> {
    let today = now
        .date_naive()
        .and_time(NaiveTime::from_hms_opt(hour.min(23), 0, 0).expect("a valid hour"))
        .and_utc();
    if today <= now {
        today
    } else {
        today - Duration::days(1)
    }
}

/// Sends the day's digests if they are due and this process wins the claim; returns how many
/// mails were queued.
pub async fn run_if_due(state: &AppState) -> anyhow::Result<u64> {
    let due = latest_digest_time(Utc::now(), state.settings.email.digest_hour_utc);
    let claimed: Option<String> = sqlx::query_scalar(
        "INSERT INTO maintenance_runs (task, last_started_at) VALUES ($1, now())
         ON CONFLICT (task) DO UPDATE SET last_started_at = now()
            WHERE maintenance_runs.last_started_at < $2
         RETURNING task",
    )
    .bind(TASK)
    .bind(due)
    .fetch_optional(&state.db)
    .await?;
    if claimed.is_none() {
        return Ok(0);
    }
    let sent = send(state, due).await?;
    sqlx::query(
        "UPDATE maintenance_runs SET last_finished_at = now(), last_report = $2 WHERE task = $1",
    )
    .bind(TASK)
    .bind(serde_json::json!({"mails": sent}))
    .execute(&state.db)
    .await?;
    if sent > 0 {
        tracing::info!(mails = sent, "daily digests queued");
    }
    Ok(sent)
}

/// Queues one digest per person and workspace with waiting items; the items go with it.
async fn send(state: &AppState, due: DateTime<Utc>) -> anyhow::Result<u64> {
    let pairs: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT d.user_id, e.workspace_id
         FROM notification_digest_items d JOIN events e ON e.id = d.event_id",
    )
    .fetch_all(&state.db)
    .await?;
    let base = state.settings.public_base_url();
    let mut sent = 0;
    for (user_id, workspace_id) in pairs {
        let mut tx = state.db.begin().await?;
        let events: Vec<Event> = sqlx::query_as(
            "DELETE FROM notification_digest_items d USING events e
             WHERE d.event_id = e.id AND d.user_id = $1 AND e.workspace_id = $2
             RETURNING e.id, e.workspace_id, e.kind, e.store_id, e.job_id, e.summary, e.data,
                e.created_at",
        )
        .bind(user_id)
        .bind(workspace_id)
        .fetch_all(&mut *tx)
        .await?;
        // Still a member who still wants the mail (an unsubscribe since stops the digest too).
        let person: Option<(String, String, Option<bool>)> = sqlx::query_as(
            "SELECT u.email::text, u.name, p.email FROM memberships m
             JOIN users u ON u.id = m.user_id
             LEFT JOIN notification_preferences p ON p.user_id = m.user_id
                AND p.workspace_id = m.workspace_id AND p.kind = 'review.ready'
             WHERE m.user_id = $1 AND m.workspace_id = $2",
        )
        .bind(user_id)
        .bind(workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let workspace_name: String =
            sqlx::query_scalar("SELECT name FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_one(&mut *tx)
                .await?;
        let Some((address, name, chosen)) = person else {
            tx.commit().await?;
            continue;
        };
        if events.is_empty() || chosen == Some(false) {
            tx.commit().await?;
            continue;
        }
        let mut events = events;
        events.sort_by_key(|e| e.created_at);
        let items: Vec<DigestItem> = events
            .iter()
            .map(|e| DigestItem {
                workspace_name: workspace_name.clone(),
                summary: e.summary.clone(),
                link: compose::link(&base, e),
                at: e.created_at,
            })
            .collect();
        let token = unsubscribe::token(
            &state.keys,
            Subscription {
                user_id,
                workspace_id,
                kind: EventKind::ReviewReady,
            },
        );
        let unsubscribe_page = unsubscribe::page_url(&base, &token);
        let preferences_url = compose::preferences_url(&base, workspace_id);
        let content = compose::digest_mail(
            &name,
            &items,
            &Footer {
                workspace_name: &workspace_name,
                unsubscribe_url: &unsubscribe_page,
                preferences_url: &preferences_url,
                reason: "you chose a daily digest of proposals waiting for review",
            },
        );
        let queued = mail::enqueue_with_unsubscribe(
            &mut tx,
            OutgoingMail {
                to: address,
                subject: content.subject,
                text: content.text,
                html: Some(content.html),
                idempotency_key: format!(
                    "digest:{user_id}:{workspace_id}:{}",
                    due.format("%Y-%m-%dT%H")
                ),
            },
            unsubscribe::one_click_url(&base, &token),
        )
        .await;
        match queued {
            Ok(_) => sent += 1,
            Err(mail::MailError::InvalidRecipient(_)) => {
                tracing::warn!(%user_id, "a member's address is not one mail can go to; digest skipped");
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_time_is_the_last_one_passed() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            latest_digest_time(at("2026-03-10T09:30:00Z"), 7),
            at("2026-03-10T07:00:00Z")
        );
        assert_eq!(
            latest_digest_time(at("2026-03-10T06:59:59Z"), 7),
            at("2026-03-09T07:00:00Z")
        );
        assert_eq!(
            latest_digest_time(at("2026-03-10T07:00:00Z"), 7),
            at("2026-03-10T07:00:00Z")
        );
    }
}
