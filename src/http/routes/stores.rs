//! Connecting, listing and disconnecting stores.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::email::parse_name;
use crate::audit_log::{self, Entry};
use crate::auth::caller::Workspace;
use crate::auth::{Access, CanAdminister, CanRead};
use crate::error::Error;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::stores::{
    self, NewStore, RateLimit, SignatureMethod, Store, StoreCredentials, StoreResponse, StoreStatus,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stores, create_store))
        .routes(routes!(get_store, disconnect_store, update_store))
        .routes(routes!(reauthorize_store))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStore {
    pub name: String,
    /// The store's base URL, e.g. `https://shop.example.com/` (may include `index.php/`).
    pub base_url: String,
    /// The four values Magento shows after "Activate" on an integration without a callback URL.
    /// Without them the store is `pending` until Magento's integration handshake completes.
    pub credentials: Option<Credentials>,
    pub signature_method: Option<SignatureMethod>,
    pub rate_limit: Option<RateLimit>,
    /// Attribute codes beyond name, descriptions, meta fields and url_key that are editable
    /// content (synced into versions, open to enrichment and review), e.g. `["material"]`.
    pub content_attributes: Option<Vec<String>>,
    /// Push through Magento's asynchronous bulk API (for large pushes).
    #[serde(default)]
    pub push_via_bulk: bool,
    /// The most product saves one bulk carries (1–5,000; 500 when left out).
    pub bulk_max_items: Option<u32>,
}

fn parse_bulk_max_items(items: u32) -> Result<u32, ApiError> {
    if stores::BULK_MAX_ITEMS.contains(&items) {
        Ok(items)
    } else {
        Err(Error::invalid(
            "bulk_max_items",
            format!(
                "bulk_max_items must be between {} and {}",
                stores::BULK_MAX_ITEMS.start(),
                stores::BULK_MAX_ITEMS.end()
            ),
        )
        .into())
    }
}

/// Parses a store base URL: absolute http(s), no query or fragment, with a trailing slash.
fn parse_base_url(raw: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| Error::invalid("base_url", format!("base_url {why}"));
    let mut url = url::Url::parse(raw.trim()).map_err(|_| invalid("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an http or https URL").into());
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid("must not contain a query, fragment or user info").into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url.to_string())
}

/// Refuses a store whose address the egress policy refuses, now rather than at its first
/// request. Only what needs no lookup (an address, `localhost`): a name is checked on what it
/// resolves to when the store is first reached — discovery below, or the token exchange —
/// and on every connection after.
fn check_egress(egress: &egress::Policy, base_url: &str) -> Result<(), ApiError> {
    let url = url::Url::parse(base_url)
        .map_err(|_| Error::invalid("base_url", "base_url is not a URL"))?;
    egress
        .check_url(&url)
        .map_err(|refusal| refused("base_url", &refusal))
}

fn refused(field: &'static str, refusal: &egress::Refusal) -> ApiError {
    Error::invalid(field, format!("{field} is refused: {refusal}")).into()
}

/// Attribute codes as Magento allows them: lowercase letters, digits and `_`, starting with a letter.
fn parse_content_attributes(codes: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for code in codes {
        let valid = code.len() <= 60
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::invalid(
                "content_attributes",
                format!("{code:?} is not an attribute code (lowercase letters, digits and _)"),
            )
            .into());
        }
        if crate::catalog::content::STANDARD_FIELDS.contains(&code.as_str()) {
            continue;
        }
        if crate::connector::magento::is_interface_attribute(&code) {
            return Err(Error::invalid(
                "content_attributes",
                format!(
                    "{code:?} is one of Magento's product fields, not a custom attribute: it cannot be content"
                ),
            ).into());
        }
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(out)
}

fn parse_credential(field: &'static str, value: String) -> Result<String, ApiError> {
    let value = value.trim().to_string();
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            format!("credentials.{field}"),
            format!("credentials.{field} must be the value Magento shows (letters and digits)"),
        )
        .into());
    }
    Ok(value)
}

/// Connects a store. With credentials they are verified with one signed call and the store is
/// `active`; without, it is `pending` and the answer carries the URLs for Magento's integration form.
#[utoipa::path(post, path = "/workspaces/{ws}/stores", tag = "stores", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id")), request_body = CreateStore,
    responses((status = 201, body = StoreResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_store(
    State(state): State<AppState>,
    access: Access<Workspace, CanAdminister>,
    ApiJson(req): ApiJson<CreateStore>,
) -> ApiResult<(StatusCode, Json<StoreResponse>)> {
    let name = parse_name("name", &req.name)?;
    let base_url = parse_base_url(&req.base_url)?;
    check_egress(&state.egress, &base_url)?;
    let signature_method = req.signature_method.unwrap_or_default();
    let rate_limit = req.rate_limit.unwrap_or_default().validate()?;
    let content_attributes = parse_content_attributes(req.content_attributes.unwrap_or_default())?;
    let bulk_max_items = req.bulk_max_items.map(parse_bulk_max_items).transpose()?;
    let id = Uuid::now_v7();

    let credentials = req
        .credentials
        .map(|c| -> Result<StoreCredentials, ApiError> {
            Ok(StoreCredentials {
                consumer_key: parse_credential("consumer_key", c.consumer_key)?,
                consumer_secret: parse_credential("consumer_secret", c.consumer_secret)?,
                access_token: parse_credential("access_token", c.access_token)?,
                access_token_secret: parse_credential(
                    "access_token_secret",
                    c.access_token_secret,
                )?,
            })
        })
        .transpose()?;

    let (status, sealed, store_views, signature_form) = match &credentials {
        Some(creds) => {
            let (views, form) = stores::magento::discover_with_form(
                &state.egress,
                &base_url,
                creds,
                signature_method,
                rate_limit,
            )
            .await
            .map_err(|e| match e {
                magento::MagentoError::Refused(refusal) => refused("base_url", &refusal),
                e => Error::invalid(
                    "credentials",
                    format!("the store did not accept these credentials: {e}"),
                )
                .into(),
            })?;
            (
                StoreStatus::Active,
                Some(
                    state
                        .keyring
                        .seal_json(creds, &stores::credentials_context(id)),
                ),
                views,
                form,
            )
        }
        None => (StoreStatus::Pending, None, Vec::new(), None),
    };
    let (token, token_hash) = stores::new_link_token();
    let link_token = state
        .keyring
        .seal(token.as_bytes(), &stores::link_token_context(id));

    let mut tx = state.db.begin().await?;
    let store = stores::insert(
        &mut tx,
        NewStore {
            id,
            workspace_id: access.workspace_id,
            name: &name,
            base_url: &base_url,
            status,
            signature_method,
            credentials: sealed,
            link_token_hash: token_hash,
            link_token,
            callback_armed: status == StoreStatus::Pending,
            store_views,
            rate_limit,
            content_attributes,
            created_by: access.caller.user_id(),
            signature_form,
        },
    )
    .await?;
    let store = if req.push_via_bulk {
        stores::set_push_via_bulk(&mut tx, store.id, true).await?
    } else {
        store
    };
    let store = match bulk_max_items {
        Some(items) => stores::set_bulk_max_items(&mut tx, store.id, items).await?,
        None => store,
    };
    let action = if status == StoreStatus::Active {
        "store.connected"
    } else {
        "store.created"
    };
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, action)
            .target("store", id)
            .details(serde_json::json!({"name": name, "base_url": base_url})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(StoreResponse::new(
            store,
            &state.keyring,
            &state.settings.public_base_url(),
            access.role,
        )?),
    ))
}

/// The workspace's stores.
#[utoipa::path(get, path = "/workspaces/{ws}/stores", tag = "stores", security(("bearer" = [])),
    params(("ws" = Uuid, Path, description = "workspace id"), PageParams),
    responses((status = 200, body = Page<StoreResponse>), (status = 404, body = ErrorBody)))]
async fn list_stores(
    State(state): State<AppState>,
    access: Access<Workspace, CanRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<StoreResponse>>> {
    let page = stores::list(&state.db, access.workspace_id, &page).await?;
    let public_url = state.settings.public_base_url();
    let items = page
        .items
        .into_iter()
        .map(|s| StoreResponse::new(s, &state.keyring, &public_url, access.role))
        .collect::<Result<_, _>>()?;
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// One store: status, discovered store views, rate limits. Never its secrets.
#[utoipa::path(get, path = "/stores/{id}", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")),
    responses((status = 200, body = StoreResponse), (status = 404, body = ErrorBody)))]
async fn get_store(
    State(state): State<AppState>,
    access: Access<Store, CanRead>,
) -> ApiResult<Json<StoreResponse>> {
    let store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    Ok(Json(StoreResponse::new(
        store,
        &state.keyring,
        &state.settings.public_base_url(),
        access.role,
    )?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStore {
    /// Push through Magento's asynchronous bulk API.
    pub push_via_bulk: Option<bool>,
    /// A pipeline's `sync` step reads every product when the last full sync is older than this
    /// many days (1–365).
    pub full_sync_every_days: Option<u32>,
    /// The most product saves one bulk carries (1–5,000).
    pub bulk_max_items: Option<u32>,
}

/// Changes the store's settings; fields left out keep their value.
#[utoipa::path(patch, path = "/stores/{id}", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")), request_body = UpdateStore,
    responses((status = 200, body = StoreResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_store(
    State(state): State<AppState>,
    access: Access<Store, CanAdminister>,
    ApiJson(req): ApiJson<UpdateStore>,
) -> ApiResult<Json<StoreResponse>> {
    let full_sync_every_days = req
        .full_sync_every_days
        .map(|days| {
            i32::try_from(days)
                .ok()
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| {
                    Error::invalid(
                        "full_sync_every_days",
                        "full_sync_every_days must be between 1 and 365",
                    )
                })
        })
        .transpose()?;
    let bulk_max_items = req.bulk_max_items.map(parse_bulk_max_items).transpose()?;
    let mut tx = state.db.begin().await?;
    let mut store = stores::get_in(&state.db, access.workspace_id, access.id).await?;
    if let Some(on) = req.push_via_bulk {
        store = stores::set_push_via_bulk(&mut tx, store.id, on).await?;
    }
    if let Some(days) = full_sync_every_days {
        store = stores::set_full_sync_every_days(&mut tx, store.id, days).await?;
    }
    if let Some(items) = bulk_max_items {
        store = stores::set_bulk_max_items(&mut tx, store.id, items).await?;
    }
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, "store.updated")
            .target("store", store.id)
            .details(serde_json::json!({
                "push_via_bulk": store.push_via_bulk,
                "full_sync_every_days": store.full_sync_every_days,
                "bulk_max_items": store.bulk_max_items(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(StoreResponse::new(
        store,
        &state.keyring,
        &state.settings.public_base_url(),
        access.role,
    )?))
}

/// Disconnects the store: its tokens are deleted at once; the rest is purged 30 days later.
#[utoipa::path(delete, path = "/stores/{id}", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")),
    responses((status = 200, body = StoreResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn disconnect_store(
    State(state): State<AppState>,
    access: Access<Store, CanAdminister>,
) -> ApiResult<Json<StoreResponse>> {
    change_store(&state, &access, "store.disconnected", |tx, ws, id| {
        Box::pin(stores::disconnect(tx, ws, id))
    })
    .await
}

/// Lets the store's callback URL accept one more post from Magento: do this, then click
/// "Reauthorize" on the integration in Magento's admin.
#[utoipa::path(post, path = "/stores/{id}/reauthorize", tag = "stores", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "store id")),
    responses((status = 200, body = StoreResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reauthorize_store(
    State(state): State<AppState>,
    access: Access<Store, CanAdminister>,
) -> ApiResult<Json<StoreResponse>> {
    change_store(
        &state,
        &access,
        "store.reauthorize_requested",
        |tx, ws, id| Box::pin(stores::arm_callback(tx, ws, id)),
    )
    .await
}

type StoreChange<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Store>, sqlx::Error>> + Send + 'a>,
>;

/// Applies a change to the store and records it in the audit log, in one transaction.
async fn change_store(
    state: &AppState,
    access: &Access<Store, CanAdminister>,
    action: &'static str,
    change: impl for<'a> FnOnce(&'a mut sqlx::PgConnection, Uuid, Uuid) -> StoreChange<'a>,
) -> ApiResult<Json<StoreResponse>> {
    let mut tx = state.db.begin().await?;
    let store = change(&mut tx, access.workspace_id, access.id)
        .await?
        .ok_or(Error::NotFound("store"))?;
    audit_log::record(
        &mut *tx,
        Entry::by(&access.caller, access.workspace_id, action).target("store", store.id),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(StoreResponse::new(
        store,
        &state.keyring,
        &state.settings.public_base_url(),
        access.role,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_checked() {
        assert_eq!(
            parse_base_url("https://shop.example.com").unwrap(),
            "https://shop.example.com/"
        );
        assert_eq!(
            parse_base_url(" http://127.0.0.1:8081/index.php/ ").unwrap(),
            "http://127.0.0.1:8081/index.php/"
        );
        for bad in [
            "shop.example.com",
            "ftp://x.io/",
            "https://x.io/?a=1",
            "https://u:p@x.io/",
            "https://x.io/#f",
            "",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
