//! What needs attention in a workspace: proposals waiting per store with the oldest's age,
//! jobs that failed in the last day, stores needing reauthorisation or a permission, the last
//! and next scheduled run per store with the last one's summary, and the AI budget left today.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Attention {
    /// Stores with proposals waiting, the longest-waiting first.
    pub proposals_waiting: Vec<StoreProposals>,
    /// Jobs that failed in the last 24 hours, newest first.
    pub failed_jobs: Vec<FailedJob>,
    /// Stores whose connection needs someone: reauthorisation, or API permissions Magento
    /// refused.
    pub stores_needing_action: Vec<StoreAction>,
    /// Per scheduled store: the last and next run.
    pub scheduled_runs: Vec<ScheduledRun>,
    pub budget: BudgetToday,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct StoreProposals {
    pub store_id: Uuid,
    pub store_name: String,
    pub proposals: i64,
    pub oldest_at: DateTime<Utc>,
    /// How long the oldest has waited, in seconds.
    pub oldest_age_secs: i64,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct FailedJob {
    pub job_id: Uuid,
    pub kind: String,
    pub store_id: Option<Uuid>,
    pub store_name: Option<String>,
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct StoreAction {
    pub store_id: Uuid,
    pub store_name: String,
    /// `needs_reauth`, `failed`, or `active` with missing permissions.
    pub status: String,
    pub status_detail: Option<String>,
    /// Magento's ACL resources the integration lacks.
    pub missing_permissions: Vec<String>,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema, sqlx::FromRow)]
pub struct ScheduledRun {
    pub store_id: Uuid,
    pub store_name: String,
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// The last finished run's summary (`pipeline.finished`), if one is kept.
    pub last_summary: Option<String>,
    /// `succeeded`, `failed` or `cancelled`.
    pub last_status: Option<String>,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct BudgetToday {
    /// Null: no daily budget.
    pub daily_token_budget: Option<u64>,
    /// Tokens used today (UTC).
    pub used_today: u64,
    /// Null without a budget.
    pub left_today: Option<u64>,
}

pub async fn of_workspace(db: &PgPool, workspace_id: Uuid) -> Result<Attention, sqlx::Error> {
    let proposals_waiting: Vec<StoreProposals> = sqlx::query_as(
        "SELECT s.id AS store_id, s.name AS store_name, count(*) AS proposals,
                min(v.created_at) AS oldest_at,
                EXTRACT(EPOCH FROM now() - min(v.created_at))::bigint AS oldest_age_secs
         FROM product_versions v JOIN products p ON p.id = v.product_id JOIN stores s ON s.id = p.store_id
         WHERE v.workspace_id = $1 AND v.state = 'proposed'
         GROUP BY s.id, s.name ORDER BY min(v.created_at)",
    )
    .bind(workspace_id)
    .fetch_all(db)
    .await?;
    let failed_jobs: Vec<FailedJob> = sqlx::query_as(
        "SELECT j.id AS job_id, j.kind, j.store_id, s.name AS store_name, j.error, j.finished_at
         FROM job_runs j LEFT JOIN stores s ON s.id = j.store_id
         WHERE j.workspace_id = $1 AND j.status = 'failed' AND j.finished_at > now() - interval '1 day'
         ORDER BY j.finished_at DESC LIMIT 50",
    )
    .bind(workspace_id)
    .fetch_all(db)
    .await?;
    let stores_needing_action: Vec<StoreAction> = sqlx::query_as(
        "SELECT id AS store_id, name AS store_name, status, status_detail,
                ARRAY(SELECT e->>'resource' FROM jsonb_array_elements(missing_permissions) e) AS missing_permissions
         FROM stores
         WHERE workspace_id = $1 AND status <> 'disconnected'
           AND (status IN ('needs_reauth', 'failed') OR missing_permissions <> '[]'::jsonb)
         ORDER BY name, id",
    )
    .bind(workspace_id)
    .fetch_all(db)
    .await?;
    let scheduled_runs: Vec<ScheduledRun> = sqlx::query_as(
        "SELECT s.store_id, st.name AS store_name, s.cron, s.timezone, s.enabled, s.next_run_at,
                s.last_run_at, last.summary AS last_summary, last.data->>'status' AS last_status
         FROM schedules s JOIN stores st ON st.id = s.store_id
         LEFT JOIN LATERAL (
            SELECT summary, data FROM events
            WHERE workspace_id = s.workspace_id AND store_id = s.store_id AND kind = 'pipeline.finished'
            ORDER BY id DESC LIMIT 1) last ON true
         WHERE s.workspace_id = $1 AND st.status <> 'disconnected'
         ORDER BY st.name, s.store_id",
    )
    .bind(workspace_id)
    .fetch_all(db)
    .await?;
    let (budget, used): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT (settings->>'daily_token_budget')::bigint FROM workspaces WHERE id = $1),
                (SELECT coalesce(sum(input_tokens + output_tokens), 0)::bigint FROM ai_usage
                 WHERE workspace_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date)",
    )
    .bind(workspace_id)
    .fetch_one(db)
    .await?;
    let budget = budget.map(|b| b.max(0) as u64);
    let used = used.max(0) as u64;
    Ok(Attention {
        proposals_waiting,
        failed_jobs,
        stores_needing_action,
        scheduled_runs,
        budget: BudgetToday {
            daily_token_budget: budget,
            used_today: used,
            left_today: budget.map(|b| b.saturating_sub(used)),
        },
    })
}
