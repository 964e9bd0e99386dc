//! The fan-out job: one event becomes webhook deliveries, in-app notices, and mail or digest
//! entries as each member's preferences say, all in one transaction, once.

use uuid::Uuid;

use super::EventKind;
use super::compose::{self, Footer};
use super::events::{self, Event};
use super::mail::{self, OutgoingMail};
use super::preferences::{self, Recipient};
use super::unsubscribe::{self, Subscription};
use crate::auth::Role;
use crate::state::AppState;
use crate::webhooks;

/// Fans out event `event_id` unless that was done already (a duplicate task).
pub async fn run(state: &AppState, event_id: Uuid) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let waiting: Option<bool> = sqlx::query_scalar(
        "SELECT fanned_out_at IS NULL FROM events WHERE id = $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(event_id)
    .fetch_optional(&mut *tx)
    .await?;
    // Gone (retention), done, or being done by another worker right now.
    if waiting != Some(true) {
        return Ok(());
    }
    let Some(event) = events::get(&mut tx, event_id).await? else {
        return Ok(());
    };
    let kind = EventKind::parse(&event.kind);
    let base = state.settings.public_base_url();
    let link = compose::link(&base, &event);

    let mut data = serde_json::json!({
        "id": event.id,
        "workspace_id": event.workspace_id,
        "store_id": event.store_id,
        "job_id": event.job_id,
        "summary": event.summary,
        "url": link,
    });
    if let (Some(target), Some(extra)) = (data.as_object_mut(), event.data.as_object()) {
        for (key, value) in extra {
            target.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    webhooks::fan_out::enqueue(
        &mut tx,
        &webhooks::fan_out::Event {
            id: event.id,
            workspace_id: event.workspace_id,
            kind: &event.kind,
            occurred_at: event.created_at,
            data: &data,
        },
    )
    .await?;

    let (workspace_name, closing): (String, bool) = sqlx::query_as(
        "SELECT name, deletion_requested_at IS NOT NULL FROM workspaces WHERE id = $1",
    )
    .bind(event.workspace_id)
    .fetch_one(&mut *tx)
    .await?;
    let mut mails = 0;
    if let Some(kind) = kind
        && !closing
    {
        for recipient in preferences::recipients(&mut tx, event.workspace_id, kind).await? {
            if recipient.sees_notice(kind) {
                sqlx::query(
                    "INSERT INTO notifications (user_id, event_id, workspace_id) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(recipient.user_id)
                .bind(event.id)
                .bind(event.workspace_id)
                .execute(&mut *tx)
                .await?;
            }
            if !recipient.wants_mail(kind) {
                continue;
            }
            if recipient.wants_digest(kind) {
                sqlx::query(
                    "INSERT INTO notification_digest_items (user_id, event_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                )
                .bind(recipient.user_id)
                .bind(event.id)
                .execute(&mut *tx)
                .await?;
                continue;
            }
            mail_one(state, &mut tx, &event, kind, &recipient, &workspace_name).await?;
            mails += 1;
        }
    }
    sqlx::query("UPDATE events SET fanned_out_at = now() WHERE id = $1")
        .bind(event.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%event_id, kind = %event.kind, mails, "event fanned out");
    Ok(())
}

/// Why a member gets mail of this kind, for the footer.
pub fn reason(recipient: &Recipient, kind: EventKind) -> &'static str {
    if recipient.chosen_email == Some(true) {
        "you chose these mails"
    } else if recipient.role == Role::Owner {
        "you own it"
    } else if kind == EventKind::ReviewReady {
        "you review its proposals"
    } else {
        "your role in it gets these mails"
    }
}

async fn mail_one(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    event: &Event,
    kind: EventKind,
    recipient: &Recipient,
    workspace_name: &str,
) -> anyhow::Result<()> {
    let base = state.settings.public_base_url();
    let token = unsubscribe::token(
        &state.keys,
        Subscription {
            user_id: recipient.user_id,
            workspace_id: event.workspace_id,
            kind,
        },
    );
    let unsubscribe_page = unsubscribe::page_url(&base, &token);
    let preferences_url = compose::preferences_url(&base, event.workspace_id);
    let content = compose::event_mail(
        &base,
        &recipient.name,
        event,
        &Footer {
            workspace_name,
            unsubscribe_url: &unsubscribe_page,
            preferences_url: &preferences_url,
            reason: reason(recipient, kind),
        },
    );
    let queued = mail::enqueue_with_unsubscribe(
        tx,
        OutgoingMail {
            to: recipient.email_address.clone(),
            subject: content.subject,
            text: content.text,
            html: Some(content.html),
            idempotency_key: format!("event:{}:{}", event.id, recipient.user_id),
        },
        unsubscribe::one_click_url(&base, &token),
    )
    .await;
    match queued {
        Ok(_) => Ok(()),
        // An address the mail library cannot take is skipped, not a reason to hold the event.
        Err(mail::MailError::InvalidRecipient(_)) => {
            tracing::warn!(user_id = %recipient.user_id, event_id = %event.id,
                "a member's address is not one mail can go to; skipped");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
