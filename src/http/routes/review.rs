//! Review and push: the proposal list, decisions (one or in bulk), and pushes (or their dry runs).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::settings;
use crate::audit_log::{self, Entry};
use crate::auth::{Access, CanRead, CanReview};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::edits::{ContentEdit, MediaLabelEdit, NOTE_MAX_CHARS};
use crate::catalog::products;
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::jobs::{self, JobKind, NewJob};
use crate::pagination::{Page, PageParams};
use crate::push::{self, DryRunItem, PushParams};
use crate::review::{self, Decision, Proposal, ProposalFilter, ProposalResponse};
use crate::state::AppState;
use crate::stores::{self, Store, StoreStatus};

/// Most proposals one bulk decision or push may name.
const MAX_BULK: i64 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_proposals))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(approve_many))
        .routes(routes!(reject_many))
        .routes(routes!(start_push))
}

/// A store's proposals in a review state, each with its changes against what is live.
#[utoipa::path(get, path = "/stores/{id}/proposals", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id"), ProposalFilter, PageParams),
    responses((status = 200, body = Page<ProposalResponse>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_proposals(
    State(state): State<AppState>,
    access: Access<Store, CanRead>,
    ApiQuery(filter): ApiQuery<ProposalFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ProposalResponse>>> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let query = filter.parse(&store)?;
    Ok(Json(review::list(&state.db, &store, &query, &page).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub comment: Option<String>,
    /// The reviewer's own changes on top of the proposal (`null` clears a field; in a store
    /// view, uses the default value): the result is what gets approved, attributed to them.
    pub fields: Option<BTreeMap<String, Option<String>>>,
    pub media: Option<Vec<MediaLabelEdit>>,
    /// A store view's `name` (or another of Magento's product fields) set back to the default
    /// cannot become "Use Default Value" again over Magento's REST API; `true` approves
    /// writing the default value as the view's own value instead (it then no longer follows
    /// the default). Without it such an approval is refused.
    #[serde(default)]
    pub explicit_default_values: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    /// The decided version: the proposal itself, or the reviewer's edited version of it.
    pub id: Uuid,
    pub state: String,
}

fn check_comment(comment: Option<String>) -> ApiResult<Option<String>> {
    let comment = comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > NOTE_MAX_CHARS)
    {
        return Err(Error::invalid(
            "comment",
            format!("a comment is at most {NOTE_MAX_CHARS} characters"),
        )
        .into());
    }
    Ok(comment)
}

/// Approves a proposal, optionally with the reviewer's own changes.
#[utoipa::path(post, path = "/proposals/{id}/approve", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "proposal (version) id")), request_body = ApproveRequest,
    responses((status = 200, body = Decided), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    access: Access<Proposal, CanReview>,
    body: Option<ApiJson<ApproveRequest>>,
) -> ApiResult<Json<Decided>> {
    let request = body.map(|ApiJson(b)| b).unwrap_or_default();
    let comment = check_comment(request.comment)?;
    let edited = match (request.fields, request.media) {
        (None, None) => None,
        (fields, media) => Some(
            reviewer_edit(
                &state,
                access.workspace_id,
                access.id,
                fields.unwrap_or_default(),
                media.unwrap_or_default(),
            )
            .await?,
        ),
    };
    let settings = settings::get(&state.db, access.workspace_id).await?;
    let mut tx = state.db.begin().await?;
    let id = review::decide(
        &mut tx,
        &access.caller,
        review::DecisionInput {
            workspace_id: access.workspace_id,
            settings: &settings,
            id: access.id,
            decision: Decision::Approve,
            comment: comment.as_deref(),
            edited,
            explicit_default_values: request.explicit_default_values,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Decided {
        id,
        state: "approved".into(),
    }))
}

/// The proposal's content with a reviewer's changes applied, stored as its scope stores it.
async fn reviewer_edit(
    state: &AppState,
    workspace_id: Uuid,
    id: Uuid,
    fields: BTreeMap<String, Option<String>>,
    media: Vec<MediaLabelEdit>,
) -> ApiResult<Content> {
    type Row = (
        Uuid,
        String,
        sqlx::types::Json<Content>,
        Option<sqlx::types::Json<Content>>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT p.store_id, v.store_view, v.content, dv.content
             FROM product_versions v JOIN products p ON p.id = v.product_id
             LEFT JOIN product_live dl ON dl.product_id = v.product_id AND dl.store_view = 'all'
             LEFT JOIN product_versions dv ON dv.id = dl.version_id
             WHERE v.id = $1 AND v.workspace_id = $2",
    )
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&state.db)
    .await?;
    let (store_id, scope, content, default) = row.ok_or(Error::NotFound("proposal"))?;
    let store = stores::get_in(&state.db, workspace_id, store_id).await?;
    let edit = ContentEdit::parse(&scope, fields, media, |f| {
        products::is_content_field(&store, f)
    })?;
    let default = default.map(|d| d.0).unwrap_or_default();
    // A proposal of the default scope is the default's content from now on.
    let default = if scope == DEFAULT_SCOPE {
        content.0.clone()
    } else {
        default
    };
    Ok(edit.apply(&scope, &default, &content.0)?)
}

/// Rejects a proposal (also an approved, conflicting or failed one).
#[utoipa::path(post, path = "/proposals/{id}/reject", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "proposal (version) id")), request_body = RejectRequest,
    responses((status = 200, body = Decided), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn reject(
    State(state): State<AppState>,
    access: Access<Proposal, CanReview>,
    body: Option<ApiJson<RejectRequest>>,
) -> ApiResult<Json<Decided>> {
    let request = body.map(|ApiJson(b)| b).unwrap_or_default();
    let comment = check_comment(request.comment)?;
    let settings = settings::get(&state.db, access.workspace_id).await?;
    let mut tx = state.db.begin().await?;
    let id = review::decide(
        &mut tx,
        &access.caller,
        review::DecisionInput {
            workspace_id: access.workspace_id,
            settings: &settings,
            id: access.id,
            decision: Decision::Reject,
            comment: comment.as_deref(),
            edited: None,
            explicit_default_values: false,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Decided {
        id,
        state: "rejected".into(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDecision {
    /// These proposals…
    pub ids: Option<Vec<Uuid>>,
    /// …or every proposal the filter matches (as in the proposal list; state `proposed`
    /// unless given).
    pub filter: Option<ProposalFilter>,
    pub comment: Option<String>,
    /// As in a single approval: store views' product fields set back to the default are
    /// written as the default value.
    #[serde(default)]
    pub explicit_default_values: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Skipped {
    pub id: Uuid,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDecided {
    pub decided: Vec<Uuid>,
    /// Proposals left as they were, and why (not pending, four-eyes, not in this store, a
    /// store-view change Magento cannot carry out).
    pub skipped: Vec<Skipped>,
}

/// Approves many proposals of the store at once; each is decided on its own.
#[utoipa::path(post, path = "/stores/{id}/proposals/approve", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = BulkDecision,
    responses((status = 200, body = BulkDecided), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn approve_many(
    State(state): State<AppState>,
    access: Access<Store, CanReview>,
    ApiJson(request): ApiJson<BulkDecision>,
) -> ApiResult<Json<BulkDecided>> {
    decide_many(&state, &access, request, Decision::Approve).await
}

/// Rejects many proposals of the store at once.
#[utoipa::path(post, path = "/stores/{id}/proposals/reject", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = BulkDecision,
    responses((status = 200, body = BulkDecided), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn reject_many(
    State(state): State<AppState>,
    access: Access<Store, CanReview>,
    ApiJson(request): ApiJson<BulkDecision>,
) -> ApiResult<Json<BulkDecided>> {
    decide_many(&state, &access, request, Decision::Reject).await
}

async fn decide_many(
    state: &AppState,
    access: &Access<Store, CanReview>,
    request: BulkDecision,
    decision: Decision,
) -> ApiResult<Json<BulkDecided>> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let comment = check_comment(request.comment)?;
    let ids = match (request.ids, request.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() as i64 > MAX_BULK {
                return Err(Error::invalid(
                    "ids",
                    format!("ids must name between 1 and {MAX_BULK} proposals"),
                )
                .into());
            }
            ids
        }
        (None, Some(filter)) => {
            let query = filter.parse(&store)?;
            review::ids_matching(&state.db, &store, &query, MAX_BULK).await?
        }
        _ => {
            return Err(
                Error::invalid("ids", "give either ids or filter, not both or neither").into(),
            );
        }
    };
    let in_store: Vec<Uuid> = sqlx::query_scalar(
        "SELECT v.id FROM product_versions v JOIN products p ON p.id = v.product_id
         WHERE v.id = ANY($1) AND p.store_id = $2 AND v.workspace_id = $3",
    )
    .bind(&ids)
    .bind(store.id)
    .bind(store.workspace_id)
    .fetch_all(&state.db)
    .await?;
    let settings = settings::get(&state.db, access.workspace_id).await?;
    let mut decided = Vec::new();
    let mut skipped = Vec::new();
    for id in ids {
        if !in_store.contains(&id) {
            skipped.push(Skipped {
                id,
                reason: "not a proposal of this store".into(),
            });
            continue;
        }
        let mut tx = state.db.begin().await?;
        match review::decide(
            &mut tx,
            &access.caller,
            review::DecisionInput {
                workspace_id: access.workspace_id,
                settings: &settings,
                id,
                decision,
                comment: comment.as_deref(),
                edited: None,
                explicit_default_values: request.explicit_default_values,
            },
        )
        .await
        {
            Ok(id) => {
                tx.commit().await?;
                decided.push(id);
            }
            Err(
                e @ (Error::Conflict(_)
                | Error::Forbidden(_)
                | Error::NotFound(_)
                | Error::Invalid { .. }),
            ) => {
                skipped.push(Skipped {
                    id,
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(BulkDecided { decided, skipped }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// These approved (or failed, to retry them) proposals…
    pub proposals: Option<Vec<Uuid>>,
    /// …or every approved proposal of the store.
    #[serde(default)]
    pub all_approved: bool,
    /// Answer with the exact requests the push would send, and send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushStarted {
    pub job_id: Uuid,
    pub proposals: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRun {
    pub dry_run: bool,
    pub items: Vec<DryRunItem>,
}

/// Pushes approved proposals to the store (202 with a job), or shows what a push would send
/// (`dry_run`, 200).
#[utoipa::path(post, path = "/stores/{id}/push", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = PushRequest,
    responses((status = 202, body = PushStarted), (status = 200, body = DryRun), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_push(
    State(state): State<AppState>,
    access: Access<Store, CanReview>,
    ApiJson(request): ApiJson<PushRequest>,
) -> ApiResult<Response> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    if store.status != StoreStatus::Active {
        return Err(Error::Conflict(
            "the store is not connected; connect it before pushing".into(),
        )
        .into());
    }
    let ids: Vec<Uuid> = match (request.proposals, request.all_approved) {
        (Some(ids), false) => {
            if ids.is_empty() || ids.len() as i64 > MAX_BULK {
                return Err(Error::invalid(
                    "proposals",
                    format!("proposals must name between 1 and {MAX_BULK} proposals"),
                )
                .into());
            }
            let found: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT v.id, v.state FROM product_versions v JOIN products p ON p.id = v.product_id
                 WHERE v.id = ANY($1) AND p.store_id = $2 AND v.workspace_id = $3",
            )
            .bind(&ids)
            .bind(store.id)
            .bind(store.workspace_id)
            .fetch_all(&state.db)
            .await?;
            for id in &ids {
                match found.iter().find(|(f, _)| f == id) {
                    None => {
                        return Err(Error::invalid(
                            "proposals",
                            format!("{id} is not a proposal of this store"),
                        )
                        .into());
                    }
                    Some((_, s)) if s != "approved" && s != "failed" => {
                        return Err(Error::invalid(
                            "proposals",
                            format!("{id} is {s}: only approved (or failed) proposals are pushed"),
                        )
                        .into());
                    }
                    Some(_) => {}
                }
            }
            ids
        }
        (None, true) => {
            sqlx::query_scalar(
                "SELECT v.id FROM product_versions v JOIN products p ON p.id = v.product_id
             WHERE p.store_id = $1 AND v.workspace_id = $2 AND v.state = 'approved' LIMIT $3",
            )
            .bind(store.id)
            .bind(store.workspace_id)
            .bind(MAX_BULK)
            .fetch_all(&state.db)
            .await?
        }
        _ => {
            return Err(
                Error::invalid("proposals", "give either proposals or all_approved: true").into(),
            );
        }
    };
    if ids.is_empty() {
        return Err(Error::NoChange("there are no approved proposals to push").into());
    }
    if request.dry_run {
        let connector =
            push::connector_of(&state, &store).map_err(|e| Error::Conflict(e.to_string()))?;
        let items = push::dry_run(&state.db, &store, &connector, &ids)
            .await
            .map_err(|e| match e {
                crate::jobs::context::JobError::Fatal(m) => Error::Conflict(m),
                crate::jobs::context::JobError::Transient(m) => {
                    Error::Conflict(format!("the dry run could not finish: {m}"))
                }
            })?;
        return Ok(Json(DryRun {
            dry_run: true,
            items,
        })
        .into_response());
    }
    let ordered = push::order(&state.db, &ids).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("SELECT id FROM stores WHERE id = $1 FOR UPDATE")
        .bind(store.id)
        .execute(&mut *tx)
        .await?;
    if let Some(running) = jobs::active_for_store(&mut tx, store.id, JobKind::Push).await? {
        return Err(Error::Conflict(format!(
            "a push of this store is already queued or running (job {running})"
        ))
        .into());
    }
    let count = ordered.len();
    let job_id = jobs::enqueue(
        &mut tx,
        NewJob {
            workspace_id: store.workspace_id,
            store_id: Some(store.id),
            kind: JobKind::Push,
            params: serde_json::to_value(PushParams { proposals: ordered })
                .map_err(anyhow::Error::from)?,
            created_by: access.caller.user_id(),
            created_by_api_key: access.caller.api_key_id(),
            schedule_tick: None,
        },
    )
    .await?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "store.push_started")
            .target("store", store.id)
            .details(serde_json::json!({"job_id": job_id, "proposals": count})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PushStarted {
            job_id,
            proposals: count,
        }),
    )
        .into_response())
}
