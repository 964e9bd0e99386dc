//! Connected stores: their connection state, encrypted credentials and discovered store views.

pub mod attribute_scopes;
pub mod handshake;
pub mod magento;
pub mod permissions;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Capability, Resource, Role};
use crate::crypto::Keyring;
use crate::error::Error;
use crate::pagination::{Page, PageParams};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum StoreStatus {
    /// Waiting for Magento's integration callback and the token exchange.
    Pending,
    Active,
    /// Magento refused our signed calls (401): the owner must click Reauthorize in Magento.
    NeedsReauth,
    /// The handshake failed (see `status_detail`); Reauthorize in Magento retries it.
    Failed,
    Disconnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SignatureMethod {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
}

impl SignatureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMethod::HmacSha256 => "hmac-sha256",
            SignatureMethod::HmacSha1 => "hmac-sha1",
        }
    }

    fn parse(value: &str) -> SignatureMethod {
        if value == "hmac-sha1" {
            SignatureMethod::HmacSha1
        } else {
            SignatureMethod::HmacSha256
        }
    }
}

/// The four values that sign calls to a store. Only ever held sealed at rest; never printed.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoreCredentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl std::fmt::Debug for StoreCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCredentials(<redacted>)")
    }
}

/// A store view as discovered from Magento's store endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreView {
    pub code: String,
    pub id: i64,
    pub name: String,
    pub website_id: i64,
    /// e.g. `fr_FR`; from the store view's configuration.
    pub locale: Option<String>,
    pub base_url: Option<String>,
    pub base_media_url: Option<String>,
    /// The view's base currency, e.g. `EUR` (prices in feeds are in it).
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most requests per second catalogd sends to this store (1–1000).
    pub requests_per_second: u32,
    /// Most requests in flight at once (1–64); the client adapts below it.
    pub max_concurrency: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests_per_second: 4,
            max_concurrency: 4,
        }
    }
}

impl RateLimit {
    pub fn validate(self) -> Result<RateLimit, Error> {
        if !(1..=1000).contains(&self.requests_per_second) {
            return Err(Error::invalid(
                "rate_limit.requests_per_second",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=64).contains(&self.max_concurrency) {
            return Err(Error::invalid(
                "rate_limit.max_concurrency",
                "must be between 1 and 64",
            ));
        }
        Ok(self)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Store {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub platform: String,
    pub base_url: String,
    pub status: StoreStatus,
    pub status_detail: Option<String>,
    signature_method: String,
    pub credentials: Option<Vec<u8>>,
    link_token: Vec<u8>,
    pub callback_armed: bool,
    pub magento_store_url: Option<String>,
    pub store_views: sqlx::types::Json<Vec<StoreView>>,
    pub requests_per_second: i32,
    pub max_concurrency: i32,
    pub created_at: DateTime<Utc>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    sync_watermark: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub content_attributes: Vec<String>,
    /// The latest audit of all the store's products: what product scores and findings show.
    pub last_audit_run: Option<Uuid>,
    /// Pushes go through Magento's asynchronous bulk API.
    pub push_via_bulk: bool,
    bulk_max_items: i32,
    pub missing_permissions: sqlx::types::Json<Vec<permissions::MissingPermission>>,
    max_page_size: Option<i32>,
    signature_form: Option<String>,
    pub full_sync_every_days: i32,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    /// Each content attribute's scope, as far as read from the store.
    pub attribute_scopes: sqlx::types::Json<attribute_scopes::Scopes>,
    /// Whether the store's bulk API saves operations in their URL's store view (`None` until
    /// a push's canary told).
    pub bulk_keeps_scope: Option<bool>,
    pub bulk_scope_detail: Option<String>,
}

const STORE_COLUMNS: &str = "id, workspace_id, name, platform, base_url, status, status_detail, signature_method,
    credentials, link_token, callback_armed, magento_store_url, store_views, requests_per_second, max_concurrency,
    created_at, connected_at, disconnected_at, sync_watermark, last_synced_at, content_attributes, last_audit_run, push_via_bulk,
    missing_permissions, max_page_size, signature_form, full_sync_every_days, last_full_sync_at, attribute_scopes,
    bulk_max_items, bulk_keeps_scope, bulk_scope_detail";

impl Store {
    pub fn signature_method(&self) -> SignatureMethod {
        SignatureMethod::parse(&self.signature_method)
    }

    /// The latest product change seen by a sync; incremental syncs start shortly before it.
    pub fn sync_watermark(&self) -> Option<DateTime<Utc>> {
        self.sync_watermark
    }

    /// Why a pipeline's sync at `now` must read every product, if it must: incremental syncs
    /// cannot see edits that leave `updated_at` alone (the admin's "Update attributes" mass
    /// action, `Catalog/Model/ResourceModel/Product/Action.php` `updateAttributes`), so a full
    /// sync runs every `full_sync_every_days`.
    pub fn full_sync_due(&self, now: DateTime<Utc>) -> Option<String> {
        let every = self.full_sync_every_days.max(1);
        match self.last_full_sync_at {
            None => Some("the store has had no full sync yet".into()),
            Some(last) if now - last >= chrono::Duration::days(i64::from(every)) => Some(format!(
                "the last full sync ({}) is {every} or more days old (full_sync_every_days)",
                last.format("%Y-%m-%d %H:%M UTC")
            )),
            Some(_) => None,
        }
    }

    /// The signature rules the store verifies with, as far as known (Laminas' until learned).
    pub fn signature_form(&self) -> ::magento::SignatureForm {
        self.known_signature_form().unwrap_or_default()
    }

    /// The signature rules learned for the store, if any.
    pub fn known_signature_form(&self) -> Option<::magento::SignatureForm> {
        self.signature_form
            .as_deref()
            .and_then(::magento::SignatureForm::parse)
    }

    /// The most product saves a bulk push puts in one bulk.
    pub fn bulk_max_items(&self) -> usize {
        usize::try_from(self.bulk_max_items).unwrap_or(1).max(1)
    }

    /// The largest page the store answers, once it refused a larger one.
    pub fn max_page_size(&self) -> Option<u32> {
        self.max_page_size.and_then(|max| u32::try_from(max).ok())
    }

    /// The default store view: the one with the lowest id (store 1 on a standard install),
    /// where Magento runs what carries no store of its own, such as bulk operations consumed
    /// from its MySQL queue.
    pub fn default_view(&self) -> Option<&StoreView> {
        self.store_views.0.iter().min_by_key(|v| v.id)
    }

    pub fn rate_limit(&self) -> RateLimit {
        RateLimit {
            requests_per_second: u32::try_from(self.requests_per_second).unwrap_or(1),
            max_concurrency: u32::try_from(self.max_concurrency).unwrap_or(1),
        }
    }

    pub fn credentials(
        &self,
        keyring: &Keyring,
    ) -> Option<Result<StoreCredentials, crate::crypto::CryptoError>> {
        self.credentials
            .as_deref()
            .map(|sealed| keyring.open_json(sealed, &credentials_context(self.id)))
    }

    pub fn link_token(&self, keyring: &Keyring) -> Result<String, crate::crypto::CryptoError> {
        let bytes = keyring.open(&self.link_token, &link_token_context(self.id))?;
        String::from_utf8(bytes).map_err(|_| crate::crypto::CryptoError::Malformed)
    }
}

pub fn credentials_context(store_id: Uuid) -> String {
    format!("stores.credentials:{store_id}")
}

pub fn link_token_context(store_id: Uuid) -> String {
    format!("stores.link_token:{store_id}")
}

pub fn handshake_context(store_id: Uuid) -> String {
    format!("stores.handshake:{store_id}")
}

/// A new unguessable token for a store's callback and identity URLs, and its lookup hash.
pub fn new_link_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = B64URL.encode(bytes);
    let hash = hash_link_token(&token);
    (token, hash)
}

pub fn hash_link_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// What the API shows of a store: never a secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoreResponse {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub platform: String,
    pub base_url: String,
    pub status: StoreStatus,
    pub status_detail: Option<String>,
    pub signature_method: SignatureMethod,
    pub store_views: Vec<StoreView>,
    pub rate_limit: RateLimit,
    /// Paste into Magento's integration form (Callback URL). It carries the store's link
    /// token, so only admins and owners see it; absent once disconnected.
    pub callback_url: Option<String>,
    /// Paste into Magento's integration form (Identity Link URL). Admins and owners only;
    /// absent once disconnected.
    pub identity_url: Option<String>,
    /// True while catalogd will accept one callback from Magento (after "Activate" or "Reauthorize").
    pub awaiting_callback: bool,
    /// When the last sync finished.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Attribute codes treated as editable content besides the standard fields.
    pub content_attributes: Vec<String>,
    /// Pushes go through Magento's asynchronous bulk API (one bulk per store view, polled).
    pub push_via_bulk: bool,
    /// The most product saves one bulk carries (1–5,000; 500 unless set): Magento schedules
    /// every item within the submitting request, so a smaller bulk keeps that request short.
    pub bulk_max_items: u32,
    /// API permissions Magento refused to the store's integration: grant each `resource` in
    /// the integration's "API" tab. The store stays connected meanwhile.
    pub missing_permissions: Vec<permissions::MissingPermission>,
    /// The largest page of products the store answers (its `webapi/validation/maximum_page_size`),
    /// learned when it refused a larger one; syncs then read pages of this size.
    pub max_page_size: Option<u32>,
    /// How the store verifies request signatures: `laminas` (Magento up to 2.4.6) or `2.4.7+`
    /// (which no longer decodes `%2F`, `%3A`… in the signed path); `null` until learned.
    pub signature_form: Option<String>,
    /// A pipeline's `sync` step reads every product when the last full sync is older than this
    /// (incremental syncs miss edits that leave Magento's `updated_at` alone). 1–365, default 7.
    pub full_sync_every_days: u32,
    /// When the last full sync finished.
    pub last_full_sync_at: Option<DateTime<Utc>>,
    /// Each content attribute's scope in Magento (`global`, `website` or `store`), read by
    /// every sync: a store view cannot be given its own value of a global attribute, and a
    /// website-scoped one changes every store view of the website.
    #[schema(value_type = std::collections::BTreeMap<String, crate::connector::AttributeScope>)]
    pub attribute_scopes: attribute_scopes::Scopes,
    /// Whether Magento's bulk API saves each operation in the store view of its URL: `false`
    /// when a push's first bulk operation (its canary) was saved in the default store view
    /// (Magento's MySQL queue; an AMQP queue keeps the store), and pushes then go product by
    /// product; `null` until a bulk push told. `bulk_scope_detail` says what was seen and the fix.
    pub bulk_keeps_scope: Option<bool>,
    pub bulk_scope_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

impl StoreResponse {
    /// What `role` may see of `store`: the link URLs only for those who connect stores.
    pub fn new(
        store: Store,
        keyring: &Keyring,
        public_url: &str,
        role: Role,
    ) -> Result<StoreResponse, Error> {
        let (callback_url, identity_url) =
            if store.status == StoreStatus::Disconnected || !role.allows(Capability::Administer) {
                (None, None)
            } else {
                let token = store.link_token(keyring).map_err(|e| {
                    Error::Internal(anyhow::anyhow!("store {}: link token: {e}", store.id))
                })?;
                (
                    Some(format!(
                        "{public_url}/integrations/magento/{token}/callback"
                    )),
                    Some(format!(
                        "{public_url}/integrations/magento/{token}/identity"
                    )),
                )
            };
        let bulk_max_items = store.bulk_max_items();
        Ok(StoreResponse {
            id: store.id,
            workspace_id: store.workspace_id,
            signature_method: store.signature_method(),
            rate_limit: store.rate_limit(),
            max_page_size: store.max_page_size(),
            signature_form: store.signature_form.clone(),
            name: store.name,
            platform: store.platform,
            base_url: store.base_url,
            status: store.status,
            status_detail: store.status_detail,
            store_views: store.store_views.0,
            callback_url,
            identity_url,
            awaiting_callback: store.callback_armed,
            last_synced_at: store.last_synced_at,
            content_attributes: store.content_attributes,
            push_via_bulk: store.push_via_bulk,
            bulk_max_items: u32::try_from(bulk_max_items).unwrap_or(u32::MAX),
            missing_permissions: store.missing_permissions.0,
            full_sync_every_days: u32::try_from(store.full_sync_every_days).unwrap_or(7),
            last_full_sync_at: store.last_full_sync_at,
            attribute_scopes: store.attribute_scopes.0,
            bulk_keeps_scope: store.bulk_keeps_scope,
            bulk_scope_detail: store.bulk_scope_detail,
            created_at: store.created_at,
            connected_at: store.connected_at,
            disconnected_at: store.disconnected_at,
        })
    }
}

impl Resource for Store {
    const NAME: &'static str = "store";
    const PATH_PARAM: &'static str = "id";
    async fn workspace_of(db: &PgPool, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT workspace_id FROM stores WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
    }
}

pub struct NewStore<'a> {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: &'a str,
    pub base_url: &'a str,
    pub status: StoreStatus,
    pub signature_method: SignatureMethod,
    pub credentials: Option<Vec<u8>>,
    pub link_token_hash: Vec<u8>,
    pub link_token: Vec<u8>,
    pub callback_armed: bool,
    pub store_views: Vec<StoreView>,
    pub rate_limit: RateLimit,
    pub content_attributes: Vec<String>,
    pub created_by: Option<Uuid>,
    pub signature_form: Option<::magento::SignatureForm>,
}

pub async fn insert(tx: &mut PgConnection, new: NewStore<'_>) -> Result<Store, sqlx::Error> {
    let connected = new.status == StoreStatus::Active;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO stores (id, workspace_id, name, base_url, status, signature_method, credentials,
            link_token_hash, link_token, callback_armed, store_views, requests_per_second, max_concurrency,
            created_by, connected_at, content_attributes, signature_form)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, CASE WHEN $15 THEN now() END, $16, $17)
         RETURNING {STORE_COLUMNS}"
    )))
    .bind(new.id)
    .bind(new.workspace_id)
    .bind(new.name)
    .bind(new.base_url)
    .bind(new.status)
    .bind(new.signature_method.as_str())
    .bind(new.credentials)
    .bind(new.link_token_hash)
    .bind(new.link_token)
    .bind(new.callback_armed)
    .bind(sqlx::types::Json(new.store_views))
    .bind(i32::try_from(new.rate_limit.requests_per_second).unwrap_or(1))
    .bind(i32::try_from(new.rate_limit.max_concurrency).unwrap_or(1))
    .bind(new.created_by)
    .bind(connected)
    .bind(&new.content_attributes)
    .bind(new.signature_form.map(::magento::SignatureForm::as_str))
    .fetch_one(&mut *tx)
    .await
}

/// The most product saves one bulk may carry (`bulk_max_items`).
pub const BULK_MAX_ITEMS: std::ops::RangeInclusive<u32> = 1..=5000;

/// Sets the most product saves one bulk carries (within [`BULK_MAX_ITEMS`]).
pub async fn set_bulk_max_items(
    tx: &mut PgConnection,
    id: Uuid,
    items: u32,
) -> Result<Store, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE stores SET bulk_max_items = $2 WHERE id = $1 RETURNING {STORE_COLUMNS}"
    )))
    .bind(id)
    .bind(i32::try_from(items).unwrap_or(i32::MAX))
    .fetch_one(&mut *tx)
    .await
}

/// Switches pushes to (or off) Magento's asynchronous bulk API. Switching it on forgets what
/// was learned about the store's bulk scopes (its queue may have changed), so the next push
/// checks again with a canary.
pub async fn set_push_via_bulk(
    tx: &mut PgConnection,
    id: Uuid,
    on: bool,
) -> Result<Store, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE stores SET push_via_bulk = $2,
            bulk_keeps_scope = CASE WHEN $2 THEN NULL ELSE bulk_keeps_scope END,
            bulk_scope_detail = CASE WHEN $2 THEN NULL ELSE bulk_scope_detail END
         WHERE id = $1 RETURNING {STORE_COLUMNS}"
    )))
    .bind(id)
    .bind(on)
    .fetch_one(&mut *tx)
    .await
}

/// Sets how often a pipeline's sync reads every product (1–365 days, checked by the caller
/// and the table).
pub async fn set_full_sync_every_days(
    tx: &mut PgConnection,
    id: Uuid,
    days: i32,
) -> Result<Store, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE stores SET full_sync_every_days = $2 WHERE id = $1 RETURNING {STORE_COLUMNS}"
    )))
    .bind(id)
    .bind(days)
    .fetch_one(&mut *tx)
    .await
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<Option<Store>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STORE_COLUMNS} FROM stores WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn get_in(db: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Store, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STORE_COLUMNS} FROM stores WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("store"))
}

pub async fn list(
    db: &PgPool,
    workspace_id: Uuid,
    page: &PageParams,
) -> Result<Page<Store>, Error> {
    let after: Option<Uuid> = page.after()?;
    let limit = page.limit();
    let rows: Vec<Store> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STORE_COLUMNS} FROM stores
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(rows, limit, |s| s.id))
}

/// Deletes the store's tokens at once and marks it disconnected; the rest is purged later.
pub async fn disconnect(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<Store>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE stores SET credentials = NULL, handshake = NULL, handshake_started_at = NULL,
            callback_armed = false, status = 'disconnected', status_detail = NULL,
            disconnected_at = COALESCE(disconnected_at, now())
         WHERE id = $1 AND workspace_id = $2
         RETURNING {STORE_COLUMNS}"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Lets one more Magento callback in (the owner is about to click Reauthorize in Magento).
pub async fn arm_callback(
    tx: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<Store>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE stores SET callback_armed = true
         WHERE id = $1 AND workspace_id = $2 AND status <> 'disconnected'
         RETURNING {STORE_COLUMNS}"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Remembers which signature rules the store accepts.
pub async fn set_signature_form(
    db: &PgPool,
    id: Uuid,
    form: ::magento::SignatureForm,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stores SET signature_form = $2 WHERE id = $1")
        .bind(id)
        .bind(form.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// Remembers whether the store's bulk API keeps each operation's store view, and why.
pub async fn set_bulk_keeps_scope(
    db: &PgPool,
    id: Uuid,
    keeps: bool,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stores SET bulk_keeps_scope = $2, bulk_scope_detail = $3 WHERE id = $1")
        .bind(id)
        .bind(keeps)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// Remembers the largest page the store answers.
pub async fn set_max_page_size(db: &PgPool, id: Uuid, max: u32) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stores SET max_page_size = $2 WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(max).unwrap_or(i32::MAX))
        .execute(db)
        .await?;
    Ok(())
}

/// Marks a store whose credentials Magento refused; the next callback may re-establish them.
/// The first refusal raises `store.needs_reauth`.
pub async fn mark_needs_reauth(db: &PgPool, id: Uuid, detail: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let marked: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE stores SET status = 'needs_reauth', status_detail = $2, callback_armed = true
         WHERE id = $1 AND status = 'active' RETURNING workspace_id, name",
    )
    .bind(id)
    .bind(detail)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((workspace_id, name)) = marked {
        needs_reauth_event(&mut tx, workspace_id, id, &name, detail).await?;
    }
    tx.commit().await
}

/// Raises `store.needs_reauth` for a store that just lost its connection.
pub async fn needs_reauth_event(
    conn: &mut sqlx::PgConnection,
    workspace_id: Uuid,
    store_id: Uuid,
    name: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    crate::notify::events::record(
        conn,
        crate::notify::NewEvent {
            kind: crate::notify::EventKind::StoreNeedsReauth,
            workspace_id,
            store_id: Some(store_id),
            job_id: None,
            summary: format!("{name} needs reauthorisation: Magento refused its credentials"),
            data: serde_json::json!({"store_name": name, "detail": detail}),
        },
    )
    .await?;
    Ok(())
}
