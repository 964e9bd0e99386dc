//! Audit runs, findings and scores in PostgreSQL.
//!
//! A run writes everything in one transaction (findings and scores in batches, then the
//! store-wide duplicate names, totals and the comparison with the previous run), so a run is
//! either complete or absent: a retried job starts over on a clean slate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AuditFilter;
use super::engine::ScopedFinding;
use super::rules::{AuditConfig, RuleId, Severity};
use crate::accounts::settings;
use crate::auth::Resource;
use crate::error::Error;
use crate::jobs::JobStatus;
use crate::pagination::{Page, PageParams};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRun {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub store_id: Uuid,
    pub job_id: Uuid,
    pub status: String,
    pub filter: sqlx::types::Json<AuditFilter>,
    pub config: sqlx::types::Json<AuditConfig>,
    pub products: i64,
    pub findings: i64,
    pub score: Option<f64>,
    pub counts: serde_json::Value,
    pub previous_run_id: Option<Uuid>,
    pub comparison: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// The job's status: the run's own status is only final once it succeeded.
    pub job_status: JobStatus,
}

const RUN_COLUMNS: &str =
    "r.id, r.workspace_id, r.store_id, r.job_id, r.status, r.filter, r.config,
    r.products, r.findings, r.score, r.counts, r.previous_run_id, r.comparison, r.created_at,
    r.started_at, r.finished_at, r.duration_ms, j.status AS job_status";

impl Resource for AuditRun {
    const NAME: &'static str = "audit";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT workspace_id FROM audit_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

/// Records a queued run with the workspace's current audit settings.
pub async fn create(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    store_id: Uuid,
    job_id: Uuid,
    filter: &AuditFilter,
) -> Result<Uuid, sqlx::Error> {
    let raw: serde_json::Value =
        sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1")
            .bind(workspace_id)
            .fetch_one(&mut *tx)
            .await?;
    let config = match settings::parse(raw) {
        Ok(s) => s.audit_config(),
        Err(e) => {
            tracing::warn!(%workspace_id, error = %e, "audit uses default settings");
            AuditConfig::default()
        }
    };
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO audit_runs (id, workspace_id, store_id, job_id, status, filter, config)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6)",
    )
    .bind(id)
    .bind(workspace_id)
    .bind(store_id)
    .bind(job_id)
    .bind(sqlx::types::Json(filter))
    .bind(sqlx::types::Json(&config))
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<AuditRun>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM audit_runs r JOIN job_runs j ON j.id = r.job_id WHERE r.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn get_in(db: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<AuditRun, Error> {
    get(db, id)
        .await?
        .filter(|r| r.workspace_id == workspace_id)
        .ok_or(Error::NotFound("audit"))
}

/// A store's runs, newest first.
pub async fn list_for_store(
    db: &PgPool,
    workspace_id: Uuid,
    store_id: Uuid,
    page: &PageParams,
) -> Result<Page<AuditRun>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<AuditRun> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM audit_runs r JOIN job_runs j ON j.id = r.job_id
         WHERE r.store_id = $1 AND r.workspace_id = $2 AND ($3::uuid IS NULL OR r.id < $3)
         ORDER BY r.id DESC LIMIT $4"
    )))
    .bind(store_id)
    .bind(workspace_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |r| r.id))
}

pub async fn mark_running(db: &PgPool, run_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE audit_runs SET status = 'running', started_at = now() WHERE id = $1 AND status <> 'succeeded'",
    )
    .bind(run_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Records how an audit job ended when it did not succeed (success is recorded with the run).
pub async fn settle(
    conn: &mut PgConnection,
    job_id: Uuid,
    status: JobStatus,
) -> Result<(), sqlx::Error> {
    let status = match status {
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
        _ => return Ok(()),
    };
    sqlx::query(
        "UPDATE audit_runs SET status = $2, finished_at = now()
         WHERE job_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// One audited product's results, ready to write.
pub struct Audited {
    pub product_id: Uuid,
    pub findings: Vec<ScopedFinding>,
    pub score: i16,
}

/// Writes a batch of products' findings and scores with two statements.
pub async fn write_batch(
    tx: &mut PgConnection,
    run_id: Uuid,
    batch: &[Audited],
) -> Result<(), sqlx::Error> {
    let mut products = Vec::new();
    let mut views = Vec::new();
    let mut rules = Vec::new();
    let mut severities = Vec::new();
    let mut fields = Vec::new();
    let mut messages = Vec::new();
    let mut details = Vec::new();
    for audited in batch {
        for f in &audited.findings {
            products.push(audited.product_id);
            views.push(f.store_view.as_str());
            rules.push(f.finding.rule.as_str());
            severities.push(f.finding.rule.severity().as_str());
            fields.push(f.finding.field.as_str());
            messages.push(f.finding.message.as_str());
            details.push(&f.finding.detail);
        }
    }
    if !products.is_empty() {
        sqlx::query(
            "INSERT INTO audit_findings (run_id, product_id, store_view, rule, severity, field, message, detail)
             SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])",
        )
        .bind(run_id)
        .bind(&products)
        .bind(&views)
        .bind(&rules)
        .bind(&severities)
        .bind(&fields)
        .bind(&messages)
        .bind(&details)
        .execute(&mut *tx)
        .await?;
    }
    let ids: Vec<Uuid> = batch.iter().map(|a| a.product_id).collect();
    let scores: Vec<i16> = batch.iter().map(|a| a.score).collect();
    let counts: Vec<i32> = batch.iter().map(|a| a.findings.len() as i32).collect();
    sqlx::query(
        "INSERT INTO audit_scores (run_id, product_id, sku, score, findings)
         SELECT $1, u.id, p.sku, u.score, u.findings
         FROM UNNEST($2::uuid[], $3::int2[], $4::int4[]) AS u(id, score, findings)
         JOIN products p ON p.id = u.id",
    )
    .bind(run_id)
    .bind(&ids)
    .bind(&scores)
    .bind(&counts)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Finds names shared by several products in the same scope, store-wide (an audited product
/// may share its name with one outside the run's filter), and reports them for the audited
/// products, at the scope that owns the name. Returns how many findings it added.
pub async fn add_duplicate_names(
    tx: &mut PgConnection,
    run_id: Uuid,
    store_id: Uuid,
    scopes: &[String],
) -> Result<u64, sqlx::Error> {
    let severity = RuleId::DuplicateName.severity();
    let added = sqlx::query(
        "WITH eff AS (
            SELECT p.id AS product_id, s.scope,
                   coalesce(vv.content -> 'fields' ->> 'name', dv.content -> 'fields' ->> 'name') AS name,
                   CASE WHEN coalesce(vv.content -> 'fields' ? 'name', false) THEN s.scope ELSE 'all' END AS owner
            FROM products p
            JOIN product_live dl ON dl.product_id = p.id AND dl.store_view = 'all'
            JOIN product_versions dv ON dv.id = dl.version_id
            CROSS JOIN unnest($3::text[]) AS s(scope)
            LEFT JOIN product_live vl ON s.scope <> 'all' AND vl.product_id = p.id AND vl.store_view = s.scope
            LEFT JOIN product_versions vv ON vv.id = vl.version_id
            WHERE p.store_id = $2 AND p.removed_at IS NULL
        ), counted AS (
            SELECT product_id, owner, name,
                   count(*) OVER (PARTITION BY scope, lower(btrim(name))) AS n
            FROM eff WHERE btrim(coalesce(name, '')) <> ''
        ), dups AS (
            SELECT DISTINCT ON (c.product_id, c.owner) c.product_id, c.owner, c.name, c.n
            FROM counted c
            JOIN audit_scores a ON a.run_id = $1 AND a.product_id = c.product_id
            WHERE c.n > 1
            ORDER BY c.product_id, c.owner, c.n DESC
        ), inserted AS (
            INSERT INTO audit_findings (run_id, product_id, store_view, rule, severity, field, message, detail)
            SELECT $1, product_id, owner, 'duplicate_name', $4, 'name',
                   format('the name %s is also used by %s other product(s)', to_json(name)::text, n - 1),
                   jsonb_build_object('name', name, 'others', n - 1)
            FROM dups
            RETURNING product_id
        )
        UPDATE audit_scores a SET score = greatest(0, a.score - $5 * d.n), findings = a.findings + d.n
        FROM (SELECT product_id, count(*)::int AS n FROM inserted GROUP BY product_id) d
        WHERE a.run_id = $1 AND a.product_id = d.product_id",
    )
    .bind(run_id)
    .bind(store_id)
    .bind(scopes)
    .bind(severity.as_str())
    .bind(severity.penalty())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(added)
}

/// Totals, score and the comparison with the store's previous finished run; marks the run
/// succeeded and, for a run over all products, makes it the one the product list reads.
pub async fn complete(
    tx: &mut PgConnection,
    run: &AuditRun,
    started: std::time::Instant,
) -> Result<(), sqlx::Error> {
    let by: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT rule, severity, count(*) FROM audit_findings WHERE run_id = $1 GROUP BY rule, severity",
    )
    .bind(run.id)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_rule = BTreeMap::new();
    let mut by_severity: BTreeMap<String, i64> = ["error", "warning", "info"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    let mut findings = 0;
    for (rule, severity, n) in by {
        by_rule.insert(rule, n);
        *by_severity.entry(severity).or_default() += n;
        findings += n;
    }
    let (products, score): (i64, Option<f64>) =
        sqlx::query_as("SELECT count(*), avg(score)::float8 FROM audit_scores WHERE run_id = $1")
            .bind(run.id)
            .fetch_one(&mut *tx)
            .await?;
    let previous: Option<(Uuid, Option<f64>)> = sqlx::query_as(
        "SELECT id, score FROM audit_runs
         WHERE store_id = $1 AND status = 'succeeded' AND id <> $2
         ORDER BY finished_at DESC LIMIT 1",
    )
    .bind(run.store_id)
    .bind(run.id)
    .fetch_optional(&mut *tx)
    .await?;
    let comparison = match previous {
        Some((previous_id, previous_score)) => {
            Some(compare(tx, run.id, previous_id, previous_score).await?)
        }
        None => None,
    };
    let score = score.map(|s| (s * 10.0).round() / 10.0);
    sqlx::query(
        "UPDATE audit_runs SET status = 'succeeded', products = $2, findings = $3, score = $4,
            counts = $5, previous_run_id = $6, comparison = $7, finished_at = now(), duration_ms = $8
         WHERE id = $1",
    )
    .bind(run.id)
    .bind(products)
    .bind(findings)
    .bind(score)
    .bind(serde_json::json!({"by_rule": by_rule, "by_severity": by_severity}))
    .bind(previous.map(|(id, _)| id))
    .bind(comparison)
    .bind(started.elapsed().as_millis() as i64)
    .execute(&mut *tx)
    .await?;
    if run.filter.0.is_everything() {
        sqlx::query("UPDATE stores SET last_audit_run = $2 WHERE id = $1")
            .bind(run.store_id)
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Findings fixed since the previous run, new in this one, and unchanged, overall and per
/// rule, over the products this run audited (a product outside it was not re-checked).
async fn compare(
    tx: &mut PgConnection,
    run_id: Uuid,
    previous_id: Uuid,
    previous_score: Option<f64>,
) -> Result<serde_json::Value, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "WITH cur AS (
            SELECT DISTINCT product_id, store_view, rule, field FROM audit_findings WHERE run_id = $1
         ), prev AS (
            SELECT DISTINCT f.product_id, f.store_view, f.rule, f.field
            FROM audit_findings f
            JOIN audit_scores a ON a.run_id = $1 AND a.product_id = f.product_id
            WHERE f.run_id = $2
         )
         SELECT coalesce(cur.rule, prev.rule) AS rule,
                count(*) FILTER (WHERE prev.rule IS NULL) AS new,
                count(*) FILTER (WHERE cur.rule IS NULL) AS fixed,
                count(*) FILTER (WHERE cur.rule IS NOT NULL AND prev.rule IS NOT NULL) AS unchanged
         FROM cur FULL JOIN prev
           ON cur.product_id = prev.product_id AND cur.store_view = prev.store_view
          AND cur.rule = prev.rule AND cur.field = prev.field
         GROUP BY 1 ORDER BY 1",
    )
    .bind(run_id)
    .bind(previous_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_rule = serde_json::Map::new();
    let (mut new, mut fixed, mut unchanged) = (0, 0, 0);
    for (rule, n, f, u) in rows {
        new += n;
        fixed += f;
        unchanged += u;
        by_rule.insert(
            rule,
            serde_json::json!({"new": n, "fixed": f, "unchanged": u}),
        );
    }
    Ok(serde_json::json!({
        "previous_run_id": previous_id,
        "previous_score": previous_score,
        "new": new,
        "fixed": fixed,
        "unchanged": unchanged,
        "by_rule": by_rule,
    }))
}

/// The findings list's query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingFilter {
    /// A rule id (e.g. `meta_title_too_long`).
    pub rule: Option<String>,
    #[param(inline)]
    pub severity: Option<Severity>,
    /// `all` or a store view code.
    pub store_view: Option<String>,
    pub product_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct FindingResponse {
    pub id: i64,
    pub product_id: Uuid,
    pub sku: String,
    /// `all` (the default values) or the store view code the finding belongs to.
    pub store_view: String,
    pub rule: String,
    pub severity: String,
    pub field: String,
    pub message: String,
    pub detail: serde_json::Value,
}

pub async fn list_findings(
    db: &PgPool,
    run_id: Uuid,
    filter: FindingFilter,
    page: &PageParams,
) -> Result<Page<FindingResponse>, Error> {
    let rule = match filter.rule {
        Some(r) => Some(
            RuleId::parse(&r)
                .ok_or_else(|| Error::invalid("rule", format!("{r:?} is not an audit rule")))?
                .as_str(),
        ),
        None => None,
    };
    let after: Option<i64> = page.after()?;
    let limit = page.limit();
    let rows: Vec<FindingResponse> = sqlx::query_as(
        "SELECT f.id, f.product_id, p.sku, f.store_view, f.rule, f.severity, f.field, f.message, f.detail
         FROM audit_findings f JOIN products p ON p.id = f.product_id
         WHERE f.run_id = $1
           AND ($2::text IS NULL OR f.rule = $2)
           AND ($3::text IS NULL OR f.severity = $3)
           AND ($4::text IS NULL OR f.store_view = $4)
           AND ($5::uuid IS NULL OR f.product_id = $5)
           AND ($6::bigint IS NULL OR f.id > $6)
         ORDER BY f.id LIMIT $7",
    )
    .bind(run_id)
    .bind(rule)
    .bind(filter.severity.map(Severity::as_str))
    .bind(filter.store_view)
    .bind(filter.product_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |f| f.id))
}
