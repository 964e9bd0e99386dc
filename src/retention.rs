//! The retention sweep: makes the privacy policy's periods true. Job logs, and the events,
//! notices and mail they caused, after 30 days,
//! request records (ended sessions, client addresses in the audit log) after 90, per-day usage
//! rolled into monthly totals after 90, a disconnected store's connection details 30 days after
//! it was disconnected, and workspaces of deleted accounts with all their rows and objects.
//!
//! Every `serve` process looks each scheduler tick; a row in `maintenance_runs` claimed with a
//! conditional update makes one process run it per interval. `catalogd retention` runs it now.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit_log::{self, Entry};
use crate::config::RetentionSettings;
use crate::state::AppState;
use crate::storage::KeyPrefix;
use crate::stores;

const TASK: &str = "retention";

/// What one sweep removed, by kind.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub job_log_lines: u64,
    /// Events with their in-app notices and digest entries.
    pub events: u64,
    /// Sent or given-up messages (their addresses and words).
    pub mail_messages: u64,
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub audit_addresses_forgotten: u64,
    pub usage_days_aggregated: u64,
    pub stores_purged: u64,
    pub workspaces_deleted: u64,
    pub objects_deleted: u64,
    /// Invitations and password-reset links settled or expired before the request-log period.
    pub mailed_links: u64,
}

fn days_ago(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(days))
}

/// Runs the sweep when this process wins the interval's claim. `Ok(None)`: not due or another
/// process has it.
pub async fn run_if_due(state: &AppState) -> anyhow::Result<Option<SweepReport>> {
    if !state.settings.retention.sweep_in_serve
        || !claim(&state.db, state.settings.retention.interval_hours).await?
    {
        return Ok(None);
    }
    sweep(state).await.map(Some)
}

/// Takes this interval's sweep: true for exactly one caller per interval, however many ask at
/// once (the row lock serialises them; the second sees the fresh start time).
pub async fn claim(db: &PgPool, interval_hours: u32) -> Result<bool, sqlx::Error> {
    let claimed: Option<String> = sqlx::query_scalar(
        "INSERT INTO maintenance_runs (task, last_started_at) VALUES ($1, now())
         ON CONFLICT (task) DO UPDATE SET last_started_at = now()
            WHERE maintenance_runs.last_started_at < now() - make_interval(hours => $2::int)
         RETURNING task",
    )
    .bind(TASK)
    .bind(interval_hours.clamp(1, i32::MAX as u32) as i32)
    .fetch_optional(db)
    .await?;
    Ok(claimed.is_some())
}

/// Runs every purge now.
pub async fn sweep(state: &AppState) -> anyhow::Result<SweepReport> {
    let settings = &state.settings.retention;
    let now = Utc::now();
    let mut report = SweepReport::default();
    let db = &state.db;

    report.job_log_lines = purge_job_logs(db, days_ago(now, settings.job_logs_days)).await?;
    (report.events, report.mail_messages) =
        purge_notifications(db, days_ago(now, settings.job_logs_days)).await?;
    let (sessions, tokens, addresses) =
        purge_request_records(db, days_ago(now, settings.request_logs_days)).await?;
    report.sessions = sessions;
    report.refresh_tokens = tokens;
    report.audit_addresses_forgotten = addresses;
    report.usage_days_aggregated = aggregate_usage(db, days_ago(now, settings.usage_days)).await?;
    report.stores_purged =
        purge_disconnected_stores(state, days_ago(now, settings.disconnected_store_days)).await?;
    let (workspaces, objects) =
        delete_workspaces(state, days_ago(now, settings.deleted_workspace_days)).await?;
    report.workspaces_deleted = workspaces;
    report.objects_deleted = objects;
    let links_before = days_ago(now, settings.request_logs_days);
    report.mailed_links = crate::accounts::invitations::purge(db, links_before).await?
        + crate::accounts::password_reset::purge(db, links_before).await?;

    audit_log::record(
        db,
        Entry::new("retention.swept").details(serde_json::to_value(&report)?),
    )
    .await?;
    sqlx::query(
        "UPDATE maintenance_runs SET last_finished_at = now(), last_report = $2 WHERE task = $1",
    )
    .bind(TASK)
    .bind(serde_json::to_value(&report)?)
    .execute(db)
    .await?;
    tracing::info!(?report, "retention sweep done");
    Ok(report)
}

/// Deletes old job log lines; each workspace's audit log gets its count.
async fn purge_job_logs(db: &PgPool, before: DateTime<Utc>) -> anyhow::Result<u64> {
    let mut tx = db.begin().await?;
    let per_workspace: Vec<(Uuid, i64)> = sqlx::query_as(
        "WITH gone AS (
            DELETE FROM job_logs l USING job_runs j
            WHERE l.job_id = j.id AND l.created_at < $1
            RETURNING j.workspace_id)
         SELECT workspace_id, count(*) FROM gone GROUP BY workspace_id",
    )
    .bind(before)
    .fetch_all(&mut *tx)
    .await?;
    let mut total = 0;
    for (workspace_id, count) in per_workspace {
        total += count.max(0) as u64;
        let mut entry = Entry::new("retention.job_logs_purged")
            .details(serde_json::json!({"lines": count, "older_than": before}));
        entry.workspace_id = Some(workspace_id);
        audit_log::record(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    Ok(total)
}

/// Events (their notices and digest entries go with them) and messages older than the cut;
/// each workspace's audit log gets its count of events.
async fn purge_notifications(db: &PgPool, before: DateTime<Utc>) -> anyhow::Result<(u64, u64)> {
    let mut tx = db.begin().await?;
    let per_workspace: Vec<(Uuid, i64)> = sqlx::query_as(
        "WITH gone AS (DELETE FROM events WHERE created_at < $1 RETURNING workspace_id)
         SELECT workspace_id, count(*) FROM gone GROUP BY workspace_id",
    )
    .bind(before)
    .fetch_all(&mut *tx)
    .await?;
    let mut events = 0;
    for (workspace_id, count) in per_workspace {
        events += count.max(0) as u64;
        let mut entry = Entry::new("retention.events_purged")
            .details(serde_json::json!({"events": count, "older_than": before}));
        entry.workspace_id = Some(workspace_id);
        audit_log::record(&mut *tx, entry).await?;
    }
    let mail =
        sqlx::query("DELETE FROM outgoing_mail WHERE created_at < $1 AND status <> 'pending'")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    tx.commit().await?;
    Ok((events, mail))
}

/// Ended sessions (with the address and browser they recorded), spent refresh tokens, and the
/// client addresses of old audit entries (the entries themselves stay).
async fn purge_request_records(
    db: &PgPool,
    before: DateTime<Utc>,
) -> anyhow::Result<(u64, u64, u64)> {
    let mut tx = db.begin().await?;
    // Expired tokens can no longer be refreshed nor reveal reuse (expiry is checked first).
    let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let sessions = sqlx::query(
        "DELETE FROM sessions s
         WHERE s.created_at < $1
           AND (s.revoked_at IS NOT NULL OR NOT EXISTS (
                    SELECT 1 FROM refresh_tokens t
                    WHERE t.session_id = s.id AND t.used_at IS NULL AND t.expires_at > now()))
           AND coalesce(s.revoked_at, s.created_at) < $1
           AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id AND t.created_at >= $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let addresses = sqlx::query(
        "UPDATE audit_log SET client_addr = NULL WHERE client_addr IS NOT NULL AND created_at < $1",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok((sessions, tokens, addresses))
}

/// Moves per-day usage rows older than the cut into monthly totals, in one statement so no
/// usage is counted twice or lost.
async fn aggregate_usage(db: &PgPool, before: DateTime<Utc>) -> anyhow::Result<u64> {
    let mut tx = db.begin().await?;
    let moved: Vec<(Uuid, i64)> = sqlx::query_as(
        "WITH moved AS (
            DELETE FROM ai_usage WHERE day < ($1 AT TIME ZONE 'UTC')::date
            RETURNING workspace_id, provider, model, day, requests, input_tokens, output_tokens),
         summed AS (
            INSERT INTO ai_usage_monthly AS m
                (workspace_id, provider, model, month, requests, input_tokens, output_tokens)
            SELECT workspace_id, provider, model, date_trunc('month', day)::date,
                   sum(requests), sum(input_tokens), sum(output_tokens)
            FROM moved GROUP BY 1, 2, 3, 4
            ON CONFLICT (workspace_id, month, provider, model) DO UPDATE SET
                requests = m.requests + EXCLUDED.requests,
                input_tokens = m.input_tokens + EXCLUDED.input_tokens,
                output_tokens = m.output_tokens + EXCLUDED.output_tokens)
         SELECT workspace_id, count(*) FROM moved GROUP BY workspace_id",
    )
    .bind(before)
    .fetch_all(&mut *tx)
    .await?;
    let mut total = 0;
    for (workspace_id, days) in moved {
        total += days.max(0) as u64;
        let mut entry = Entry::new("retention.usage_aggregated")
            .details(serde_json::json!({"day_rows": days, "older_than": before}));
        entry.workspace_id = Some(workspace_id);
        audit_log::record(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    Ok(total)
}

/// Forgets where a disconnected store was and how it was reached; its catalog stays.
async fn purge_disconnected_stores(state: &AppState, before: DateTime<Utc>) -> anyhow::Result<u64> {
    let mut tx = state.db.begin().await?;
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, workspace_id FROM stores
         WHERE status = 'disconnected' AND disconnected_at < $1 AND connection_purged_at IS NULL
         FOR UPDATE",
    )
    .bind(before)
    .fetch_all(&mut *tx)
    .await?;
    for &(store_id, workspace_id) in &due {
        // A fresh link token nobody knows: the old callback and identity URLs lead nowhere.
        let (token, hash) = stores::new_link_token();
        let sealed = state
            .keyring
            .seal(token.as_bytes(), &stores::link_token_context(store_id));
        sqlx::query(
            "UPDATE stores SET base_url = '', magento_store_url = NULL, status_detail = NULL,
                -- Each store view's URLs are the store's URL too.
                store_views = COALESCE((SELECT jsonb_agg(v || '{\"base_url\": null, \"base_media_url\": null}' ORDER BY n)
                                        FROM jsonb_array_elements(store_views) WITH ORDINALITY e(v, n)), '[]'::jsonb),
                credentials = NULL, handshake = NULL, handshake_started_at = NULL,
                callback_armed = false, link_token_hash = $2, link_token = $3,
                connection_purged_at = now()
             WHERE id = $1",
        )
        .bind(store_id)
        .bind(hash)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        let mut entry = Entry::new("retention.store_connection_purged").target("store", store_id);
        entry.workspace_id = Some(workspace_id);
        audit_log::record(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    Ok(due.len() as u64)
}

/// Deletes workspaces whose only owner deleted their account: stored objects first (a crash
/// between the two leaves a row whose objects are gone, and the next sweep finishes), then the
/// row with everything that hangs off it.
async fn delete_workspaces(state: &AppState, before: DateTime<Utc>) -> anyhow::Result<(u64, u64)> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM workspaces WHERE deletion_requested_at IS NOT NULL AND deletion_requested_at <= $1",
    )
    .bind(before)
    .fetch_all(&state.db)
    .await?;
    let mut objects = 0;
    for &workspace_id in &due {
        let removed = state
            .storage
            .delete_prefix(&KeyPrefix::workspace(workspace_id))
            .await?;
        objects += removed;
        let mut tx = state.db.begin().await?;
        crate::notify::mail::forget_workspace(&mut tx, workspace_id).await?;
        sqlx::query("DELETE FROM workspaces WHERE id = $1 AND deletion_requested_at IS NOT NULL")
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        // Its own audit log went with it; this entry outlives it.
        audit_log::record(
            &mut *tx,
            Entry::new("retention.workspace_deleted")
                .target("workspace", workspace_id)
                .details(serde_json::json!({"objects_deleted": removed})),
        )
        .await?;
        tx.commit().await?;
    }
    Ok((due.len() as u64, objects))
}

/// The settings are checked at start-up: a period of zero days would purge everything at once.
pub fn validate(settings: &RetentionSettings) -> Result<(), String> {
    for (name, days) in [
        ("retention.job_logs_days", settings.job_logs_days),
        ("retention.request_logs_days", settings.request_logs_days),
        ("retention.usage_days", settings.usage_days),
        (
            "retention.disconnected_store_days",
            settings.disconnected_store_days,
        ),
    ] {
        if days == 0 {
            return Err(format!("{name} must be at least 1"));
        }
    }
    if settings.interval_hours == 0 {
        return Err("retention.interval_hours must be at least 1".into());
    }
    // The policy promises a deleted account's workspaces are gone within 30 days.
    if u64::from(settings.deleted_workspace_days) * 24 + u64::from(settings.interval_hours)
        > 30 * 24
    {
        return Err(
            "retention.deleted_workspace_days plus one sweep interval must stay within 30 days"
                .into(),
        );
    }
    Ok(())
}
