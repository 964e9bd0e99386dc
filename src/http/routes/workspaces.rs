//! Workspaces, members, API keys, settings and the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::email::parse_name;
use crate::accounts::settings::{self, SettingsUpdate, WorkspaceSettings};
use crate::accounts::two_factor;
use crate::accounts::workspaces::{self, ApiKeyInfo, WorkspaceWithRole};
use crate::audit_log::{self, AuditRecord, Entry};
use crate::auth::caller::Workspace;
use crate::auth::{Access, Caller, CanAdminister, CanRead, PersonAccess, Principal, Role};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(
            list_api_keys,
            create_api_key,
            revoke_api_key_by_body
        ))
        .routes(routes!(revoke_api_key))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(audit_log_list))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WorkspaceItem {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<WorkspaceWithRole> for WorkspaceItem {
    fn from(w: WorkspaceWithRole) -> Self {
        WorkspaceItem {
            id: w.id,
            name: w.name,
            role: w.role,
            created_at: w.created_at,
        }
    }
}

/// Workspaces the caller can see: a user's memberships, or an API key's own workspace.
#[utoipa::path(get, path = "/workspaces", tag = "workspaces", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<WorkspaceItem>), (status = 401, body = ErrorBody)))]
async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<WorkspaceItem>>> {
    match caller.principal {
        Principal::User { user_id, .. } => Ok(Json(
            workspaces::list_for_user(&state.db, user_id, &page)
                .await?
                .map(Into::into),
        )),
        Principal::ApiKey {
            workspace_id, role, ..
        } => {
            let ws = workspaces::get(&state.db, workspace_id)
                .await?
                .ok_or(Error::Unauthenticated("invalid or revoked API key"))?;
            Ok(Json(Page {
                items: vec![WorkspaceItem {
                    id: ws.id,
                    name: ws.name,
                    role,
                    created_at: ws.created_at,
                }],
                next_cursor: None,
            }))
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    pub name: String,
}

/// Creates a workspace owned by the caller.
#[utoipa::path(post, path = "/workspaces", tag = "workspaces", security(("bearer" = [])), request_body = CreateWorkspace,
    responses((status = 201, body = WorkspaceItem), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<WorkspaceItem>)> {
    let user_id = caller.require_user()?;
    let name = parse_name("name", &req.name)?;
    let mut tx = state.db.begin().await?;
    let ws = workspaces::create(&mut tx, &name, user_id).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&caller, ws.id, "workspace.created").target("workspace", ws.id),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceItem {
            id: ws.id,
            name: ws.name,
            role: Role::Owner,
            created_at: ws.created_at,
        }),
    ))
}

/// API keys of the workspace (never the keys themselves). A person's session only: API keys
/// are refused.
#[utoipa::path(get, path = "/workspaces/{ws}/api-keys", tag = "api keys", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), PageParams),
    responses((status = 200, body = Page<ApiKeyInfo>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_api_keys(
    State(state): State<AppState>,
    access: PersonAccess<Workspace, CanAdminister>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ApiKeyInfo>>> {
    Ok(Json(
        workspaces::list_api_keys(&state.db, access.workspace_id, &page).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    pub role: Role,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    /// The whole key. Shown only in this answer: store it now.
    pub key: String,
    pub prefix: String,
    pub role: Role,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Creates an API key acting in this workspace with the given role. A person's session only:
/// a key cannot mint keys that would outlive its own revocation.
#[utoipa::path(post, path = "/workspaces/{ws}/api-keys", tag = "api keys", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_api_key(
    State(state): State<AppState>,
    access: PersonAccess<Workspace, CanAdminister>,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    if !access.role.may_grant(req.role) {
        return Err(Error::Forbidden("you cannot create a key with a role above your own").into());
    }
    let name = parse_name("name", &req.name)?;
    let mut tx = state.db.begin().await?;
    let (info, key) = workspaces::create_api_key(
        &mut tx,
        access.workspace_id,
        &name,
        req.role,
        access.caller.user_id(),
    )
    .await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "api_key.created")
            .target("api_key", info.id)
            .details(
                serde_json::json!({"name": info.name, "prefix": info.prefix, "role": info.role}),
            ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: info.id,
            key,
            prefix: info.prefix,
            role: info.role,
            name: info.name,
            created_at: info.created_at,
        }),
    ))
}

/// Revokes an API key; it stops working at once. A person's session only.
#[utoipa::path(delete, path = "/workspaces/{ws}/api-keys/{key_id}", tag = "api keys", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), ("key_id" = Uuid, Path, description = "API key id")),
    responses((status = 200, body = ApiKeyInfo), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<ApiKeyInfo>> {
    let key_id = Uuid::parse_str(&ids.1).map_err(|_| Error::NotFound("API key"))?;
    revoke(&state, access, key_id).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeApiKey {
    pub id: Uuid,
}

/// Revokes the API key named in the body (same as `DELETE …/api-keys/{key_id}`).
#[utoipa::path(delete, path = "/workspaces/{ws}/api-keys", tag = "api keys", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = RevokeApiKey,
    responses((status = 200, body = ApiKeyInfo), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_api_key_by_body(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiJson(req): ApiJson<RevokeApiKey>,
) -> ApiResult<Json<ApiKeyInfo>> {
    revoke(&state, access, req.id).await.map(Json)
}

async fn revoke(
    state: &AppState,
    access: Access<Workspace, CanAdminister>,
    key_id: Uuid,
) -> ApiResult<ApiKeyInfo> {
    let mut tx = state.db.begin().await?;
    let info = workspaces::revoke_api_key(&mut tx, access.workspace_id, key_id)
        .await?
        .ok_or(Error::NotFound("API key"))?;
    // Checked after the lookup, so another workspace's key id is 404 as everywhere; refusing
    // drops the transaction, and with it the revocation.
    let access = access.by_person()?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "api_key.revoked")
            .target("api_key", info.id)
            .details(serde_json::json!({"name": info.name, "prefix": info.prefix})),
    )
    .await?;
    tx.commit().await?;
    Ok(info)
}

/// The workspace's settings as one flat object.
#[utoipa::path(get, path = "/workspaces/{ws}/settings", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")),
    responses((status = 200, body = WorkspaceSettings), (status = 404, body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
) -> ApiResult<Json<WorkspaceSettings>> {
    Ok(Json(settings::get(&state.db, access.workspace_id).await?))
}

/// Changes the given settings; fields left out keep their value.
#[utoipa::path(put, path = "/workspaces/{ws}/settings", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = SettingsUpdate,
    responses((status = 200, body = WorkspaceSettings), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiJson(update): ApiJson<SettingsUpdate>,
) -> ApiResult<Json<WorkspaceSettings>> {
    let mut tx = state.db.begin().await?;
    let mut current = settings::get_for_update(&mut tx, access.workspace_id).await?;
    let before = current.clone();
    if let Some(require) = update.require_totp
        && require != current.require_totp
    {
        check_require_totp(&state, &access, require).await?;
    }
    current.apply(update)?;
    settings::save(&mut tx, access.workspace_id, &current).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "settings.updated")
            .target("workspace", access.workspace_id)
            .details(serde_json::json!({"before": before, "after": current})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(current))
}

/// Only an owner decides whether members must use two-factor login, and a person switching it
/// on must already use it, or they would lock themselves out.
async fn check_require_totp(
    state: &AppState,
    access: &Access<Workspace, CanAdminister>,
    require: bool,
) -> ApiResult<()> {
    if access.role != Role::Owner {
        return Err(Error::Forbidden(
            "only an owner can change whether two-factor login is required",
        )
        .into());
    }
    if require
        && let Some(user_id) = access.caller.user_id()
        && !two_factor::is_enabled(&state.db, user_id).await?
    {
        return Err(Error::Conflict(
            "switch on two-factor login for your own account first (POST /api/v1/me/totp)".into(),
        )
        .into());
    }
    Ok(())
}

/// Security-relevant actions in this workspace, newest first. Read-only.
#[utoipa::path(get, path = "/workspaces/{ws}/audit-log", tag = "workspaces", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), PageParams),
    responses((status = 200, body = Page<AuditRecord>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn audit_log_list(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    Ok(Json(
        audit_log::list(&state.db, access.workspace_id, &page).await?,
    ))
}
