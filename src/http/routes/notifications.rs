//! Notification preferences per person and workspace, the signed unsubscribe link, a person's
//! notices, and what needs attention in a workspace.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::caller::Workspace;
use crate::auth::{Access, CanRead};
use crate::error::Error;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::notify::EventKind;
use crate::notify::attention::{self, Attention};
use crate::notify::notices::{self, Notice};
use crate::notify::preferences::{self, Choice, Preference};
use crate::notify::unsubscribe;
use crate::pagination::PageParams;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(unsubscribe_one_click))
        .routes(routes!(list_notices))
        .routes(routes!(mark_read))
        .routes(routes!(attention))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Preferences {
    /// One entry per event kind.
    pub preferences: Vec<Preference>,
}

/// The caller's mail settings in the workspace: for each event kind, mail on or off and (for
/// `review.ready`) a daily digest instead of one mail per run. Until a person chooses, their
/// role's default applies (`default_email`).
#[utoipa::path(get, path = "/workspaces/{ws}/notification-preferences", tag = "notifications",
    security(("bearer" = [])), params(("ws" = Uuid, Path, description = "workspace id")),
    responses((status = 200, body = Preferences), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_preferences(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
) -> ApiResult<Json<Preferences>> {
    let user_id = access.caller.require_user()?;
    Ok(Json(Preferences {
        preferences: preferences::effective(&state.db, user_id, access.workspace_id, access.role)
            .await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePreferences {
    /// The kinds to change; kinds left out keep their setting.
    pub preferences: Vec<Choice>,
}

/// Changes the caller's mail settings for the kinds named.
#[utoipa::path(put, path = "/workspaces/{ws}/notification-preferences", tag = "notifications",
    security(("bearer" = [])), params(("ws" = Uuid, Path, description = "workspace id")),
    request_body = UpdatePreferences,
    responses((status = 200, body = Preferences), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_preferences(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiJson(req): ApiJson<UpdatePreferences>,
) -> ApiResult<Json<Preferences>> {
    let user_id = access.caller.require_user()?;
    let mut choices = Vec::new();
    for choice in req.preferences {
        let kind = EventKind::parse(choice.kind.trim()).ok_or_else(|| {
            Error::invalid(
                "preferences",
                format!(
                    "{:?} is not an event kind; known kinds: {}",
                    choice.kind,
                    crate::webhooks::EVENT_TYPES.join(", ")
                ),
            )
        })?;
        if choice.digest && kind != EventKind::ReviewReady {
            return Err(Error::invalid(
                "preferences",
                format!(
                    "a daily digest is offered for review.ready only, not {}",
                    kind.as_str()
                ),
            )
            .into());
        }
        choices.retain(|(k, _, _)| *k != kind);
        choices.push((kind, choice.email, choice.digest));
    }
    let mut tx = state.db.begin().await?;
    preferences::save(&mut tx, user_id, access.workspace_id, &choices).await?;
    tx.commit().await?;
    Ok(Json(Preferences {
        preferences: preferences::effective(&state.db, user_id, access.workspace_id, access.role)
            .await?,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeQuery {
    /// The token of the mailed link.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct Unsubscribed {
    pub workspace_id: Uuid,
    /// The event kind whose mail is now off.
    pub kind: EventKind,
    pub email: bool,
}

/// Turns off the mail a signed link names, without signing in: the target of every message's
/// `List-Unsubscribe` header (RFC 8058 one-click; the body is ignored).
#[utoipa::path(post, path = "/notifications/unsubscribe", tag = "notifications",
    params(UnsubscribeQuery),
    responses((status = 200, body = Unsubscribed), (status = 400, body = ErrorBody)))]
async fn unsubscribe_one_click(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UnsubscribeQuery>,
) -> ApiResult<Json<Unsubscribed>> {
    let subscription = apply(&state, &query.token).await?;
    Ok(Json(Unsubscribed {
        workspace_id: subscription.workspace_id,
        kind: subscription.kind,
        email: false,
    }))
}

/// Checks the token and turns the mail off; the same for the page behind the link.
pub async fn apply(state: &AppState, token: &str) -> Result<unsubscribe::Subscription, ApiError> {
    let subscription = unsubscribe::verify(&state.keys, token).ok_or_else(|| {
        Error::Malformed("this unsubscribe link is not valid (it may have been cut short)".into())
    })?;
    let mut tx = state.db.begin().await?;
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1 AND workspace_id = $2)",
    )
    .bind(subscription.user_id)
    .bind(subscription.workspace_id)
    .fetch_one(&mut *tx)
    .await?;
    // Someone who left the workspace gets none of its mail anyway.
    if member {
        preferences::unsubscribe(
            &mut tx,
            subscription.user_id,
            subscription.workspace_id,
            subscription.kind,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(subscription)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoticeQuery {
    /// Only unread notices.
    #[serde(default)]
    pub unread: bool,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct NoticeList {
    pub items: Vec<Notice>,
    pub next_cursor: Option<String>,
    /// The caller's unread notices in the workspace (all pages).
    pub unread_count: i64,
}

/// The caller's notices in the workspace (the header's list), newest first.
#[utoipa::path(get, path = "/workspaces/{ws}/notifications", tag = "notifications",
    security(("bearer" = [])), params(("ws" = Uuid, Path, description = "workspace id"), NoticeQuery),
    responses((status = 200, body = NoticeList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_notices(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiQuery(query): ApiQuery<NoticeQuery>,
) -> ApiResult<Json<NoticeList>> {
    let user_id = access.caller.require_user()?;
    let page = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    };
    let base = state.settings.public_base_url();
    let listed = notices::list(
        &state.db,
        &base,
        user_id,
        access.workspace_id,
        query.unread,
        &page,
    )
    .await?;
    Ok(Json(NoticeList {
        items: listed.items,
        next_cursor: listed.next_cursor,
        unread_count: notices::unread_count(&state.db, user_id, access.workspace_id).await?,
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The notices to mark read (their `event_id`); left out: every notice of the workspace.
    pub event_ids: Option<Vec<Uuid>>,
}

#[derive(Serialize, ToSchema)]
pub struct MarkedRead {
    pub marked: u64,
    pub unread_count: i64,
}

/// Marks notices read.
#[utoipa::path(post, path = "/workspaces/{ws}/notifications/read", tag = "notifications",
    security(("bearer" = [])), params(("ws" = Uuid, Path, description = "workspace id")),
    request_body = MarkRead,
    responses((status = 200, body = MarkedRead), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn mark_read(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiJson(req): ApiJson<MarkRead>,
) -> ApiResult<Json<MarkedRead>> {
    let user_id = access.caller.require_user()?;
    if req.event_ids.as_ref().is_some_and(|ids| ids.len() > 500) {
        return Err(Error::invalid("event_ids", "at most 500 notices at once").into());
    }
    let marked = notices::mark_read(
        &state.db,
        user_id,
        access.workspace_id,
        req.event_ids.as_deref(),
    )
    .await?;
    Ok(Json(MarkedRead {
        marked,
        unread_count: notices::unread_count(&state.db, user_id, access.workspace_id).await?,
    }))
}

/// What needs attention in the workspace: proposals waiting by store with the oldest's age,
/// jobs failed in the last day, stores needing reauthorisation or a permission, the last and
/// next scheduled run per store with its summary, and the AI budget left today.
#[utoipa::path(get, path = "/workspaces/{ws}/attention", tag = "notifications",
    security(("bearer" = [])), params(("ws" = Uuid, Path, description = "workspace id")),
    responses((status = 200, body = Attention), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn attention(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
) -> ApiResult<Json<Attention>> {
    Ok(Json(
        attention::of_workspace(&state.db, access.workspace_id).await?,
    ))
}
