//! Jobs: status, progress, log, cancellation; and the endpoints that start store jobs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::caller::Workspace;
use crate::auth::{Access, CanEdit, CanRead};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::jobs::{self, JobFilter, JobKind, JobResponse, JobRun, NewJob};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::stores::{self, Store, StoreStatus};
use crate::sync::{SyncMode, SyncParams};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_job))
        .routes(routes!(list_jobs))
        .routes(routes!(cancel_job))
        .routes(routes!(start_sync))
        .routes(routes!(start_media))
}

/// Mirrors the store's product images into the object store (new or changed ones only).
#[utoipa::path(post, path = "/stores/{id}/media", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")),
    responses((status = 202, body = JobStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn start_media(
    State(state): State<AppState>,
    access: Access<Store, CanEdit>,
) -> ApiResult<(StatusCode, Json<JobStarted>)> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let job_id = enqueue_store_job(
        &state,
        &access.caller,
        &store,
        JobKind::Media,
        serde_json::json!({}),
        None,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(JobStarted { job_id })))
}

const LOG_LINES_SHOWN: i64 = 200;

/// A job's status, progress, counters and latest log lines.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobResponse), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    access: Access<JobRun, CanRead>,
) -> ApiResult<Json<JobResponse>> {
    let job = jobs::get_in(&state.db, access.workspace_id, access.id).await?;
    let log = jobs::log_lines(&state.db, job.id, LOG_LINES_SHOWN).await?;
    Ok(Json(JobResponse::new(job, log)))
}

/// The workspace's jobs, newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/jobs", tag = "jobs", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), JobFilter, PageParams),
    responses((status = 200, body = Page<JobResponse>), (status = 404, body = ErrorBody)))]
async fn list_jobs(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiQuery(filter): ApiQuery<JobFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<JobResponse>>> {
    let page = jobs::list(&state.db, access.workspace_id, &filter, &page).await?;
    Ok(Json(page.map(|job| JobResponse::new(job, Vec::new()))))
}

/// Asks a job to stop: a queued job is cancelled at once, a running one at its next checkpoint.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 202, body = JobResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cancel_job(
    State(state): State<AppState>,
    access: Access<JobRun, CanEdit>,
) -> ApiResult<(StatusCode, Json<JobResponse>)> {
    let job = jobs::request_cancel(&state.db, access.workspace_id, access.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(JobResponse::new(job, Vec::new())),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// `full` (default) or `incremental`.
    #[serde(default)]
    pub mode: SyncMode,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobStarted {
    pub job_id: Uuid,
}

/// Starts a sync of the store's products. One sync per store runs at a time.
#[utoipa::path(post, path = "/stores/{id}/sync", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = SyncRequest,
    responses((status = 202, body = JobStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn start_sync(
    State(state): State<AppState>,
    access: Access<Store, CanEdit>,
    body: Option<ApiJson<SyncRequest>>,
) -> ApiResult<(StatusCode, Json<JobStarted>)> {
    let request = body.map(|ApiJson(b)| b).unwrap_or_default();
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    if store.status != StoreStatus::Active {
        return Err(Error::Conflict(format!(
            "the store is {}; connect it before syncing",
            serde_json::to_value(store.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ))
        .into());
    }
    let job_id = enqueue_store_job(
        &state,
        &access.caller,
        &store,
        JobKind::Sync,
        serde_json::to_value(SyncParams {
            mode: request.mode,
            full_when_due: false,
        })
        .unwrap_or_default(),
        None,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(JobStarted { job_id })))
}

/// Queues a job for a store unless one of that kind is already queued or running.
pub async fn enqueue_store_job(
    state: &AppState,
    caller: &crate::auth::Caller,
    store: &Store,
    kind: JobKind,
    params: serde_json::Value,
    schedule_tick: Option<chrono::DateTime<chrono::Utc>>,
) -> ApiResult<Uuid> {
    let mut tx = state.db.begin().await?;
    // Serialise starts per store so two requests cannot both see "none running".
    sqlx::query("SELECT id FROM stores WHERE id = $1 FOR UPDATE")
        .bind(store.id)
        .execute(&mut *tx)
        .await?;
    if let Some(running) = jobs::active_for_store(&mut tx, store.id, kind).await? {
        return Err(Error::Conflict(format!(
            "a {} of this store is already queued or running (job {running})",
            kind.as_str()
        ))
        .into());
    }
    let job_id = jobs::enqueue(
        &mut tx,
        NewJob {
            workspace_id: store.workspace_id,
            store_id: Some(store.id),
            kind,
            params,
            created_by: caller.user_id(),
            created_by_api_key: caller.api_key_id(),
            schedule_tick,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(job_id)
}
