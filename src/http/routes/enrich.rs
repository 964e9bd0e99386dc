//! Enrichment requests and the workspace's AI usage.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::settings;
use crate::audits::rules::RuleId;
use crate::auth::caller::Workspace;
use crate::auth::{Access, CanEdit, CanRead};
use crate::catalog::content::DEFAULT_SCOPE;
use crate::catalog::products::{check_scope, like_pattern};
use crate::enrich::usage::{self, UsageRow};
use crate::enrich::{self, ENRICHABLE, EnrichParams};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::jobs::{self, JobKind, NewJob};
use crate::state::AppState;
use crate::stores::{self, Store};

const MAX_PRODUCTS: usize = 10_000;
const MAX_SEARCH_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_enrich))
        .routes(routes!(get_usage))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichRequest {
    /// These products…
    pub products: Option<Vec<Uuid>>,
    /// …or those the filter selects (all products without either).
    pub filter: Option<EnrichFilter>,
    /// Of `description`, `short_description`, `meta_title`, `meta_description`,
    /// `meta_keyword`, `alt_text` (default: all but `description`).
    pub fields: Option<Vec<String>>,
    /// `all` and store view codes to write (default `["all"]`); a view gets text in its locale.
    pub store_views: Option<Vec<String>>,
    /// A provider configured under `[ai.providers.<name>]` (default: `[ai] default_provider`).
    pub provider: Option<String>,
    /// Count the work and estimate the tokens; generate nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichFilter {
    /// Case-insensitive substring of SKU or name.
    pub q: Option<String>,
    /// Only products with findings of these rules in the store's latest audit.
    pub findings: Option<Vec<String>>,
    /// Only the fields (and scopes) that audit flagged for each product.
    #[serde(default)]
    pub only_flagged: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrichStarted {
    pub job_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrichEstimate {
    pub dry_run: bool,
    pub products: i64,
    /// Products × scopes.
    pub items: i64,
    pub estimated_tokens: i64,
    /// Tokens the workspace may still use today (null: no budget).
    pub budget_left: Option<u64>,
}

/// Starts an enrichment job (202), or estimates one (`dry_run`, 200).
#[utoipa::path(post, path = "/stores/{id}/enrich", tag = "enrichment", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = EnrichRequest,
    responses((status = 202, body = EnrichStarted), (status = 200, body = EnrichEstimate),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn start_enrich(
    State(state): State<AppState>,
    access: Access<Store, CanEdit>,
    ApiJson(request): ApiJson<EnrichRequest>,
) -> ApiResult<Response> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let workspace = settings::get(&state.db, access.workspace_id).await?;
    if !workspace.ai_processing {
        return Err(Error::Conflict(
            "AI processing is switched off for this workspace (setting ai_processing); nothing is sent"
                .into(),
        ).into());
    }
    let dry_run = request.dry_run;
    let params = check_request(&state, &store, request).await?;
    let mut tx = state.db.begin().await?;
    let budget_left =
        usage::budget_left(&mut tx, store.workspace_id, workspace.daily_token_budget).await?;
    if dry_run {
        let (products, chars): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH selected AS ({})
             SELECT count(*), coalesce(sum(length(coalesce(v.content -> 'fields' ->> 'name', ''))
                    + length(coalesce(v.content -> 'fields' ->> 'description', ''))), 0)::bigint
             FROM selected s
             LEFT JOIN product_live l ON l.product_id = s.id AND l.store_view = 'all'
             LEFT JOIN product_versions v ON v.id = l.version_id",
            enrich::selection_sql("p.id", false)
        )))
        .bind(store.id)
        .bind(&params.products)
        .bind(params.q.as_deref().map(like_pattern))
        .bind(
            params
                .findings
                .as_ref()
                .map(|r| r.iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>()),
        )
        .bind(params.finding_run)
        .bind(None::<Uuid>)
        .bind(i64::MAX)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
        let scopes = params.store_views.len() as i64;
        // Input plus about as much output, for each scope.
        let estimated = ai::text::estimate_tokens(chars.max(0) as usize) as i64 * 2 * scopes;
        return Ok(Json(EnrichEstimate {
            dry_run: true,
            products,
            items: products * scopes,
            estimated_tokens: estimated,
            budget_left,
        })
        .into_response());
    }
    if budget_left == Some(0) {
        return Err(Error::Conflict("the workspace's daily token budget is used up".into()).into());
    }
    let job_id = jobs::enqueue(
        &mut tx,
        NewJob {
            workspace_id: store.workspace_id,
            store_id: Some(store.id),
            kind: JobKind::Enrich,
            params: serde_json::to_value(&params).map_err(anyhow::Error::from)?,
            created_by: access.caller.user_id(),
            created_by_api_key: access.caller.api_key_id(),
            schedule_tick: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(EnrichStarted { job_id })).into_response())
}

async fn check_request(
    state: &AppState,
    store: &Store,
    request: EnrichRequest,
) -> ApiResult<EnrichParams> {
    let fields = match request.fields {
        Some(fields) => {
            if fields.is_empty() {
                return Err(Error::invalid("fields", "fields must name at least one field").into());
            }
            for field in &fields {
                if !ENRICHABLE.contains(&field.as_str()) {
                    return Err(Error::invalid(
                        "fields",
                        format!(
                            "{field:?} cannot be enriched; fields: {}",
                            ENRICHABLE.join(", ")
                        ),
                    )
                    .into());
                }
            }
            fields
        }
        None => ENRICHABLE
            .iter()
            .filter(|f| **f != "description")
            .map(|f| f.to_string())
            .collect(),
    };
    let mut store_views = Vec::new();
    for view in request
        .store_views
        .unwrap_or_else(|| vec![DEFAULT_SCOPE.to_string()])
    {
        let view = check_scope(store, &view, "store_views")?;
        if !store_views.contains(&view) {
            store_views.push(view);
        }
    }
    if store_views.is_empty() {
        return Err(
            Error::invalid("store_views", "store_views must name at least one scope").into(),
        );
    }
    let provider = request
        .provider
        .unwrap_or_else(|| state.ai.default_name().to_string());
    if state.ai.get(&provider).is_none() {
        return Err(Error::invalid(
            "provider",
            format!(
                "provider {provider:?} is not configured; configured: {}",
                state.ai.names().join(", ")
            ),
        )
        .into());
    }
    let mut params = EnrichParams {
        fields,
        store_views,
        provider,
        ..Default::default()
    };
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
        let known: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM products WHERE store_id = $1 AND workspace_id = $2 AND id = ANY($3)",
        )
        .bind(store.id)
        .bind(store.workspace_id)
        .bind(&ids)
        .fetch_one(&state.db)
        .await?;
        if known != ids.len() as i64 {
            return Err(
                Error::invalid("products", "some products are not products of this store").into(),
            );
        }
        params.products = Some(ids);
    }
    if let Some(filter) = request.filter {
        if let Some(q) = filter
            .q
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
        {
            if q.chars().count() > MAX_SEARCH_CHARS {
                return Err(Error::invalid(
                    "filter.q",
                    format!("filter.q is longer than {MAX_SEARCH_CHARS} characters"),
                )
                .into());
            }
            params.q = Some(q);
        }
        if let Some(rules) = filter.findings {
            let parsed = rules
                .iter()
                .map(|r| {
                    RuleId::parse(r).ok_or_else(|| {
                        Error::invalid("filter.findings", format!("{r:?} is not an audit rule"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            params.findings = Some(parsed);
        }
        params.only_flagged = filter.only_flagged;
        if params.findings.is_some() || params.only_flagged {
            params.finding_run = Some(store.last_audit_run.ok_or_else(|| {
                Error::Conflict(
                    "filtering by findings needs a finished audit of all the store's products"
                        .into(),
                )
            })?);
        }
    }
    Ok(params)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Days back from today (UTC), 1–366, default 30.
    pub days: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub items: Vec<UsageRow>,
    pub daily_token_budget: Option<u64>,
    /// Input plus output tokens used today (UTC).
    pub used_today: i64,
}

/// AI usage per day, provider and model.
#[utoipa::path(get, path = "/workspaces/{ws}/usage", tag = "enrichment", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), UsageQuery),
    responses((status = 200, body = UsageResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_usage(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageResponse>> {
    let days = query.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(Error::invalid("days", "days must be between 1 and 366").into());
    }
    let items = usage::list(&state.db, access.workspace_id, days).await?;
    let today = chrono::Utc::now().date_naive();
    let used_today = items
        .iter()
        .filter(|r| r.day == today)
        .map(|r| r.input_tokens + r.output_tokens)
        .sum();
    let settings = settings::get(&state.db, access.workspace_id).await?;
    Ok(Json(UsageResponse {
        items,
        daily_token_budget: settings.daily_token_budget,
        used_today,
    }))
}
