//! `ai_usage`: tokens and requests per workspace, provider, model and day (UTC).

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use ai::Usage;

/// Adds one request's usage to today's row.
pub async fn record(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    provider: &str,
    model: &str,
    usage: Usage,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ai_usage (workspace_id, provider, model, day, requests, input_tokens, output_tokens)
         VALUES ($1, $2, $3, (now() AT TIME ZONE 'UTC')::date, 1, $4, $5)
         ON CONFLICT (workspace_id, day, provider, model) DO UPDATE SET
            requests = ai_usage.requests + 1,
            input_tokens = ai_usage.input_tokens + EXCLUDED.input_tokens,
            output_tokens = ai_usage.output_tokens + EXCLUDED.output_tokens",
    )
    .bind(workspace_id)
    .bind(provider)
    .bind(model)
    .bind(usage.input_tokens as i64)
    .bind(usage.output_tokens as i64)
    .execute(tx)
    .await?;
    Ok(())
}

/// Tokens the workspace may still use today; `None` without a budget.
pub async fn budget_left(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    budget: Option<u64>,
) -> Result<Option<u64>, sqlx::Error> {
    let Some(budget) = budget else {
        return Ok(None);
    };
    let used: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(input_tokens + output_tokens), 0)::bigint FROM ai_usage
         WHERE workspace_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date",
    )
    .bind(workspace_id)
    .fetch_one(tx)
    .await?;
    Ok(Some(budget.saturating_sub(used.max(0) as u64)))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub provider: String,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// The workspace's usage in the last `days` days, newest first.
pub async fn list(
    db: &PgPool,
    workspace_id: Uuid,
    days: i32,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT day, provider, model, requests, input_tokens, output_tokens FROM ai_usage
         WHERE workspace_id = $1 AND day > (now() AT TIME ZONE 'UTC')::date - $2
         ORDER BY day DESC, provider, model",
    )
    .bind(workspace_id)
    .bind(days)
    .fetch_all(db)
    .await
}
