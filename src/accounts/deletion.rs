//! Account deletion: personal data goes at once; workspaces the person alone owned go with the
//! next retention sweep (rows and stored objects); other workspaces keep their content, with
//! the person shown as a deleted user.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit_log::{self, Entry};
use crate::auth::Caller;
use crate::error::Error;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionReport {
    /// Workspaces the account alone owned: closed now, deleted with all their content by the
    /// next retention sweep (within 30 days).
    pub workspaces_scheduled_for_deletion: Vec<Uuid>,
    /// Workspaces that keep their content; the account's name no longer appears in them.
    pub workspaces_left: Vec<Uuid>,
    /// API keys the account had created, now deleted.
    pub api_keys_deleted: u64,
    pub sessions_ended: u64,
}

pub async fn delete_account(db: &PgPool, caller: &Caller) -> Result<DeletionReport, Error> {
    let user_id = caller.require_user()?;
    let mut tx = db.begin().await?;
    let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(Error::Unauthenticated("account no longer exists"));
    }

    // Workspaces where nobody else is an owner, locked so a concurrent ownership change waits.
    let memberships: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT m.workspace_id,
                m.role = 'owner' AND NOT EXISTS (
                    SELECT 1 FROM memberships o
                    WHERE o.workspace_id = m.workspace_id AND o.role = 'owner' AND o.user_id <> m.user_id)
         FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.user_id = $1
         ORDER BY m.workspace_id
         FOR UPDATE OF w",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    let (sole, left): (Vec<_>, Vec<_>) = memberships.into_iter().partition(|(_, sole)| *sole);
    let scheduled: Vec<Uuid> = sole.into_iter().map(|(id, _)| id).collect();
    let left: Vec<Uuid> = left.into_iter().map(|(id, _)| id).collect();

    if !scheduled.is_empty() {
        // Closed at once: nobody reaches it, nothing runs in it, until the sweep deletes it.
        sqlx::query("UPDATE workspaces SET deletion_requested_at = now() WHERE id = ANY($1)")
            .bind(&scheduled)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM memberships WHERE workspace_id = ANY($1)")
            .bind(&scheduled)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_keys WHERE workspace_id = ANY($1)")
            .bind(&scheduled)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM schedules WHERE workspace_id = ANY($1)")
            .bind(&scheduled)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE job_runs SET cancel_requested = true
             WHERE workspace_id = ANY($1) AND status IN ('queued', 'running')",
        )
        .bind(&scheduled)
        .execute(&mut *tx)
        .await?;
    }
    let api_keys_deleted = sqlx::query("DELETE FROM api_keys WHERE created_by = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();

    for &workspace_id in scheduled.iter().chain(&left) {
        let action = if scheduled.contains(&workspace_id) {
            "workspace.deletion_scheduled"
        } else {
            "account.deleted"
        };
        // The actor is forgotten with the account (ON DELETE SET NULL): the entry stays, the
        // name does not.
        audit_log::record(
            &mut *tx,
            Entry::by(caller, workspace_id, action).target("workspace", workspace_id),
        )
        .await?;
    }

    let sessions_ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    // Mail to the person, sent or not, holds their address: it goes now.
    crate::notify::mail::forget_recipient(&mut tx, user_id).await?;
    // What else is kept by address rather than by account: invitations to it, and the mail,
    // invitation events and webhook deliveries that name it.
    sqlx::query(
        "WITH who AS (SELECT email FROM users WHERE id = $1),
              invitations_gone AS (DELETE FROM invitations i USING who WHERE i.email = who.email),
              mail_gone AS (DELETE FROM outgoing_mail m USING who
                            WHERE position(lower(who.email::text) IN lower(m.subject || ' ' || m.body_text)) > 0),
              events_gone AS (DELETE FROM events e USING who
                              WHERE e.kind = 'member.invited'
                                AND lower(e.data ->> 'email') = lower(who.email::text))
         DELETE FROM webhook_deliveries d USING who
         WHERE position(lower(who.email::text) IN lower(d.body)) > 0",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    // Sessions, refresh tokens, memberships and recovery codes go with the row (cascades); the
    // user's authorship elsewhere becomes NULL.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    Ok(DeletionReport {
        workspaces_scheduled_for_deletion: scheduled,
        workspaces_left: left,
        api_keys_deleted,
        sessions_ended: sessions_ended.max(0) as u64,
    })
}
