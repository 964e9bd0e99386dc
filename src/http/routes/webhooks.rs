//! Webhook endpoints and their deliveries. Admins only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit_log::{self, Entry};
use crate::auth::caller::Workspace;
use crate::auth::{Access, CanAdminister};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::webhooks::{self, Delivery, NewWebhook, Webhook};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// Event types to deliver: `review.ready`, `pipeline.finished`, `job.failed`,
    /// `store.needs_reauth`, `store.permission_missing`, `export.ready`, `budget.reached`,
    /// `member.invited`.
    pub events: Vec<String>,
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_…`). Shown only in this answer: store it now.
    pub secret: String,
}

/// The workspace's webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/workspaces/{ws}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), PageParams),
    responses((status = 200, body = Page<Webhook>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Webhook>>> {
    Ok(Json(
        webhooks::list(&state.db, access.workspace_id, &page).await?,
    ))
}

/// Registers an endpoint. Deliveries are signed the Standard Webhooks way with the secret in
/// the answer (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`).
#[utoipa::path(post, path = "/workspaces/{ws}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let new = NewWebhook {
        workspace_id: access.workspace_id,
        url: webhooks::parse_url(&state.egress, &req.url)?,
        events: webhooks::parse_events(req.events)?,
        description: webhooks::parse_description(req.description)?,
        created_by: access.caller.user_id(),
    };
    let mut tx = state.db.begin().await?;
    let (webhook, secret) = webhooks::create(&mut tx, &state.keyring, new).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "webhook.created")
            .target("webhook", webhook.id)
            .details(serde_json::json!({"url": webhook.url, "events": webhook.events})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook { webhook, secret }),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 200, body = Webhook), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    access: Access<Webhook, CanAdminister>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        webhooks::get(&state.db, access.workspace_id, access.id).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `false` stops deliveries (waiting ones are given up); `true` resumes them.
    pub enabled: Option<bool>,
}

/// Changes the given fields; fields left out keep their value.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id")), request_body = UpdateWebhook,
    responses((status = 200, body = Webhook), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    access: Access<Webhook, CanAdminister>,
    ApiJson(req): ApiJson<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    let url = req
        .url
        .map(|url| webhooks::parse_url(&state.egress, &url))
        .transpose()?;
    let events = req.events.map(webhooks::parse_events).transpose()?;
    let description = req
        .description
        .map(|d| webhooks::parse_description(Some(d)))
        .transpose()?;
    let mut tx = state.db.begin().await?;
    let before = webhooks::get_for_update(&mut tx, access.workspace_id, access.id).await?;
    let mut after = before.clone();
    if let Some(url) = url {
        after.url = url;
    }
    if let Some(events) = events {
        after.events = events;
    }
    if let Some(description) = description {
        after.description = description;
    }
    if let Some(enabled) = req.enabled {
        if enabled != after.enabled {
            after.disabled_reason = (!enabled).then(|| "disabled by an admin".to_string());
        }
        after.enabled = enabled;
    }
    let saved = webhooks::save(&mut tx, access.workspace_id, &after).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "webhook.updated")
            .target("webhook", saved.id)
            .details(serde_json::json!({
                "before": {"url": before.url, "events": before.events, "enabled": before.enabled},
                "after": {"url": saved.url, "events": saved.events, "enabled": saved.enabled},
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(saved))
}

/// Deletes the endpoint and its delivery history; nothing more is sent to it.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    access: Access<Webhook, CanAdminister>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let webhook = webhooks::get_for_update(&mut tx, access.workspace_id, access.id).await?;
    webhooks::delete(&mut tx, access.workspace_id, access.id).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "webhook.deleted")
            .target("webhook", webhook.id)
            .details(serde_json::json!({"url": webhook.url})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's deliveries, newest first, each with every attempt: its outcome, duration,
/// the endpoint's status code and the first KiB of its answer.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id"), PageParams),
    responses((status = 200, body = Page<Delivery>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    access: Access<Webhook, CanAdminister>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Delivery>>> {
    Ok(Json(
        webhooks::deliveries(&state.db, access.id, &page).await?,
    ))
}

/// Sends a delivery again at once, with the same `webhook-id` and body (one attempt; a failure
/// is not retried). Refused while the endpoint is disabled.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id"), ("delivery" = Uuid, Path, description = "delivery id")),
    responses((status = 202, body = Delivery), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn redeliver(
    State(state): State<AppState>,
    access: Access<Webhook, CanAdminister>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let delivery_id = Uuid::parse_str(&ids.1).map_err(|_| Error::NotFound("delivery"))?;
    let mut tx = state.db.begin().await?;
    let webhook = webhooks::get_for_update(&mut tx, access.workspace_id, access.id).await?;
    webhooks::redeliver(&mut tx, &webhook, delivery_id).await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "webhook.redelivered")
            .target("webhook", webhook.id)
            .details(serde_json::json!({"delivery_id": delivery_id})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(webhooks::delivery(&state.db, webhook.id, delivery_id).await?),
    ))
}
