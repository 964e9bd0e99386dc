//! Exports and signed downloads of stored files.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit_log::{self, Entry};
use crate::auth::caller::Workspace;
use crate::auth::{Access, CanEdit, CanOwn, CanRead, Role};
use crate::catalog::content::DEFAULT_SCOPE;
use crate::catalog::products::check_scope;
use crate::error::Error;
use crate::exports::{self, Export, ExportParams, Source};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::jobs::{self, JobKind, JobStatus, NewJob};
use crate::state::AppState;
use crate::storage::{ObjectKey, StorageError};
use crate::stores::{self, Store};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_export))
        .routes(routes!(start_workspace_export))
        .routes(routes!(get_export))
}

/// A problem validation found in an export.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ExportIssue {
    pub sku: String,
    pub store_view: String,
    pub problem: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// `magento_csv`: Magento's `catalog_product` import file (content columns).
    pub format: String,
    /// Store views to add rows for (the default row is always there); default: all of them.
    pub store_views: Option<Vec<String>>,
    /// `live` (default), `approved` or `live_with_approved`.
    pub source: Option<Source>,
    /// Fail the export when validation finds a problem (duplicate url keys, over-long values,
    /// invalid characters) instead of reporting it.
    #[serde(default)]
    pub strict: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportStarted {
    pub job_id: Uuid,
    pub export_id: Uuid,
}

/// Starts an export job.
#[utoipa::path(post, path = "/stores/{id}/exports", tag = "exports", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = ExportRequest,
    responses((status = 202, body = ExportStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn start_export(
    State(state): State<AppState>,
    access: Access<Store, CanEdit>,
    ApiJson(request): ApiJson<ExportRequest>,
) -> ApiResult<(StatusCode, Json<ExportStarted>)> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let feed = match request.format.as_str() {
        "magento_csv" | "magento_zip" => false,
        "google_feed" => true,
        other => {
            return Err(Error::invalid(
                "format",
                format!(
                    "format {other:?} is not available; formats: magento_csv, magento_zip, google_feed"
                ),
            ).into());
        }
    };
    let mut views = vec![DEFAULT_SCOPE.to_string()];
    if feed {
        // A feed is of one store view: the one asked for, or the store's default view.
        let view = match request.store_views.as_deref() {
            Some([one]) if one != DEFAULT_SCOPE => check_scope(&store, one, "store_views")?,
            None => store
                .store_views
                .0
                .iter()
                .find(|v| v.code == "default")
                .or_else(|| store.store_views.0.first())
                .map(|v| v.code.clone())
                .ok_or_else(|| Error::invalid("store_views", "the store has no store views"))?,
            Some(_) => {
                return Err(Error::invalid(
                    "store_views",
                    "a google_feed is of exactly one store view",
                )
                .into());
            }
        };
        views.push(view);
    }
    match request.store_views.clone().filter(|_| !feed) {
        Some(list) => {
            for view in list {
                let view = check_scope(&store, &view, "store_views")?;
                if !views.contains(&view) {
                    views.push(view);
                }
            }
        }
        None if !feed => views.extend(store.store_views.0.iter().map(|v| v.code.clone())),
        None => {}
    }
    let source = request.source.unwrap_or(Source::Live);
    let export_id = Uuid::now_v7();
    let job_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO exports (id, workspace_id, store_id, job_id, format, source, store_views, strict)
         VALUES ($1, $2, $3, $4, $8, $5, $6, $7)",
    )
    .bind(export_id)
    .bind(store.workspace_id)
    .bind(store.id)
    .bind(job_id)
    .bind(source.as_str())
    .bind(&views)
    .bind(request.strict)
    .bind(&request.format)
    .execute(&mut *tx)
    .await?;
    jobs::enqueue_as(
        &mut tx,
        job_id,
        NewJob {
            workspace_id: store.workspace_id,
            store_id: Some(store.id),
            kind: JobKind::Export,
            params: serde_json::to_value(ExportParams { export_id })
                .map_err(anyhow::Error::from)?,
            created_by: access.caller.user_id(),
            created_by_api_key: access.caller.api_key_id(),
            schedule_tick: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ExportStarted { job_id, export_id }),
    ))
}

pub const WORKSPACE_ARCHIVE: &str = "workspace_archive";

/// Whether `role` may read an export of `format`: a workspace archive holds the members, the
/// audit log and everything else of the workspace, so only owners; store exports, every member.
pub fn visible_to(role: Role, format: &str) -> bool {
    format != WORKSPACE_ARCHIVE || role == Role::Owner
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExportRequest {
    /// `workspace_archive`: everything of the workspace as a ZIP of JSON files plus media.
    pub format: String,
}

/// Starts a workspace archive (data portability): a ZIP of JSON files — the workspace and its
/// members, stores without secrets, products with all their versions, audit runs and
/// findings, jobs, usage, exports, the audit log — plus the mirrored pictures. Owners only;
/// `GET /exports/{id}` hands out the download link.
#[utoipa::path(post, path = "/workspaces/{ws}/exports", tag = "exports", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = WorkspaceExportRequest,
    responses((status = 202, body = ExportStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn start_workspace_export(
    State(state): State<AppState>,
    access: Access<Workspace, CanOwn>,
    ApiJson(request): ApiJson<WorkspaceExportRequest>,
) -> ApiResult<(StatusCode, Json<ExportStarted>)> {
    if request.format != WORKSPACE_ARCHIVE {
        return Err(Error::invalid(
            "format",
            format!(
                "format {:?} is not a workspace export; formats: workspace_archive (store exports are POST /stores/{{id}}/exports)",
                request.format
            ),
        ).into());
    }
    let export_id = Uuid::now_v7();
    let job_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO exports (id, workspace_id, store_id, job_id, format, source, store_views)
         VALUES ($1, $2, NULL, $3, $4, 'live', '{}')",
    )
    .bind(export_id)
    .bind(access.workspace_id)
    .bind(job_id)
    .bind(WORKSPACE_ARCHIVE)
    .execute(&mut *tx)
    .await?;
    jobs::enqueue_as(
        &mut tx,
        job_id,
        NewJob {
            workspace_id: access.workspace_id,
            store_id: None,
            kind: JobKind::Export,
            params: serde_json::to_value(ExportParams { export_id })
                .map_err(anyhow::Error::from)?,
            created_by: access.caller.user_id(),
            created_by_api_key: access.caller.api_key_id(),
            schedule_tick: None,
        },
    )
    .await?;
    audit_log::record(
        &mut *tx,
        Entry::by(
            &access.caller,
            access.workspace_id,
            "workspace.export_started",
        )
        .target("export", export_id),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ExportStarted { job_id, export_id }),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportResponse {
    pub id: Uuid,
    pub format: String,
    /// The job's status.
    pub status: JobStatus,
    pub source: String,
    pub store_views: Vec<String>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    /// A signed link to the file, valid until `expires_at` (only once the export succeeded).
    pub download_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// What validation found: `[{"sku", "store_view", "problem"}]`.
    #[schema(value_type = Vec<ExportIssue>)]
    pub issues: serde_json::Value,
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An export's status and, once done, a signed download URL.
#[utoipa::path(get, path = "/exports/{id}", tag = "exports", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "export id")),
    responses((status = 200, body = ExportResponse), (status = 404, body = ErrorBody)))]
async fn get_export(
    State(state): State<AppState>,
    access: Access<Export, CanRead>,
) -> ApiResult<Json<ExportResponse>> {
    let export = exports::get(&state.db, access.id)
        .await?
        .filter(|e| e.workspace_id == access.workspace_id)
        .ok_or(Error::NotFound("export"))?;
    if !visible_to(access.role, &export.format) {
        return Err(Error::Forbidden("only an owner can download the workspace archive").into());
    }
    let job = jobs::get_in(&state.db, access.workspace_id, export.job_id).await?;
    let (download_url, expires_at) = match (&export.object_key, job.status) {
        (Some(key), JobStatus::Succeeded) => {
            let key = ObjectKey::parse(key).map_err(anyhow::Error::from)?;
            let link = state
                .storage
                .download_link(&key)
                .await
                .map_err(anyhow::Error::from)?;
            if state.storage.local.is_none() {
                // S3 serves the download itself; handing out the link is what the daemon sees.
                audit_log::record(
                    &state.db,
                    Entry::by(&access.caller, access.workspace_id, "file.link_issued")
                        .target("file", key.as_str()),
                )
                .await?;
            }
            (Some(link.url), Some(link.expires_at))
        }
        _ => (None, None),
    };
    Ok(Json(ExportResponse {
        id: export.id,
        format: export.format,
        status: job.status,
        source: export.source,
        store_views: export.store_views,
        rows: export.rows,
        bytes: export.bytes,
        download_url,
        expires_at,
        issues: export.issues,
        job_id: export.job_id,
        created_at: export.created_at,
        finished_at: export.finished_at,
    }))
}

#[derive(Debug, Deserialize)]
pub struct Signed {
    expires: i64,
    signature: String,
}

/// `GET /api/v1/files/{key}?expires=&signature=`: a file of the local object store, for
/// whoever holds an unexpired link the daemon signed. With S3 storage links point at the S3
/// server, so this route has nothing to serve. Downloads are in the workspace's audit log.
pub async fn download_file(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(signed): Query<Signed>,
) -> Result<Response, ApiError> {
    let local = state
        .storage
        .local
        .as_ref()
        .ok_or(Error::NotFound("file"))?;
    let key = local
        .verify(&key, signed.expires, &signed.signature)
        .map_err(|e| match e {
            StorageError::Expired => Error::Forbidden("the download link has expired"),
            _ => Error::Forbidden("the download link is invalid"),
        })?;
    let (file, length) = local.open(&key).await.map_err(|e| match e {
        StorageError::NotFound(_) => Error::NotFound("file"),
        other => Error::Internal(other.into()),
    })?;
    let recorded = audit_log::record(
        &state.db,
        Entry {
            workspace_id: Some(key.workspace_id()),
            ..Entry::new("file.downloaded")
        }
        .target("file", key.as_str()),
    )
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record a download");
    }
    let name = key.file_name();
    let content_type = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else if name.ends_with(".zip") {
        "application/zip"
    } else if name.ends_with(".xml") {
        "application/xml; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .header(header::CONTENT_LENGTH, length);
    let stream = tokio_util::io::ReaderStream::new(file);
    response
        .body(Body::from_stream(stream))
        .map_err(|e| Error::Internal(anyhow::anyhow!(e)))
        .map(IntoResponse::into_response)
        .map_err(Into::into)
}
