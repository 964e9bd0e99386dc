//! Audits: start one over a store, read a run's summary and its findings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audits::rules::{AuditConfig, RuleId};
use crate::audits::runs::{self, AuditRun, FindingFilter, FindingResponse};
use crate::audits::{self, AuditFilter};
use crate::auth::{Access, CanEdit, CanRead};
use crate::catalog::products::check_scope;
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::jobs::{self, JobKind, JobStatus, NewJob};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::stores::{self, Store};

/// Most products one request may name.
const MAX_PRODUCTS: usize = 10_000;
const MAX_SEARCH_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_audit, list_audits))
        .routes(routes!(get_audit))
        .routes(routes!(list_findings))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRequest {
    /// Audit only these products (ids); without it and `filter`, every product.
    pub products: Option<Vec<Uuid>>,
    pub filter: Option<AuditRequestFilter>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRequestFilter {
    /// Case-insensitive substring of the SKU or name.
    pub q: Option<String>,
    /// Only products with a finding of this rule in the store's latest audit of all products.
    pub finding: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditStarted {
    pub job_id: Uuid,
    pub audit_id: Uuid,
}

/// Audits the store's products (all, or those the request names) with the workspace's audit
/// settings. One audit per store runs at a time.
#[utoipa::path(post, path = "/stores/{id}/audits", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = AuditRequest,
    responses((status = 202, body = AuditStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_audit(
    State(state): State<AppState>,
    access: Access<Store, CanEdit>,
    body: Option<ApiJson<AuditRequest>>,
) -> ApiResult<(StatusCode, Json<AuditStarted>)> {
    let request = body.map(|ApiJson(b)| b).unwrap_or_default();
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let filter = check_request(&state, &store, request).await?;

    let mut tx = state.db.begin().await?;
    // Serialise starts per store so two requests cannot both see "none running".
    sqlx::query("SELECT id FROM stores WHERE id = $1 FOR UPDATE")
        .bind(store.id)
        .execute(&mut *tx)
        .await?;
    if let Some(running) = jobs::active_for_store(&mut tx, store.id, JobKind::Audit).await? {
        return Err(Error::Conflict(format!(
            "an audit of this store is already queued or running (job {running})"
        ))
        .into());
    }
    let job_id = Uuid::now_v7();
    let audit_id = runs::create(&mut tx, store.workspace_id, store.id, job_id, &filter).await?;
    jobs::enqueue_as(
        &mut tx,
        job_id,
        NewJob {
            workspace_id: store.workspace_id,
            store_id: Some(store.id),
            kind: JobKind::Audit,
            params: audits::params(audit_id),
            created_by: access.caller.user_id(),
            created_by_api_key: access.caller.api_key_id(),
            schedule_tick: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AuditStarted { job_id, audit_id }),
    ))
}

async fn check_request(
    state: &AppState,
    store: &Store,
    request: AuditRequest,
) -> ApiResult<AuditFilter> {
    let mut filter = AuditFilter::default();
    if let Some(mut ids) = request.products {
        ids.sort();
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_PRODUCTS {
            return Err(Error::invalid(
                "products",
                format!("products must name between 1 and {MAX_PRODUCTS} products"),
            )
            .into());
        }
        let known: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM products WHERE store_id = $1 AND workspace_id = $2 AND id = ANY($3)",
        )
        .bind(store.id)
        .bind(store.workspace_id)
        .bind(&ids)
        .fetch_all(&state.db)
        .await?;
        if let Some(unknown) = ids.iter().find(|id| !known.contains(id)) {
            return Err(Error::invalid(
                "products",
                format!("{unknown} is not a product of this store"),
            )
            .into());
        }
        filter.products = Some(ids);
    }
    if let Some(f) = request.filter {
        if let Some(q) = f.q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty()) {
            if q.chars().count() > MAX_SEARCH_CHARS {
                return Err(Error::invalid(
                    "filter.q",
                    format!("filter.q is longer than {MAX_SEARCH_CHARS} characters"),
                )
                .into());
            }
            filter.q = Some(q);
        }
        if let Some(rule) = f.finding {
            let rule = RuleId::parse(&rule).ok_or_else(|| {
                Error::invalid("filter.finding", format!("{rule:?} is not an audit rule"))
            })?;
            let Some(last) = store.last_audit_run else {
                return Err(Error::Conflict(
                    "filter.finding needs a finished audit of all the store's products first"
                        .into(),
                )
                .into());
            };
            filter.finding = Some(rule);
            filter.finding_run = Some(last);
        }
    }
    Ok(filter)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    pub id: Uuid,
    pub store_id: Uuid,
    pub job_id: Uuid,
    /// The job's status: `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: JobStatus,
    /// Mean product score, 0–100 (null until the run succeeded).
    pub score: Option<f64>,
    /// Products audited.
    pub products: i64,
    /// Findings in all.
    pub findings: i64,
    /// `{"by_rule": {rule: n}, "by_severity": {"error": n, "warning": n, "info": n}}`.
    pub counts: serde_json::Value,
    /// Against the store's previous finished run: `fixed`, `new` and `unchanged` findings,
    /// overall and `by_rule`, and that run's id and score. Null for a store's first run.
    pub comparison: Option<serde_json::Value>,
    pub filter: AuditFilter,
    /// The rules switched off and the thresholds this run used.
    #[schema(value_type = Object)]
    pub settings: AuditConfig,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

impl From<AuditRun> for AuditResponse {
    fn from(r: AuditRun) -> Self {
        let succeeded = r.status == "succeeded";
        AuditResponse {
            id: r.id,
            store_id: r.store_id,
            job_id: r.job_id,
            status: if succeeded {
                JobStatus::Succeeded
            } else if r.job_status == JobStatus::Succeeded {
                // The job finished but the run was not recorded (not expected): say so.
                JobStatus::Failed
            } else {
                r.job_status
            },
            score: r.score,
            products: r.products,
            findings: r.findings,
            counts: r.counts,
            comparison: r.comparison,
            filter: r.filter.0,
            settings: r.config.0,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
        }
    }
}

/// A store's audit runs, newest first.
#[utoipa::path(get, path = "/stores/{id}/audits", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id"), PageParams),
    responses((status = 200, body = Page<AuditResponse>), (status = 404, body = ErrorBody)))]
async fn list_audits(
    State(state): State<AppState>,
    access: Access<Store, CanRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<AuditResponse>>> {
    let page = runs::list_for_store(&state.db, access.workspace_id, access.id, &page).await?;
    Ok(Json(page.map(AuditResponse::from)))
}

/// An audit run: status, score, counts by rule and severity, and what changed since the
/// store's previous run.
#[utoipa::path(get, path = "/audits/{id}", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "audit id")),
    responses((status = 200, body = AuditResponse), (status = 404, body = ErrorBody)))]
async fn get_audit(
    State(state): State<AppState>,
    access: Access<AuditRun, CanRead>,
) -> ApiResult<Json<AuditResponse>> {
    let run = runs::get_in(&state.db, access.workspace_id, access.id).await?;
    Ok(Json(run.into()))
}

/// A run's findings in a stable order, filtered by rule, severity, store view or product.
#[utoipa::path(get, path = "/audits/{id}/findings", tag = "audits", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "audit id"), FindingFilter, PageParams),
    responses((status = 200, body = Page<FindingResponse>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_findings(
    State(state): State<AppState>,
    access: Access<AuditRun, CanRead>,
    ApiQuery(filter): ApiQuery<FindingFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<FindingResponse>>> {
    let run = runs::get_in(&state.db, access.workspace_id, access.id).await?;
    if let Some(view) = &filter.store_view {
        let store = stores::get_in(&state.db, access.workspace_id, run.store_id).await?;
        check_scope(&store, view, "store_view")?;
    }
    let page = runs::list_findings(&state.db, run.id, filter, &page).await?;
    Ok(Json(page))
}
