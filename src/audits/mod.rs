//! Catalog audits: rules over each product's live content per scope, findings, scores.
//!
//! An audit is a job over one store. It streams the live versions of the store's products
//! (one query, in product order, so memory holds one batch whatever the catalog size),
//! evaluates the [`rules`] in Rust, and writes findings and per-product scores in batches
//! inside one transaction; names shared across products are found store-wide in SQL at the
//! end. See [`runs`] for what a finished run records.

pub mod engine;
pub mod html;
pub mod rules;
pub mod runs;

use std::time::Instant;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use self::engine::{ProductUnderAudit, StoreScopes};
use self::rules::RuleId;
use self::runs::Audited;
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::products::like_pattern;
use crate::jobs::context::{JobContext, JobError, Outcome};
use crate::stores;

/// Products evaluated and written per statement pair.
const BATCH: usize = 500;

/// Which products a run audits. Empty: all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditFilter {
    /// Only these products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<Uuid>>,
    /// Case-insensitive substring of the SKU or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Only products with a finding of this rule in the store's latest audit of all products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<RuleId>,
    /// The run `finding` refers to, fixed when the audit was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding_run: Option<Uuid>,
}

impl AuditFilter {
    pub fn is_everything(&self) -> bool {
        self.products.is_none() && self.q.is_none() && self.finding.is_none()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct AuditParams {
    run_id: Uuid,
}

/// The job parameters of an audit of `run_id`.
pub fn params(run_id: Uuid) -> serde_json::Value {
    serde_json::to_value(AuditParams { run_id }).unwrap_or_default()
}

type Row = (
    Uuid,
    Option<String>,
    Option<serde_json::Value>,
    String,
    sqlx::types::Json<Content>,
    Option<serde_json::Value>,
);

pub async fn run(ctx: &JobContext) -> Result<Outcome, JobError> {
    let params: AuditParams = ctx.params()?;
    let db = &ctx.state.db;
    let run = runs::get(db, params.run_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the audit run no longer exists".into()))?;
    if run.status == "succeeded" {
        // An earlier attempt committed the run and died before recording the job's end.
        return Ok(Outcome::Done);
    }
    let store = stores::get(db, run.store_id)
        .await?
        .ok_or_else(|| JobError::Fatal("the store no longer exists".into()))?;
    runs::mark_running(db, run.id).await?;
    let started = Instant::now();
    let filter = &run.filter.0;
    let config = &run.config.0;
    let search = filter.q.as_deref().map(like_pattern);
    let finding = filter.finding.map(RuleId::as_str);

    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products p
         WHERE p.store_id = $1 AND p.removed_at IS NULL
           AND ($2::uuid[] IS NULL OR p.id = ANY($2))
           AND ($3::text IS NULL OR (lower(p.sku) || ' ' || lower(coalesce(p.name, ''))) LIKE lower($3))
           AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM audit_findings f
                WHERE f.run_id = $5 AND f.product_id = p.id AND f.rule = $4))",
    )
    .bind(store.id)
    .bind(&filter.products)
    .bind(&search)
    .bind(finding)
    .bind(filter.finding_run)
    .persistent(false)
    .fetch_one(db)
    .await?;
    ctx.set_total(Some(total));
    ctx.set_done(0);
    ctx.log(
        "info",
        format!(
            "auditing {total} products in {} store views",
            store.store_views.0.len()
        ),
    )
    .await;

    let scopes = StoreScopes::new(&store.store_views.0);
    let mut tx = db.begin().await?;
    let mut rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT p.id, p.type_id, CASE WHEN l.store_view = 'all' THEN p.attributes END, l.store_view, v.content,
                CASE WHEN l.store_view = 'all' THEN {} END
         FROM products p
         JOIN product_live l ON l.product_id = p.id
         JOIN product_versions v ON v.id = l.version_id
         WHERE p.store_id = $1 AND p.removed_at IS NULL
           AND ($2::uuid[] IS NULL OR p.id = ANY($2))
           AND ($3::text IS NULL OR (lower(p.sku) || ' ' || lower(coalesce(p.name, ''))) LIKE lower($3))
           AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM audit_findings f
                WHERE f.run_id = $5 AND f.product_id = p.id AND f.rule = $4))
         ORDER BY p.id, l.store_view <> 'all', l.store_view",
        crate::media::SIZES_SQL
    )))
    .bind(store.id)
    .bind(&filter.products)
    .bind(&search)
    .bind(finding)
    .bind(filter.finding_run)
    .persistent(false)
    .fetch(db);

    let mut batch: Vec<Audited> = Vec::with_capacity(BATCH);
    let mut current: Option<(Uuid, ProductUnderAudit)> = None;
    let mut audited = 0i64;
    loop {
        let row = rows.try_next().await?;
        let next_product = row.as_ref().map(|r| r.0);
        if current.as_ref().map(|(id, _)| *id) != next_product {
            if let Some((product_id, product)) = current.take() {
                let findings = engine::evaluate(&product, &scopes, config);
                let score = engine::score(&findings);
                batch.push(Audited {
                    product_id,
                    findings,
                    score,
                });
            }
            if batch.len() >= BATCH || (row.is_none() && !batch.is_empty()) {
                runs::write_batch(&mut tx, run.id, &batch).await?;
                audited += batch.len() as i64;
                ctx.set_done(audited);
                batch.clear();
                if let Some(stop) = ctx.should_stop().await {
                    // Nothing of a stopped run is kept; a resumed job starts it over.
                    drop(rows);
                    tx.rollback().await?;
                    return Ok(Outcome::Stopped(stop));
                }
                ctx.flush().await?;
            }
        }
        let Some((product_id, type_id, attributes, scope, content, sizes)) = row else {
            break;
        };
        let product = &mut current
            .get_or_insert_with(|| {
                (
                    product_id,
                    ProductUnderAudit {
                        type_id,
                        attributes: serde_json::Value::Null,
                        scopes: Vec::new(),
                        image_sizes: Vec::new(),
                    },
                )
            })
            .1;
        if scope == DEFAULT_SCOPE {
            product.attributes = attributes.unwrap_or_default();
            product.image_sizes = sizes
                .and_then(|s| serde_json::from_value::<Vec<(i64, u32, u32)>>(s).ok())
                .unwrap_or_default();
        }
        product.scopes.push((scope, content.0));
    }
    drop(rows);

    if config.enabled(RuleId::DuplicateName) {
        let mut all_scopes = vec![DEFAULT_SCOPE.to_string()];
        all_scopes.extend(store.store_views.0.iter().map(|v| v.code.clone()));
        runs::add_duplicate_names(&mut tx, run.id, store.id, &all_scopes).await?;
    }
    runs::complete(&mut tx, &run, started).await?;
    tx.commit().await?;
    if let Some(done) = runs::get(db, run.id).await? {
        crate::db::analyze_after_bulk_write(
            db,
            done.products + done.findings,
            &["audit_scores", "audit_findings"],
        )
        .await;
        ctx.add("products", done.products);
        ctx.add("findings", done.findings);
        ctx.log(
            "info",
            format!(
                "audited {} products: {} findings, score {}",
                done.products,
                done.findings,
                done.score.map_or("-".to_string(), |s| format!("{s:.1}"))
            ),
        )
        .await;
    }
    Ok(Outcome::Done)
}
