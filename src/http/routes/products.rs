//! Products and their versions: list, detail, history, diff, human edits and rollbacks.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Access, CanEdit, CanRead};
use crate::catalog::content::{Content, DEFAULT_SCOPE};
use crate::catalog::diff::{self, FieldChange, MediaChange};
use crate::catalog::edits::{self, ContentEdit, MediaLabelEdit, NOTE_MAX_CHARS};
use crate::catalog::products::{self, Product, ProductFilter, ProductSummary};
use crate::catalog::versions::{
    self, Author, NewProposal, Version, VersionOrigin, VersionState, effective,
};
use crate::error::Error;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::media;
use crate::pagination::{Page, PageParams};
use crate::push::scope_check::{self, ViewChange};
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::stores::{self, Store};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(list_versions, create_version))
        .routes(routes!(diff_versions))
        .routes(routes!(rollback))
}

/// A store's products in SKU order, searched and filtered.
#[utoipa::path(get, path = "/stores/{id}/products", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id"), ProductFilter, PageParams),
    responses((status = 200, body = Page<ProductSummary>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list_products(
    State(state): State<AppState>,
    access: Access<Store, CanRead>,
    ApiQuery(filter): ApiQuery<ProductFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ProductSummary>>> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    let query = filter.parse(&store)?;
    let page = products::list(&state.db, access.workspace_id, store.id, &query, &page).await?;
    Ok(Json(page))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductDetail {
    pub id: Uuid,
    pub store_id: Uuid,
    pub sku: String,
    /// The default-scope name.
    pub name: Option<String>,
    pub type_id: Option<String>,
    pub remote_id: Option<i64>,
    /// Non-content data as last pulled: price, status, visibility, categories, other attributes.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Odd values the store sent at the last pull.
    #[schema(value_type = Vec<String>)]
    pub warnings: serde_json::Value,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    /// `all` first, then the store's views, then any other scope that has versions.
    pub scopes: Vec<ScopeDetail>,
    /// Pictures mirrored from the store by the media step, by gallery entry.
    pub media: Vec<MirroredMedia>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MirroredMedia {
    pub entry_id: i64,
    /// The file as the gallery entry names it.
    pub file: String,
    pub bytes: i64,
    pub mime: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// A time-limited link to a PNG thumbnail (at most 256 px), when one could be made.
    pub thumbnail_url: Option<String>,
    pub thumbnail_expires_at: Option<DateTime<Utc>>,
    /// Why there is no thumbnail (a picture that does not decode).
    pub thumbnail_error: Option<String>,
}

/// The mirrored pictures of a product with fresh links to their thumbnails.
async fn mirrored_media(
    state: &AppState,
    workspace_id: Uuid,
    product_id: Uuid,
) -> ApiResult<Vec<MirroredMedia>> {
    let mut out = Vec::new();
    for m in media::of_product(&state.db, workspace_id, product_id).await? {
        let link = match m.thumbnail_key.as_deref().map(ObjectKey::parse) {
            Some(Ok(key)) => Some(
                state
                    .storage
                    .download_link(&key)
                    .await
                    .map_err(anyhow::Error::from)?,
            ),
            _ => None,
        };
        out.push(MirroredMedia {
            entry_id: m.entry_id,
            file: m.file,
            bytes: m.bytes,
            mime: m.mime,
            width: m.width,
            height: m.height,
            thumbnail_expires_at: link.as_ref().map(|l| l.expires_at),
            thumbnail_url: link.map(|l| l.url),
            thumbnail_error: m.thumbnail_error,
        });
    }
    Ok(out)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScopeDetail {
    /// `all` (default values) or a store view code.
    pub store_view: String,
    /// What the store shows now; `effective` merges a view's overrides onto the default.
    pub live: Option<Version>,
    /// The newest version waiting for review or push (proposed, approved or conflict).
    pub open_proposal: Option<Version>,
}

/// A product, its attributes, and per scope its live content and newest open proposal.
#[utoipa::path(get, path = "/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "product id")),
    responses((status = 200, body = ProductDetail), (status = 404, body = ErrorBody)))]
async fn get_product(
    State(state): State<AppState>,
    access: Access<Product, CanRead>,
) -> ApiResult<Json<ProductDetail>> {
    let product = products::get_in(&state.db, access.workspace_id, access.id).await?;
    let store = stores::get_in(&state.db, access.workspace_id, product.store_id).await?;
    let mut live = versions::live(&state.db, product.id).await?;
    let mut open: HashMap<String, Version> = versions::latest_open(&state.db, product.id)
        .await?
        .into_iter()
        .map(|v| (v.store_view.clone(), v))
        .collect();

    let default = live
        .get(DEFAULT_SCOPE)
        .map(|v| v.content.clone())
        .unwrap_or_default();
    let mut scopes: Vec<String> = std::iter::once(DEFAULT_SCOPE.to_string())
        .chain(store.store_views.0.iter().map(|v| v.code.clone()))
        .collect();
    let mut others: Vec<String> = live
        .keys()
        .chain(open.keys())
        .filter(|s| !scopes.contains(s))
        .cloned()
        .collect();
    others.sort();
    others.dedup();
    scopes.extend(others);

    let with_effective = |mut v: Version| {
        v.effective = Some(effective(&v.store_view, &default, &v.content));
        v
    };
    let scopes = scopes
        .into_iter()
        .map(|scope| ScopeDetail {
            live: live.remove(&scope).map(with_effective),
            open_proposal: open.remove(&scope).map(with_effective),
            store_view: scope,
        })
        .collect();
    let media = mirrored_media(&state, access.workspace_id, product.id).await?;
    Ok(Json(ProductDetail {
        id: product.id,
        store_id: product.store_id,
        sku: product.sku,
        name: product.name,
        type_id: product.type_id,
        remote_id: product.remote_id,
        attributes: product.attributes,
        warnings: product.warnings,
        remote_updated_at: product.remote_updated_at,
        first_seen_at: product.first_seen_at,
        removed_at: product.removed_at,
        scopes,
        media,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionFilter {
    /// Only versions of this scope: `all` or a store view code.
    pub store_view: Option<String>,
}

/// A product's versions, newest first.
#[utoipa::path(get, path = "/products/{id}/versions", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "product id"), VersionFilter, PageParams),
    responses((status = 200, body = Page<Version>), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    access: Access<Product, CanRead>,
    ApiQuery(filter): ApiQuery<VersionFilter>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Version>>> {
    let page = versions::history(&state.db, access.id, filter.store_view.as_deref(), &page).await?;
    Ok(Json(page))
}

fn default_scope() -> String {
    DEFAULT_SCOPE.to_string()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// `all` (default values, the default) or a store view code.
    #[serde(default = "default_scope")]
    pub store_view: String,
    /// New values by field; `null` clears a field (in a store view: uses the default value).
    #[serde(default)]
    pub fields: BTreeMap<String, Option<String>>,
    /// New alt texts of gallery entries.
    #[serde(default)]
    pub media: Vec<MediaLabelEdit>,
    /// Why, for the reviewer.
    pub note: Option<String>,
}

fn parse_note(note: Option<String>) -> Result<Option<String>, ApiError> {
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > NOTE_MAX_CHARS)
    {
        return Err(Error::invalid(
            "note",
            format!("a note is at most {NOTE_MAX_CHARS} characters"),
        )
        .into());
    }
    Ok(note)
}

/// Who made a proposal, for its `meta`: an API key has no user.
fn author_meta(access: &Access<Product, CanEdit>) -> serde_json::Map<String, serde_json::Value> {
    let mut meta = serde_json::Map::new();
    if let Some(key) = access.caller.api_key_id() {
        meta.insert("api_key_id".into(), key.to_string().into());
    }
    meta
}

/// Proposes a person's edit of one scope: the live content with the edits applied.
#[utoipa::path(post, path = "/products/{id}/versions", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "product id")), request_body = EditRequest,
    responses((status = 201, body = Version), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "invalid edit, or `no_change`: it equals the live content", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %access.workspace_id, product = %access.id))]
async fn create_version(
    State(state): State<AppState>,
    access: Access<Product, CanEdit>,
    ApiJson(req): ApiJson<EditRequest>,
) -> ApiResult<(StatusCode, Json<Version>)> {
    let product = products::get_in(&state.db, access.workspace_id, access.id).await?;
    let store = stores::get_in(&state.db, access.workspace_id, product.store_id).await?;
    let scope = products::check_scope(&store, &req.store_view, "store_view")?;
    let note = parse_note(req.note)?;
    let edit = ContentEdit::parse(&scope, req.fields, req.media, |f| {
        products::is_content_field(&store, f)
    })?;

    let mut tx = state.db.begin().await?;
    versions::lock_for_proposal(&mut tx, product.id).await?;
    let live = versions::live(&mut *tx, product.id).await?;
    let default = live
        .get(DEFAULT_SCOPE)
        .map(|v| v.content.clone())
        .unwrap_or_default();
    let current = live.get(&scope);
    let current_content = current.map(|v| v.content.clone()).unwrap_or_default();
    let content = edit.apply(&scope, &default, &current_content)?;
    if !edits::changes_anything(&scope, &default, &current_content, &content) {
        return Err(Error::NoChange("the edit equals the live content").into());
    }
    if scope != DEFAULT_SCOPE {
        // A global attribute has no store-view value to propose. (Setting a product field back
        // to the default is decided at approval, where the reviewer may write it explicitly.)
        let change = ViewChange {
            set: ViewChange::between(&current_content, &content).set,
            reset: Vec::new(),
        };
        let checked = scope_check::check(
            &store.store_views.0,
            &store.attribute_scopes.0,
            &scope,
            &change,
            false,
        );
        if let Some(refusal) = checked.refusal() {
            return Err(Error::invalid("fields", refusal).into());
        }
    }
    let mut version = versions::propose(
        &mut tx,
        NewProposal {
            product_id: product.id,
            workspace_id: access.workspace_id,
            store_view: &scope,
            content: &content,
            parent_id: current.map(|v| v.id),
            origin: VersionOrigin::Human,
            author: Author::of(&access.caller),
            note: note.as_deref(),
            meta: author_meta(&access).into(),
        },
    )
    .await?;
    tx.commit().await?;
    version.effective = Some(effective(&scope, &default, &version.content));
    Ok((StatusCode::CREATED, Json(version)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older version; without it, `to`'s parent (or nothing, if it has none).
    pub from: Option<Uuid>,
    /// The newer version.
    pub to: Uuid,
}

/// A version as a diff names it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionRef {
    pub id: Uuid,
    pub store_view: String,
    pub origin: VersionOrigin,
    pub state: VersionState,
    pub created_at: DateTime<Utc>,
}

impl From<&Version> for VersionRef {
    fn from(v: &Version) -> Self {
        VersionRef {
            id: v.id,
            store_view: v.store_view.clone(),
            origin: v.origin,
            state: v.state,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiffResponse {
    /// `null` when `to` has no parent: everything in it is `added`.
    pub from: Option<VersionRef>,
    pub to: VersionRef,
    /// The two contents are equal.
    pub identical: bool,
    pub fields: Vec<FieldChange>,
    pub media: Vec<MediaChange>,
}

/// What changed between two versions of this product, as stored (a store view's versions
/// hold its overrides).
#[utoipa::path(get, path = "/products/{id}/diff", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "product id"), DiffQuery),
    responses((status = 200, body = DiffResponse), (status = 404, body = ErrorBody)))]
async fn diff_versions(
    State(state): State<AppState>,
    access: Access<Product, CanRead>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> ApiResult<Json<DiffResponse>> {
    let to = versions::get_of_product(&state.db, access.id, query.to).await?;
    let from = match query.from.or(to.parent_id) {
        Some(id) => Some(versions::get_of_product(&state.db, access.id, id).await?),
        None => None,
    };
    let empty = Content::default();
    let changes = diff::diff(from.as_ref().map_or(&empty, |v| &v.content), &to.content);
    Ok(Json(DiffResponse {
        from: from.as_ref().map(VersionRef::from),
        to: VersionRef::from(&to),
        identical: changes.is_empty(),
        fields: changes.fields,
        media: changes.media,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version whose content should be live again.
    pub version_id: Uuid,
    pub note: Option<String>,
}

/// Proposes an earlier version's content again, in that version's scope.
#[utoipa::path(post, path = "/products/{id}/rollback", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "product id")), request_body = RollbackRequest,
    responses((status = 201, body = Version), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "`no_change`: that content is live already", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %access.workspace_id, product = %access.id))]
async fn rollback(
    State(state): State<AppState>,
    access: Access<Product, CanEdit>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> ApiResult<(StatusCode, Json<Version>)> {
    let product = products::get_in(&state.db, access.workspace_id, access.id).await?;
    let store = stores::get_in(&state.db, access.workspace_id, product.store_id).await?;
    let target = versions::get_of_product(&state.db, product.id, req.version_id).await?;
    let scope = products::check_scope(&store, &target.store_view, "version_id")?;
    let note = parse_note(req.note)?;

    let mut tx = state.db.begin().await?;
    versions::lock_for_proposal(&mut tx, product.id).await?;
    let live = versions::live(&mut *tx, product.id).await?;
    let default = live
        .get(DEFAULT_SCOPE)
        .map(|v| v.content.clone())
        .unwrap_or_default();
    let current = live.get(&scope);
    let current_content = current.map(|v| v.content.clone()).unwrap_or_default();
    if !edits::changes_anything(&scope, &default, &current_content, &target.content) {
        return Err(Error::NoChange("that version's content is live already").into());
    }
    let mut meta = author_meta(&access);
    meta.insert("rollback_of".into(), target.id.to_string().into());
    let mut version = versions::propose(
        &mut tx,
        NewProposal {
            product_id: product.id,
            workspace_id: access.workspace_id,
            store_view: &scope,
            content: &target.content,
            parent_id: current.map(|v| v.id),
            origin: VersionOrigin::Rollback,
            author: Author::of(&access.caller),
            note: note.as_deref(),
            meta: meta.into(),
        },
    )
    .await?;
    tx.commit().await?;
    version.effective = Some(effective(&scope, &default, &version.content));
    Ok((StatusCode::CREATED, Json(version)))
}
