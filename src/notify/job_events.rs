//! The events a finished job raises, written in the transaction that records how it ended:
//! `job.failed`, `export.ready`, `budget.reached`, and when a run ends (a job alone, or the
//! last step of a pipeline) `review.ready` for the proposals it left waiting and, for a
//! scheduled run, `pipeline.finished` with its summary.

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::EventKind;
use super::events::{self, NewEvent};
use crate::jobs::{JobKind, JobStatus};

#[derive(sqlx::FromRow)]
struct Finished {
    workspace_id: Uuid,
    store_id: Option<Uuid>,
    kind: JobKind,
    error: Option<String>,
    counters: Value,
    pipeline_id: Option<Uuid>,
    store_name: Option<String>,
}

/// Raises the events of job `job_id`, which just ended with `status`; `continued` says
/// whether its pipeline queued a next step.
pub async fn job_finished(
    conn: &mut PgConnection,
    job_id: Uuid,
    status: JobStatus,
    continued: bool,
) -> Result<(), sqlx::Error> {
    let Some(job): Option<Finished> = sqlx::query_as(
        "SELECT j.workspace_id, j.store_id, j.kind, j.error, j.counters, j.pipeline_id,
                s.name AS store_name
         FROM job_runs j LEFT JOIN stores s ON s.id = j.store_id WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    let store_name = job
        .store_name
        .clone()
        .unwrap_or_else(|| "the workspace".into());
    let new = |kind, summary: String, data: Value| NewEvent {
        kind,
        workspace_id: job.workspace_id,
        store_id: job.store_id,
        job_id: Some(job_id),
        summary,
        data,
    };

    if status == JobStatus::Failed {
        let error = job.error.clone().unwrap_or_default();
        let short: String = error.chars().take(200).collect();
        events::record(
            conn,
            new(
                EventKind::JobFailed,
                format!(
                    "The {} job of {store_name} failed: {short}",
                    job.kind.as_str()
                ),
                json!({"job_kind": job.kind.as_str(), "error": error, "store_name": store_name}),
            ),
        )
        .await?;
    }
    if job.kind == JobKind::Export && status == JobStatus::Succeeded {
        export_ready(conn, job_id, &store_name, &new).await?;
    }
    if job.kind == JobKind::Enrich && job.counters["budget_reached"].as_i64().unwrap_or(0) > 0 {
        budget_reached(conn, job.workspace_id, &new).await?;
    }
    if !continued {
        run_ended(conn, job_id, &job, status, &store_name, &new).await?;
    }
    Ok(())
}

async fn export_ready(
    conn: &mut PgConnection,
    job_id: Uuid,
    store_name: &str,
    new: &impl Fn(EventKind, String, Value) -> NewEvent,
) -> Result<(), sqlx::Error> {
    let export: Option<(Uuid, String, Option<i64>)> =
        sqlx::query_as("SELECT id, format, rows FROM exports WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((export_id, format, rows)) = export {
        events::record(
            conn,
            new(
                EventKind::ExportReady,
                format!("The {format} export of {store_name} is ready"),
                json!({"export_id": export_id, "format": format, "rows": rows, "store_name": store_name}),
            ),
        )
        .await?;
    }
    Ok(())
}

/// At most one `budget.reached` per workspace and (UTC) day: the budget is per day.
async fn budget_reached(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    new: &impl Fn(EventKind, String, Value) -> NewEvent,
) -> Result<(), sqlx::Error> {
    let (raised_today, budget): (bool, Option<i64>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM events WHERE workspace_id = $1 AND kind = 'budget.reached'
                          AND created_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')),
                (SELECT (settings->>'daily_token_budget')::bigint FROM workspaces WHERE id = $1)",
    )
    .bind(workspace_id)
    .fetch_one(&mut *conn)
    .await?;
    if raised_today {
        return Ok(());
    }
    events::record(
        conn,
        new(
            EventKind::BudgetReached,
            "The workspace's daily AI token budget is used up".into(),
            json!({"daily_token_budget": budget}),
        ),
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Step {
    id: Uuid,
    kind: JobKind,
    status: JobStatus,
    counters: Value,
    error: Option<String>,
    schedule_tick: Option<chrono::DateTime<chrono::Utc>>,
}

async fn run_ended(
    conn: &mut PgConnection,
    job_id: Uuid,
    job: &Finished,
    status: JobStatus,
    store_name: &str,
    new: &impl Fn(EventKind, String, Value) -> NewEvent,
) -> Result<(), sqlx::Error> {
    let steps: Vec<Step> = sqlx::query_as(
        "SELECT id, kind, status, counters, error, schedule_tick FROM job_runs
         WHERE id = $1 OR ($2::uuid IS NOT NULL AND pipeline_id = $2) ORDER BY id",
    )
    .bind(job_id)
    .bind(job.pipeline_id)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = steps.iter().map(|s| s.id).collect();
    let (waiting, oldest): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        // AI proposals name their job in `meta`; other versions in `job_id`.
        "SELECT count(*), min(created_at) FROM product_versions
         WHERE workspace_id = $2 AND state = 'proposed'
           AND (job_id = ANY($1) OR meta->>'job_id' = ANY($3))",
    )
    .bind(&ids)
    .bind(job.workspace_id)
    .bind(ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
    .fetch_one(&mut *conn)
    .await?;
    if waiting > 0 {
        events::record(
            conn,
            new(
                EventKind::ReviewReady,
                format!(
                    "{waiting} {} for review in {store_name}",
                    if waiting == 1 {
                        "proposal waits"
                    } else {
                        "proposals wait"
                    }
                ),
                json!({"proposals": waiting, "oldest_at": oldest, "store_name": store_name,
                       "jobs": ids}),
            ),
        )
        .await?;
    }
    let scheduled = steps.first().and_then(|s| s.schedule_tick);
    if let Some(tick) = scheduled {
        let data = pipeline_summary(conn, &steps, status, waiting, tick, store_name).await?;
        let outcome = match status {
            JobStatus::Succeeded => "finished",
            JobStatus::Failed => "failed",
            _ => "stopped",
        };
        let mut summary = format!("The scheduled run of {store_name} {outcome}");
        if let Some(synced) = data["synced"].as_i64() {
            summary.push_str(&format!(": {synced} products new or changed"));
        }
        if let (Some(before), Some(after)) = (
            data["audit_score_before"].as_f64(),
            data["audit_score_after"].as_f64(),
        ) {
            summary.push_str(&format!(", audit score {before:.1} → {after:.1}"));
        }
        summary.push_str(&format!(", {waiting} proposals waiting"));
        events::record(conn, new(EventKind::PipelineFinished, summary, data)).await?;
    }
    Ok(())
}

/// What a scheduled run did, step by step and in total.
async fn pipeline_summary(
    conn: &mut PgConnection,
    steps: &[Step],
    status: JobStatus,
    waiting: i64,
    tick: chrono::DateTime<chrono::Utc>,
    store_name: &str,
) -> Result<Value, sqlx::Error> {
    let sum = |kind: JobKind, counter: &str| -> Option<i64> {
        let of_kind: Vec<&Step> = steps.iter().filter(|s| s.kind == kind).collect();
        (!of_kind.is_empty()).then(|| {
            of_kind
                .iter()
                .map(|s| s.counters[counter].as_i64().unwrap_or(0))
                .sum()
        })
    };
    let ids: Vec<Uuid> = steps.iter().map(|s| s.id).collect();
    let scores: Option<(Option<f64>, Option<f64>)> = sqlx::query_as(
        "SELECT p.score, r.score FROM audit_runs r LEFT JOIN audit_runs p ON p.id = r.previous_run_id
         WHERE r.job_id = ANY($1) AND r.status = 'succeeded' ORDER BY r.created_at DESC LIMIT 1",
    )
    .bind(&ids)
    .fetch_optional(&mut *conn)
    .await?;
    let (before, after) = scores.unwrap_or((None, None));
    // Products the run's sync found new or changed (the sync counters count product·scopes
    // read, changed or not).
    let sync_ids: Vec<Uuid> = steps
        .iter()
        .filter(|s| s.kind == JobKind::Sync)
        .map(|s| s.id)
        .collect();
    let synced: Option<i64> = if sync_ids.is_empty() {
        None
    } else {
        Some(
            sqlx::query_scalar("SELECT count(*) FROM products WHERE last_seen_job = ANY($1)")
                .bind(&sync_ids)
                .fetch_one(&mut *conn)
                .await?,
        )
    };
    let failed = steps.iter().find(|s| s.status == JobStatus::Failed);
    Ok(json!({
        "status": status,
        "scheduled_for": tick,
        "store_name": store_name,
        "synced": synced,
        "scopes_read": sum(JobKind::Sync, "products"),
        "versions_created": sum(JobKind::Sync, "versions_created"),
        "audit_score_before": before,
        "audit_score_after": after,
        "proposals": waiting,
        "pushed": sum(JobKind::Push, "pushed"),
        "push_failed": sum(JobKind::Push, "failed"),
        "failed_step": failed.map(|s| s.kind.as_str()),
        "error": failed.and_then(|s| s.error.clone()),
        "steps": steps.iter().map(|s| json!({"job_id": s.id, "kind": s.kind, "status": s.status}))
            .collect::<Vec<_>>(),
    }))
}
